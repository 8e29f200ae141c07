"""JSON output: util-linux's `dmesg --json` layout byte for byte, and our JSON Lines."""

import re

from target.dmesg.record import FACILITIES, LEVELS, facility_name

JSONL_SCHEMA = 1   # bump on any incompatible change to the --jsonl records (docs/dmesg.md)

_JSON_SPECIAL = re.compile(rb'[\x00-\x1f"\\]')
_JSON_ESCAPES = {bytes((c,)): b"\\u%04x" % c for c in range(0x20)}
_JSON_ESCAPES.update({b'"': b'\\"', b"\\": b"\\\\", b"\b": b"\\b", b"\t": b"\\t",
                      b"\n": b"\\n", b"\f": b"\\f", b"\r": b"\\r"})


def json_string(data):
    """util-linux's fputs_quoted_json(): bytes >= 0x20 pass through (so does invalid UTF-8),
    control characters become escapes, a NUL ends the string, empty is null."""
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    if not data:
        return b"null"
    if _JSON_SPECIAL.search(data) is None:
        return b'"' + data + b'"'
    return b'"' + _JSON_SPECIAL.sub(lambda m: _JSON_ESCAPES[m.group()], data) + b'"'


# the usual object (after the first), in one step: the general path below builds the same bytes
_COMMON = (b',{\n         "pri": %d,\n         "time": %5d.%06d,\n         "msg": %s,\n'
           b'         "seq": %d,\n         "level": "%s",\n         "facility": %s\n      }')
_LEVEL_NAMES = tuple(name.encode() for name in LEVELS)
_FACILITY_VALUES = tuple(b'"%s"' % name.encode() for name in FACILITIES)


class JsonFormatter(object):
    """`dmesg --json`, byte for byte: 3-space indents, '},{' between objects, "time" padded.

    Our keys follow util-linux's in each object: seq, level, facility, dict. "pri" is the
    true facility << 3 | level (util-linux < 2.40 drops the facility).
    """

    def __init__(self, decode=False, source="kmsg"):
        self.decode = decode
        self.source = source
        self.started = False

    def format(self, record):
        text = record.text
        if not text:
            return b""           # util-linux prints no object for an empty message
        if (self.started and not self.decode and record.seq is not None and not record.caller
                and not record.dictionary and record.pri is not None):
            return _COMMON % ((record.pri,) + divmod(record.ts_usec, 1000000) + (
                json_string(text), record.seq, _LEVEL_NAMES[record.pri & 7],
                _FACILITY_VALUES[record.pri >> 3] if record.pri >> 3 < 24 else b"null"))
        fields = []
        level, facility = record.level, record.facility
        if level is not None:
            if self.decode:
                if facility < len(FACILITIES):
                    fields.append(b'"fac": "%s"' % FACILITIES[facility].encode())
                    fields.append(b'"pri": "%s"' % LEVELS[level].encode())
            else:
                fields.append(b'"pri": %d' % record.pri)
        fields.append(b'"time": %5d.%06d' % divmod(record.ts_usec, 1000000))
        if record.caller:
            fields.append(b'"caller": "%s"' % record.caller.encode())
        fields.append(b'"msg": ' + json_string(text))
        if record.seq is not None:
            fields.append(b'"seq": %d' % record.seq)
        if level is not None:
            name = facility_name(facility)
            fields.append(b'"level": "%s"' % LEVELS[level].encode())
            fields.append(b'"facility": ' + (b'"%s"' % name.encode() if name else b"null"))
        if record.dictionary:
            items = [b'            "%s": %s' % (key.encode(), json_string(value))
                     for key, value in record.dictionary]
            fields.append(b'"dict": {\n' + b",\n".join(items) + b"\n         }")
        head = b",{\n" if self.started else b'{\n   "dmesg": [\n      {\n'
        self.started = True
        return head + b",\n".join(b"         " + f for f in fields) + b"\n      }"

    def skip(self, record):
        pass

    def close(self):
        """The end of the document; nothing if no record was printed (as util-linux)."""
        if not self.started:
            return b""
        return b'\n   ],\n   "source": "%s"\n}\n' % self.source.encode()


# ---- JSON Lines --------------------------------------------------------------------------------

class JsonLinesFormatter(object):
    """--jsonl: one strict-JSON object per line, valid UTF-8, for streaming and capture.
    Keys: seq, pri, facility, level, time, caller, msg, dict, source (see docs/dmesg.md)."""

    def __init__(self, source="kmsg"):
        import json
        self.dumps = json.dumps
        self.source = self.dumps(source)

    def _text(self, data):
        return self.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)

    def format(self, record):
        parts = []
        if record.seq is not None:
            parts.append('"seq":%d' % record.seq)
        if record.pri is not None:
            name = facility_name(record.facility)
            parts.append('"pri":%d,"facility":%s,"level":"%s"' % (
                record.pri, '"%s"' % name if name else "null", LEVELS[record.level]))
        parts.append('"time":%d.%06d' % divmod(record.ts_usec, 1000000))
        if record.caller:
            parts.append('"caller":' + self.dumps(record.caller))
        parts.append('"msg":' + self._text(record.text))
        if record.dictionary:
            parts.append('"dict":{%s}' % ",".join(
                self.dumps(key) + ":" + self._text(value) for key, value in record.dictionary))
        parts.append('"source":' + self.source)
        return ("{%s}\n" % ",".join(parts)).encode("utf-8")

    def skip(self, record):
        pass

    def lost(self, lost):
        return ('{"lost":%d,"seq":%d,"source":%s}\n'
                % (lost.count, lost.seq, self.source)).encode("utf-8")

    def close(self):
        return b""
