"""Parsing and formatting units of target.dmesg, on byte strings in the kernel's real formats."""

import time

import pytest

from target.cli import AgentError
from target.dmesg import filters
from target.dmesg.format import Escaper, TextFormatter, iso_time, subsys_end
from target.dmesg.jsonout import JsonFormatter, JsonLinesFormatter, json_string
from target.dmesg.record import (Record, escape, format_kmsg, parse_kmsg, parse_syslog,
                                 unescape)

# Records as read() returns them from /dev/kmsg (shapes from a 6.x kernel).
PCI = (b"6,197,95823,-;acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig ASPM]\n"
       b" SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n")
BLOCK = (b"5,344,1298053,-;virtio_blk virtio1: [vda] new size\n"
         b" SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n")
ESCAPED = b"6,90,55092,-;rcu: \\x09RCU restricting CPUs \\x5cx41 \\xc3\\xa9\n"
CALLER = b"4,1200,5000000,-,caller=T4321;WARNING: at foo\n"
CONT = b"12,7,1,c;fragment\n"


def test_kmsg_record_fields():
    rec = parse_kmsg(PCI)
    assert (rec.pri, rec.seq, rec.ts_usec, rec.flags) == (6, 197, 95823, "-")
    assert (rec.facility, rec.level) == (0, 6)
    assert rec.text == b"acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig ASPM]"
    assert rec.dictionary == (("SUBSYSTEM", b"acpi"), ("DEVICE", b"+acpi:PNP0A08:00"))


def test_kmsg_dictionary_device_forms():
    rec = parse_kmsg(BLOCK)
    assert dict(rec.dictionary) == {"SUBSYSTEM": b"virtio", "DEVICE": b"+virtio:virtio1"}
    for device in (b"b12:8", b"c127:3", b"n8", b"+pci:0000:00:01.0"):
        rec = parse_kmsg(b"6,1,2,-;x\n SUBSYSTEM=s\n DEVICE=" + device + b"\n")
        assert dict(rec.dictionary)["DEVICE"] == device


def test_kmsg_escapes_are_undone_once_left_to_right():
    rec = parse_kmsg(ESCAPED)
    # \x5c is the escaped backslash: "\x5cx41" is the literal text \x41, not "A"
    assert rec.text == b"rcu: \tRCU restricting CPUs \\x41 \xc3\xa9"


def test_kmsg_caller_and_continuation_flag():
    rec = parse_kmsg(CALLER)
    assert (rec.caller, rec.text, rec.level) == ("T4321", b"WARNING: at foo", 4)
    rec = parse_kmsg(CONT)
    assert (rec.flags, rec.facility, rec.level) == ("c", 1, 4)


def test_kmsg_unknown_fields_are_ignored():
    rec = parse_kmsg(b"6,3,4,-,future=1,caller=C1,other;text\n")
    assert (rec.caller, rec.text) == ("C1", b"text")


def test_kmsg_old_records_without_flags():
    assert parse_kmsg(b"6,3,4;text\n").flags == "-"


@pytest.mark.parametrize("data", [b"", b"no separator\n", b"6,3;two fields\n", b"x,1,2,-;t\n",
                                  b"6,-1,2,-;t\n", b"6,1,2.5,-;t\n", b";\n"])
def test_kmsg_malformed_raises_value_error(data):
    with pytest.raises(ValueError):
        parse_kmsg(data)


def test_kmsg_empty_text_is_valid():
    assert parse_kmsg(b"13,352,230740817,-;\n").text == b""


def test_format_kmsg_is_the_inverse():
    for data in (PCI, BLOCK, CALLER, CONT):
        assert format_kmsg(parse_kmsg(data)) == data
    assert parse_kmsg(ESCAPED) == parse_kmsg(format_kmsg(parse_kmsg(ESCAPED)))


def test_escape_matches_the_kernel_rule():
    assert escape(b"a\\b\x01\x7f\xc3\xa9 ~") == b"a\\x5cb\\x01\\x7f\\xc3\\xa9 ~"
    assert unescape(escape(bytes(range(256)))) == bytes(range(256))


def test_syslog_buffer_lines():
    buf = (b"<6>[    0.000000] Linux version\n<14>[  230.738229] user info\n"
           b"<11>[  230.738238] line one\n<11>[  230.738238] line two\n<13>[  230.740817] \n"
           b"<4>[   12.000001] [     T123] with caller\n")
    recs = list(parse_syslog(buf))
    assert [(r.pri, r.ts_usec, r.text) for r in recs] == [
        (6, 0, b"Linux version"), (14, 230738229, b"user info"), (11, 230738238, b"line one"),
        (11, 230738238, b"line two"), (13, 230740817, b""), (4, 12000001, b"with caller")]
    assert recs[-1].caller == "T123"
    assert all(r.seq is None for r in recs)


def test_syslog_without_prefix_or_time():
    rec = list(parse_syslog(b"plain text line\n"))[0]
    assert (rec.pri, rec.ts_usec, rec.text) == (None, 0, b"plain text line")
    assert rec.level is None and rec.facility is None
    assert list(parse_syslog(b"")) == [] and list(parse_syslog(b"\0\0\0")) == []
    # only "\n<" starts a record: other lines belong to the message before them
    assert [r.text for r in parse_syslog(b"<6>[    1.000000] a\nb\n\0")] == [b"a\nb\n\0"]


# ---- filters --------------------------------------------------------------------------------

def test_levels():
    assert filters.parse_levels("err,warn") == {3, 4}
    assert filters.parse_levels("ERR") == {3}
    assert filters.parse_levels("3,7") == {3, 7}
    assert filters.parse_levels("err+") == {0, 1, 2, 3}
    assert filters.parse_levels("+warn") == {4, 5, 6, 7}
    assert filters.parse_levels("emerg+,+debug") == {0, 7}


@pytest.mark.parametrize("bad", ["8", "erro", "3x", "", "err,,info", "+", "e+rr"])
def test_bad_levels(bad):
    with pytest.raises(AgentError):
        filters.parse_levels(bad)


def test_facilities():
    assert filters.parse_facilities("kern,user") == {0, 1}
    assert filters.parse_facilities("local0,LOCAL7,23,res0") == {16, 23, 12}
    with pytest.raises(AgentError):
        filters.parse_facilities("24")
    with pytest.raises(AgentError):
        filters.parse_facilities("local8")


def test_console_level_is_one_based():
    assert filters.parse_console_level("debug") == 8
    assert filters.parse_console_level("err") == 4
    assert filters.parse_console_level("emerg") == 1
    assert filters.parse_console_level("8") == 8
    for bad in ("0", "9", "x"):
        with pytest.raises(AgentError):
            filters.parse_console_level(bad)


NOW = 1795712460  # a Thursday


@pytest.mark.parametrize("text,expected", [
    ("now", NOW * 10 ** 6),
    ("-10min", (NOW - 600) * 10 ** 6),
    ("+1h", (NOW + 3600) * 10 ** 6),
    ("1 hour ago", (NOW - 3600) * 10 ** 6),
    ("1h 30min ago", (NOW - 5400) * 10 ** 6),
    ("5 ms ago", NOW * 10 ** 6 - 5000),
    ("@1795712000", 1795712000 * 10 ** 6),
    ("@1795712000.25", 1795712000250000),
])
def test_relative_and_epoch_times(text, expected):
    assert filters.parse_timestamp(text, NOW) == expected


def test_absolute_times_are_local():
    local = int(time.mktime((2026, 11, 26, 16, 50, 0, 0, 0, -1))) * 10 ** 6
    for text in ("2026-11-26 16:50:00", "2026-11-26T16:50:00", "26-11-26 16:50",
                 "2026-11-26 16:50", "20261126165000", "Thu 2026-11-26 16:50"):
        assert filters.parse_timestamp(text, NOW) == local, text
    assert filters.parse_timestamp("2026-11-26 16:50:00.5", NOW) == local + 500000
    midnight = int(time.mktime((2026, 11, 26, 0, 0, 0, 0, 0, -1))) * 10 ** 6
    assert filters.parse_timestamp("2026-11-26", NOW) == midnight


@pytest.mark.parametrize("bad", ["", "garbage", "10 parsecs ago", "Fri 2026-11-26 10:00",
                                 "2026-13-01", "25:00", "-", "@x"])
def test_bad_times(bad):
    with pytest.raises(ValueError):
        filters.parse_timestamp(bad, NOW)


# ---- formatting -------------------------------------------------------------------------------

def test_escaper_keeps_printable_utf8_and_escapes_the_rest():
    esc = Escaper(utf8=True)
    assert esc(b"plain text", 0) == b"plain text"
    assert esc(b"a\x01b\x7f\xff", 0) == b"a\\x01b\\x7f\\xff"
    assert esc(b"\xc3\xa9 \xc2\x85", 0) == b"\xc3\xa9 \\xc2\\x85"      # C1 control escaped
    assert esc(b"tab\tcr\r", 0) == b"tab\tcr\r"                       # isspace() passes
    assert esc(b"one\ntwo\n", 3) == b"one\n   two\n"                  # no indent at the end
    assert Escaper(utf8=False)(b"\xc3\xa9", 0) == b"\\xc3\\xa9"
    assert Escaper(noescape=True)(b"\x01\n\xff", 2) == b"\x01\n  \xff"


def test_json_string():
    assert json_string(b"") == b"null"
    assert json_string(b'a"b\\c\n\t\x01\x1b\x7f\xff') == b'"a\\"b\\\\c\\n\\t\\u0001\\u001b\x7f\xff"'
    assert json_string(b"cut\0here") == b'"cut"'


def test_subsys_end():
    assert subsys_end(b"usb 1-1: new device") == 9
    assert subsys_end(b"no colon here") == -1
    assert subsys_end(b"trailing: ") == -1     # needs a byte after the blank
    assert subsys_end(b"a:b: c") == 5


def rec(ts, text=b"x", pri=14, seq=1):
    return Record(pri, seq, ts, text)


def test_delta_and_notime_formats():
    fmt = TextFormatter("time_delta")
    assert fmt.format(rec(1500000)) == b"[    1.500000 <    0.000000>] x\n"
    assert fmt.format(rec(2000001)) == b"[    2.000001 <    0.500001>] x\n"
    fmt = TextFormatter("delta")
    fmt.format(rec(1000000))
    fmt.skip(rec(4000000))              # filtered out: still the reference for the next delta
    assert fmt.format(rec(4500000)) == b"[<    0.500000>] x\n"
    assert TextFormatter("notime").format(rec(5, b"a\nb")) == b"a\nb\n"


def test_decode_raw_and_caller():
    line = TextFormatter(decode=True).format(Record(16 << 3 | 6, 1, 1, b"m"))
    assert line == b"local0:info  : [    0.000001] m\n"
    assert TextFormatter(raw=True).format(Record(190, 1, 2000000, b"m")) == b"<190>[    2.000000] m\n"
    line = TextFormatter(caller_width=5).format(Record(6, 1, 0, b"m", caller="T12"))
    assert line == b"[    0.000000] [  T12] m\n"


def test_force_prefix_repeats_the_prefix():
    fmt = TextFormatter(decode=True, force_prefix=True)
    out = fmt.format(Record(11, 1, 1000000, b"one\ntwo\n\nthree"))
    assert out == (b"user  :err   : [    1.000000] one\nuser  :err   : [    1.000000] two\n"
                   b"user  :err   : [    1.000000] three\n")


def test_iso_time_zone_offset(monkeypatch):
    monkeypatch.setenv("TZ", "NST+3:30")
    time.tzset()
    try:
        assert iso_time(0) == b"1969-12-31T20:30:00,000000-03:30"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_json_layout_and_extras():
    fmt = JsonFormatter()
    first = fmt.format(Record(14, 5, 1500000, b"hi", dictionary=(("SUBSYSTEM", b"pci"),)))
    second = fmt.format(Record(190, 6, 2000000, b"yo"))
    assert fmt.format(Record(14, 7, 0, b"")) == b""
    doc = first + second + fmt.close()
    assert doc == (b'{\n   "dmesg": [\n      {\n         "pri": 14,\n         "time":     1.500000,\n'
                   b'         "msg": "hi",\n         "seq": 5,\n         "level": "info",\n'
                   b'         "facility": "user",\n         "dict": {\n'
                   b'            "SUBSYSTEM": "pci"\n         }\n      },{\n'
                   b'         "pri": 190,\n         "time":     2.000000,\n         "msg": "yo",\n'
                   b'         "seq": 6,\n         "level": "info",\n         "facility": "local7"\n'
                   b'      }\n   ],\n   "source": "kmsg"\n}\n')
    assert JsonFormatter().close() == b""


def test_jsonl_is_strict_json():
    import json
    fmt = JsonLinesFormatter("kmsg")
    line = fmt.format(Record(8 << 3 | 3, 9, 1000001, b"bad \xff \"q\"\n2",
                             dictionary=(("DEVICE", b"n8"),)))
    obj = json.loads(line.decode("utf-8"))
    assert obj == {"seq": 9, "pri": 67, "facility": "uucp", "level": "err", "time": 1.000001,
                   "msg": "bad \ufffd \"q\"\n2", "dict": {"DEVICE": "n8"}, "source": "kmsg"}
    assert b'"time":1.000001,' in line
