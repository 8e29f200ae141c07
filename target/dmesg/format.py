"""Text output, as util-linux dmesg prints it: time formats, decode prefix, colours, escaping.

Everything works on bytes: the kernel log is bytes, and util-linux writes them through
(escaping only what is unsafe), so a str round trip would change the output.
"""

import re
import time

from target.dmesg.record import FACILITIES, LEVELS

# util-linux's default colour scheme (terminal-colors.d names in comments)
COLOR_SUBSYS = b"\033[33m"                 # subsys: brown
COLOR_TIME = b"\033[32m"                   # time: green
COLOR_TIMEBREAK = b"\033[32m\033[1m"       # timebreak: green bold
COLOR_SEGFAULT = b"\033[2m\033[31m"        # segfault: half-bright red
COLOR_RESET = b"\033[0m"
LEVEL_COLORS = {1: b"\033[7m\033[31m",    # alert: reverse red
                2: b"\033[1m\033[31m",    # crit: bold red
                3: b"\033[31m",           # err: red
                4: b"\033[1m"}            # warn: bold

TIME_FORMATS = ("time", "notime", "ctime", "delta", "reltime", "iso",
                "time_delta", "ctime_delta")


# ---- escaping ----------------------------------------------------------------------------------

# Everything but printable ASCII and isspace() bytes needs a closer look (newline for the indent).
_NOT_PLAIN = re.compile(rb"[^\x09\x0b-\x0d\x20-\x7e]")
_ESCAPE_TOKENS = re.compile(rb"\n(?=[^\x00])|[\x80-\xff]+|[\x00-\x08\x0e-\x1f\x7f]")
_INDENT_ONLY = re.compile(rb"\n(?=[^\x00])")


class Escaper(object):
    """util-linux's safe_fwrite(): print valid, printable UTF-8 as is and every other byte as
    \\xNN, and indent the lines after an embedded newline so they line up with the text."""

    def __init__(self, utf8=True, noescape=False):
        self.utf8 = utf8
        self.noescape = noescape
        self._printable = {}

    def __call__(self, text, indent):
        if self.noescape:
            if indent and b"\n" in text:
                pad = b"\n" + b" " * indent
                return _INDENT_ONLY.sub(lambda m: pad, text)
            return text
        if _NOT_PLAIN.search(text) is None:
            return text
        pad = b"\n" + b" " * indent
        return _ESCAPE_TOKENS.sub(lambda m: self._token(m.group(), pad), text)

    def _token(self, token, pad):
        if token == b"\n":
            return pad
        if token[0] < 0x80 or not self.utf8:
            return b"".join(b"\\x%02x" % byte for byte in token)
        out = []
        for char in token.decode("utf-8", "surrogateescape"):
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:        # a byte that is not valid UTF-8
                out.append(b"\\x%02x" % (code - 0xDC00))
            elif self._is_printable(code):
                out.append(char.encode("utf-8"))
            else:
                out.append(b"".join(b"\\x%02x" % byte for byte in char.encode("utf-8")))
        return b"".join(out)

    def _is_printable(self, code):
        known = self._printable.get(code)
        if known is None:
            # the C library's iswprint()/iswspace() in the user's locale, as util-linux asks
            from target import libc
            known = self._printable[code] = libc.iswprint(code) or libc.iswspace(code)
        return known


def locale_is_utf8():
    """Whether LC_CTYPE (set from the environment at Python start-up) is UTF-8."""
    try:
        import _locale       # what the locale module wraps; importing locale costs more
        codeset = _locale.nl_langinfo(_locale.CODESET)
    except (ImportError, AttributeError, ValueError):
        return True
    return codeset.upper().replace("-", "") == "UTF8"


# ---- text --------------------------------------------------------------------------------------

def subsys_end(line):
    """End of a 'subsystem: ' prefix (util-linux colours it): after the first ':' that is
    followed by a blank and at least one more byte; -1 if none."""
    pos = line.find(b":")
    while pos >= 0:
        if len(line) - pos >= 3 and line[pos + 1] in (0x20, 0x09):
            return pos + 2
        pos = line.find(b":", pos + 1)
    return -1


def _decode_prefix(record):
    level, facility = record.level, record.facility
    if level is None or facility >= len(FACILITIES):
        return b""
    return b"%-6s:%-6s: " % (FACILITIES[facility].encode(), LEVELS[level].encode())


class TextFormatter(object):
    """One record -> its line(s) of `dmesg` text, keeping the state time deltas need."""

    def __init__(self, time_format="time", decode=False, raw=False, color=False,
                 force_prefix=False, escaper=None, boot_usec=0, caller_width=8):
        assert time_format in TIME_FORMATS, time_format
        self.time_format = time_format
        self.decode = decode
        self.raw = raw
        self.color = color
        self.force_prefix = force_prefix
        self.escape = escaper or Escaper()
        self.boot_usec = boot_usec
        self.caller_width = caller_width
        self.last_usec = 0          # stamp of the last printed record (for deltas)
        self.last_tm = (0, 0, 0)    # (min, hour, yday) of the last printed record (reltime)
        self._ctime_cache = (None, b"")
        self._stamp = getattr(self, "_stamp_" + time_format)
        self._plain = (time_format == "time" and not (raw or decode or color or force_prefix))

    def format(self, record):
        """The bytes to print for one record, newline included."""
        text = record.text
        if not text:
            return b"\n"
        if self._plain and not record.caller:      # the common case, kept short
            stamp = b"[%5d.%06d] " % divmod(record.ts_usec, 1000000)
            return stamp + self.escape(text, len(stamp)) + b"\n"
        if self.raw:
            stamp = b"<%d>[%5d.%06d] " % ((record.pri if record.pri is not None else -1,)
                                          + divmod(record.ts_usec, 1000000))
            prefix, timebreak = b"", False
        else:
            stamp, timebreak = self._stamp(record)
            prefix = _decode_prefix(record) if self.decode else b""
        caller = b"[%*s] " % (self.caller_width, record.caller.encode()) if record.caller else b""
        indent = len(prefix) + len(stamp) + len(caller)
        if self.color and stamp:
            stamp = (COLOR_TIMEBREAK if timebreak else COLOR_TIME) + stamp + COLOR_RESET
        if not self.force_prefix:
            return prefix + stamp + caller + self._message(text, record.level, indent) + b"\n"
        lines = [line for line in text.split(b"\n") if line]
        if not lines:
            return prefix + stamp + caller + b"\n"
        later_stamp = stamp
        if self.time_format == "reltime":
            later_stamp = b"[  +0.000000] "
            if self.color:
                later_stamp = (COLOR_TIMEBREAK if timebreak else COLOR_TIME) + later_stamp \
                    + COLOR_RESET
        out = [prefix + stamp + caller + self._message(lines[0], record.level, indent)]
        for line in lines[1:]:
            out.append(prefix + later_stamp + caller + self._message(line, record.level, indent))
        return b"\n".join(out) + b"\n"

    def skip(self, record):
        """A record the filters rejected still ends the previous delta (util-linux >= 2.40)."""
        self.last_usec = record.ts_usec

    def close(self):
        return b""

    def _message(self, text, level, indent):
        if not self.color:
            return self.escape(text, indent)
        out = b""
        end = subsys_end(text)
        if end >= 0:
            out = COLOR_SUBSYS + self.escape(text[:end], indent) + COLOR_RESET
            text = text[end:]
        color = LEVEL_COLORS.get(level)
        if color is None and b"segfault at" in text:
            color = COLOR_SEGFAULT
        if color is None:
            return out + self.escape(text, indent)
        return out + color + self.escape(text, indent) + COLOR_RESET

    # -- time stamps: (bytes, timebreak) --

    def _delta(self, record):
        """Seconds since the previous printed record (0 for the first), as util-linux: a double."""
        usec = record.ts_usec
        delta = 0.0
        if self.last_usec:
            last = self.last_usec
            delta = (usec // 1000000 - last // 1000000) + (usec % 1000000 - last % 1000000) / 1e6
        self.last_usec = usec
        return delta

    def _seconds(self, record):
        return (self.boot_usec + record.ts_usec) // 1000000

    def _ctime(self, record):
        seconds = self._seconds(record)
        if self._ctime_cache[0] != seconds:
            text = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(seconds))
            self._ctime_cache = (seconds, text.encode())
        return self._ctime_cache[1]

    def _stamp_time(self, record):
        return b"[%5d.%06d] " % divmod(record.ts_usec, 1000000), False

    def _stamp_notime(self, record):
        return b"", False

    def _stamp_ctime(self, record):
        return b"[%s] " % self._ctime(record), False

    def _stamp_delta(self, record):
        return b"[<%12.06f>] " % self._delta(record), False

    def _stamp_time_delta(self, record):
        delta = self._delta(record)
        return b"[%5d.%06d <%12.06f>] " % (divmod(record.ts_usec, 1000000) + (delta,)), False

    def _stamp_ctime_delta(self, record):
        delta = self._delta(record)
        return b"[%s <%12.06f>] " % (self._ctime(record), delta), False

    def _stamp_iso(self, record):
        return iso_time(self.boot_usec + record.ts_usec) + b" ", False

    def _stamp_reltime(self, record):
        delta = self._delta(record)
        tm = time.localtime(self._seconds(record))
        now = (tm.tm_min, tm.tm_hour, tm.tm_yday)
        changed = now != self.last_tm
        self.last_tm = now
        if changed:
            return b"[%s] " % time.strftime("%b%e %H:%M", tm).encode(), True
        if delta < 10:
            return b"[  %+8.06f] " % delta, False
        return b"[ %+9.06f] " % delta, False


def iso_time(usec):
    """2026-11-26T16:52:32,740820+00:00, util-linux's ISO_TIMESTAMP_COMMA_T."""
    seconds, micros = divmod(usec, 1000000)
    tm = time.localtime(seconds)
    minutes = int(tm.tm_gmtoff / 60)        # C division truncates toward zero
    zone = "%+03d:%02d" % (int(minutes / 60), abs(minutes) % 60)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ",%06d" % micros + zone).encode()


def raw_buffer(data, escaper):
    """-r on a syslog(2) buffer or -F file: the text as the kernel gave it, escaped."""
    if not data:
        return b""
    out = escaper(data, 0)
    return out if data.endswith(b"\n") else out + b"\n"
