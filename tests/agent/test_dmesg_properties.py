"""Property-based tests: malformed and random records never crash the parsers, and every valid
record (built from valid parts) comes back with all its fields."""

import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from target.dmesg.format import Escaper, TextFormatter
from target.dmesg.jsonout import JsonFormatter, JsonLinesFormatter
from target.dmesg.record import Record, format_kmsg, parse_kmsg, parse_syslog, parse_syslog_line
from target.dmesg.source import KmsgFileSource

SETTINGS = settings(max_examples=300, deadline=None)

keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)
records = st.builds(
    Record,
    pri=st.integers(0, 255 << 3 | 7),
    seq=st.integers(0, 2 ** 64 - 1),
    ts_usec=st.integers(0, 2 ** 64 - 1),
    text=st.binary(max_size=200),
    flags=st.sampled_from(["-", "c", "+"]),
    caller=st.one_of(st.just(""), st.builds("T{}".format, st.integers(1, 4194304)),
                     st.builds("C{}".format, st.integers(0, 4095))),
    dictionary=st.lists(st.tuples(keys, st.binary(max_size=40)), max_size=3).map(tuple),
)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_value_error(data):
    try:
        rec = parse_kmsg(data)
    except ValueError:
        return
    assert isinstance(rec.text, bytes) and rec.seq >= 0 and rec.ts_usec >= 0


@SETTINGS
@given(records)
def test_valid_records_round_trip_with_all_fields(rec):
    assert parse_kmsg(format_kmsg(rec)) == rec


@SETTINGS
@given(records, st.integers(0, 40), st.binary(min_size=1, max_size=3))
def test_damaged_records_never_escape_as_other_errors(rec, cut, junk):
    data = format_kmsg(rec)
    for damaged in (data[:cut], junk + data, data.replace(b",", junk, 1),
                    data.replace(b";", b"", 1)):
        try:
            parse_kmsg(damaged)
        except ValueError:
            pass


@SETTINGS
@given(st.lists(st.one_of(records.map(format_kmsg), st.binary(max_size=50)), max_size=20))
def test_kmsg_file_keeps_every_valid_record(tmp_path_factory, items):
    items = [item.replace(b"\0", b"") for item in items]
    path = tmp_path_factory.mktemp("k") / "saved"
    path.write_bytes(b"\0".join(items))
    source = KmsgFileSource(str(path))
    got = list(source.records())
    expected = []
    for item in items:
        try:
            expected.append(parse_kmsg(item))
        except ValueError:
            pass
    assert got == expected
    valid = sum(1 for item in items if item.strip())
    assert source.invalid == valid - len(expected)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_syslog_buffers_never_crash(data):
    for rec in parse_syslog(data):
        assert isinstance(rec.text, bytes)
        TextFormatter(decode=True).format(rec)


syslog_text = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\0", b" "))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 99999), st.integers(0, 999999),
                          syslog_text), min_size=1, max_size=20))
def test_valid_syslog_lines_come_back(parts):
    buf = b"".join(b"<%d>[%5d.%06d] %s\n" % (pri, sec, usec, text)
                   for pri, sec, usec, text in parts)
    got = [(r.pri, r.ts_usec, r.text) for r in parse_syslog(buf)]
    assert got == [(pri, sec * 1000000 + usec, text) for pri, sec, usec, text in parts]


@SETTINGS
@given(st.binary(max_size=200), st.integers(0, 40))
def test_escaped_text_is_safe_to_print(data, indent):
    for utf8 in (True, False):
        out = Escaper(utf8=utf8)(data, indent)
        text = out.decode("utf-8") if utf8 else out.decode("ascii")
        assert not any(ord(c) < 0x20 and c not in "\t\n\x0b\x0c\r" for c in text)
        assert "\x7f" not in text
        assert out.count(b"\n") == data.count(b"\n")


@SETTINGS
@given(st.lists(records, max_size=8), st.booleans())
def test_json_outputs_parse(recs, decode):
    fmt = JsonFormatter(decode=decode)
    doc = b"".join(fmt.format(r) for r in recs) + fmt.close()
    shown = [r for r in recs if r.text]
    if not shown:
        assert doc == b""
    else:
        parsed = json.loads(doc.decode("utf-8", "surrogateescape"))
        assert [o["seq"] for o in parsed["dmesg"]] == [r.seq for r in shown]
        for obj, rec in zip(parsed["dmesg"], shown):
            assert obj["msg"] in (None, rec.text.split(b"\0")[0].decode("utf-8", "surrogateescape"))
            assert decode or obj["pri"] == rec.pri
    lines = JsonLinesFormatter("kmsg")
    for rec in recs:
        obj = json.loads(lines.format(rec).decode("utf-8"))
        assert (obj["seq"], obj["pri"], obj["level"]) == (rec.seq, rec.pri,
                                                          lines_level(rec.pri))
        assert obj["msg"] == rec.text.decode("utf-8", "replace")


def lines_level(pri):
    return ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")[pri & 7]


@SETTINGS
@given(st.binary(max_size=120))
def test_one_syslog_line_always_parses(line):
    assume(b"\n" not in line)
    rec = parse_syslog_line(line)
    assert line.endswith(rec.text)
