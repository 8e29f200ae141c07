"""Quoting bytes as a C string literal the way strace prints them.

Printable ASCII stays as is (but \\ and " get a backslash); \\t \\n \\v \\f \\r have their
letter escapes; any other byte is octal, as short as possible unless the next byte is an
octal digit, then always three digits. -x (hexmode 1) prints the whole string as \\xNN
when any byte is neither printable ASCII nor one of \\t\\n\\v\\f\\r; -xx (hexmode 2) always.
"""

_LETTER = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\"}

# what each byte becomes when no octal digit follows it
_SHORT = []
# and when one does (octal escapes grow to three digits)
_LONG = []
for _c in range(256):
    if _c in _LETTER:
        _SHORT.append(_LETTER[_c])
        _LONG.append(_LETTER[_c])
    elif 0x20 <= _c < 0x7F:
        _SHORT.append(chr(_c))
        _LONG.append(chr(_c))
    else:
        _SHORT.append("\\%o" % _c)
        _LONG.append("\\%03o" % _c)
_HEX = ["\\x%02x" % _c for _c in range(256)]

# bytes that need no escape at all, and bytes that keep -x from switching to hex
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (34, 92))
_TEXTUAL = bytes(range(0x20, 0x7F)) + b"\t\n\v\f\r"
_DIGITS = frozenset(range(0x30, 0x38))


def needs_hex(data, hexmode):
    if hexmode >= 2:
        return True
    return hexmode == 1 and bool(data.translate(None, _TEXTUAL))


def quote_body(data, hexmode=0):
    """The escaped characters of data, without the surrounding quotes."""
    if needs_hex(data, hexmode):
        return "".join([_HEX[c] for c in data])
    if not data.translate(None, _PLAIN):
        return data.decode("ascii")
    out = []
    last = len(data) - 1
    for i, c in enumerate(data):
        if i < last and data[i + 1] in _DIGITS:
            out.append(_LONG[c])
        else:
            out.append(_SHORT[c])
    return "".join(out)


def quote(data, hexmode=0):
    """data as a double-quoted C string literal."""
    return '"' + quote_body(data, hexmode) + '"'


def hexmode_of(strings_in_hex):
    """DecodeOptions.strings_in_hex (None, "non-ascii", "all") as 0, 1, 2."""
    return {None: 0, "none": 0, "non-ascii": 1, "all": 2}.get(strings_in_hex, 0)
