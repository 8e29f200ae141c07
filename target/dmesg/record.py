"""One kernel log record, and the parsers for the two formats the kernel hands it out in.

/dev/kmsg:   b"PRI,SEQ,USEC,FLAGS[,caller=T12][,...];TEXT\n KEY=VALUE\n ..."   (TEXT escaped \\xNN)
syslog(2):   b"<PRI>[ SEC.USEC] [   T12] TEXT\n<PRI>..."                      (TEXT raw, one line each)
"""

import re

LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
              "uucp", "cron", "authpriv", "ftp", "res0", "res1", "res2", "res3",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")


class Record(object):
    """A parsed record. text and dictionary values are bytes, already un-escaped.

    pri is facility << 3 | level, or None for a syslog line without a <N> prefix.
    seq is None where the source has no sequence numbers (syslog(2), -F files).
    """

    __slots__ = ("pri", "seq", "ts_usec", "flags", "caller", "text", "dictionary")

    def __init__(self, pri, seq, ts_usec, text, flags="-", caller="", dictionary=()):
        self.pri = pri
        self.seq = seq
        self.ts_usec = ts_usec
        self.flags = flags
        self.caller = caller
        self.text = text
        self.dictionary = dictionary

    @property
    def level(self):
        return None if self.pri is None else self.pri & 7

    @property
    def facility(self):
        return None if self.pri is None else self.pri >> 3

    def __eq__(self, other):
        return isinstance(other, Record) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self):
        return "Record(%s)" % ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)


def level_name(level):
    return LEVELS[level]


def facility_name(facility):
    """The util-linux name, or None past local7 (the kernel allows facilities up to 255)."""
    return FACILITIES[facility] if facility is not None and facility < len(FACILITIES) else None


# ---- /dev/kmsg -------------------------------------------------------------------------------

_HEX_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_UNHEX = {("%02x" % i).encode(): bytes((i,)) for i in range(256)}


def _unhex_match(match):
    return _UNHEX[match.group(1).lower()]


def unescape(data):
    """Undo the kernel's \\xNN escaping (every \\xNN with two hex digits, left to right)."""
    if b"\\" not in data:
        return data
    return _HEX_ESCAPE.sub(_unhex_match, data)


def escape(data):
    """Escape like the kernel does for /dev/kmsg: bytes < 0x20, >= 0x7f and '\\'."""
    return _KERNEL_UNSAFE.sub(_hex_match, data)


_KERNEL_UNSAFE = re.compile(rb"[\x00-\x1f\x7f-\xff\\]")


def _hex_match(match):
    return b"\\x%02x" % ord(match.group())


_FLAGS = {b"-": "-", b"c": "c", b"+": "+"}


def parse_kmsg(data):
    """Parse one /dev/kmsg record (as one read() returns it). Raises ValueError if malformed.

    Fields after FLAGS are ignored except caller=; the dictionary ends up in record.dictionary
    as (key, value) byte pairs in the kernel's order.
    """
    # Runs once per record, so the common path calls no helper of ours.
    head, sep, body = data.partition(b";")
    fields = head.lstrip().split(b",")
    if not sep or len(fields) < 3:
        raise ValueError("not a /dev/kmsg record: %r" % data[:40])
    pri, seq, ts_usec = fields[0], fields[1], fields[2]
    if not (pri.isdigit() and seq.isdigit() and ts_usec.isdigit()):
        raise ValueError("bad PRI,SEQ,USEC in %r" % head[:40])
    flags, caller = "-", ""
    if len(fields) > 3:
        flags = _FLAGS.get(fields[3]) or fields[3].decode("ascii", "replace")
        for extra in fields[4:]:
            if extra.startswith(b"caller="):
                caller = extra[7:].decode("ascii", "replace")
    text, _, rest = body.partition(b"\n")
    if b"\\" in text:
        text = _HEX_ESCAPE.sub(_unhex_match, text)
    return Record(int(pri), int(seq), int(ts_usec), text, flags, caller,
                  _parse_dictionary(rest) if rest else ())


def _parse_dictionary(data):
    pairs = []
    for line in data.split(b"\n"):
        if line.startswith(b" "):
            key, _, value = line[1:].partition(b"=")
            pairs.append((key.decode("ascii", "replace"), unescape(value)))
    return tuple(pairs)


def format_kmsg(record):
    """The /dev/kmsg form of a record (what -K files hold between NULs); parse_kmsg inverts it."""
    prefix = "%d,%d,%d,%s" % (record.pri, record.seq, record.ts_usec, record.flags)
    if record.caller:
        prefix += ",caller=" + record.caller
    lines = [prefix.encode("ascii") + b";" + escape(record.text)]
    for key, value in record.dictionary:
        lines.append(b" " + key.encode("ascii") + b"=" + escape(value))
    return b"\n".join(lines) + b"\n"


# ---- syslog(2) text --------------------------------------------------------------------------

_SYSLOG_LINE = re.compile(rb"(?:<(\d+)>)?(?:\[ *(\d+)\.(\d+)\] ?)?(?:\[ *([TC]\d+)\] )?")


def parse_syslog(buffer):
    """Yield a Record per line of a syslog(2) READ_ALL buffer (or of a file in that format).

    The kernel prefixes every line, so a multi-line message comes back as several records,
    split where a newline is followed by '<' as util-linux does.
    """
    buffer = buffer.lstrip(b"\0")          # util-linux skips NULs where a record would start
    if buffer.endswith(b"\n"):
        buffer = buffer[:-1]
    chunks = buffer.split(b"\n<")
    if chunks[0]:
        yield parse_syslog_line(chunks[0])
    for chunk in chunks[1:]:
        yield parse_syslog_line(b"<" + chunk)


def parse_syslog_line(line):
    """Parse `<PRI>[ SEC.USEC] [CALLER] TEXT`; every part is optional, as in util-linux."""
    match = _SYSLOG_LINE.match(line)
    pri, sec, usec, caller = match.groups()
    return Record(None if pri is None else int(pri), None,
                  0 if sec is None else int(sec) * 1000000 + int(usec), line[match.end():],
                  caller=caller.decode("ascii") if caller else "")
