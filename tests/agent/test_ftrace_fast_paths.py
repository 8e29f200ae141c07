"""The decoder's fast paths against the plain way of doing the same thing, on built captures:
merging CPUs a page at a time (heapq.merge item by item), JSON Lines from per-format templates
(json.dumps of json_items), print fmts that leave out conversions which cannot change a value
(the C conversion of every argument), and report's batched writing (one line at a time)."""

import heapq
import io
import json
import os
import struct
from contextlib import redirect_stdout

import pytest
from hypothesis import given, settings, strategies as st

from target.ftrace import decode, formats, printfmt, report, text

DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
COMMON = """\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

"""

# every kind of field, a print fmt with quotes, %s, array elements and casts
KINDS = """name: kinds
ID: 100
format:
""" + COMMON + """\tfield:signed char s8;\toffset:8;\tsize:1;\tsigned:1;
\tfield:unsigned short u16;\toffset:10;\tsize:2;\tsigned:0;
\tfield:int s32;\toffset:12;\tsize:4;\tsigned:1;
\tfield:unsigned long u64;\toffset:16;\tsize:8;\tsigned:0;
\tfield:char comm[8];\toffset:24;\tsize:8;\tsigned:0;
\tfield:u16 arr[3];\toffset:32;\tsize:6;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:0;
\tfield:__data_loc u8[] blob;\toffset:44;\tsize:4;\tsigned:0;
\tfield:struct in6_addr addr;\toffset:48;\tsize:16;\tsigned:0;
\tfield:int part;\toffset:60;\tsize:4;\tsigned:1;
\tfield:char rest[];\toffset:64;\tsize:0;\tsigned:0;

print fmt: "s8=%d u16=%x s32=%u u64=%lx comm=\\"%s\\" arr1=%hu name=%s 100%% c=%c", REC->s8, \
REC->u16, REC->s32, (unsigned long)REC->u64, REC->comm, REC->arr[1], __get_str(name), REC->s8
"""
# numbers only: the print fmt formats straight from the record
PLAIN = """name: plain
ID: 101
format:
""" + COMMON + """\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;

print fmt: "NR %ld = %ld", REC->id, REC->ret
"""
# a name used twice: json_items keeps one value, the template path must not differ
TWICE = """name: twice
ID: 102
format:
""" + COMMON + """\tfield:int x;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int x;\toffset:12;\tsize:4;\tsigned:1;

print fmt: "x=%d", REC->x
"""
# numbers and arrays only: text and JSON straight from the Struct's values
ARRAYS = """name: arrays
ID: 104
format:
""" + COMMON + """\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[3];\toffset:16;\tsize:24;\tsigned:0;

print fmt: "NR %ld (%lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2]
"""
# the same with what needs the record: bytes (JSON hex), %c, an index past the array (the
# print fmt raises: printed as the fields)
MIXED = """name: mixed
ID: 105
format:
""" + COMMON + """\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[3];\toffset:16;\tsize:24;\tsigned:0;
\tfield:struct foo blob;\toffset:40;\tsize:6;\tsigned:0;

print fmt: "c=%c a=%lx", REC->id, REC->args[3]
"""
# a print fmt we do not interpret: printed as `name: field=value ...`
NOPRINT = """name: noprint
ID: 103
format:
""" + COMMON + """\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;
\tfield:u16 arr[2];\toffset:12;\tsize:4;\tsigned:0;
\tfield:struct foo blob;\toffset:16;\tsize:6;\tsigned:0;
\tfield:__data_loc char[] s;\toffset:24;\tsize:4;\tsigned:0;
\tfield:char c[4];\toffset:28;\tsize:4;\tsigned:0;

print fmt: "a=%d", REC->nothing
"""
STRINGS = ['plain', 'quote " backslash \\ tab \t nl \n', 'caf\u00e9 \u20ac \U0001F600',
           '\x01\x1f\x7f', '%d %s %%', '']


def record(event_id, body, pid=7, flags=0x1, preempt=0x12):
    return struct.pack("<HBBi", event_id, flags, preempt, pid) + body


def kinds_record(i):
    value = STRINGS[i % len(STRINGS)].encode()
    name, blob = value + b"\0", bytes([i, 0, 255])
    name_at = 72                                          # after the flexible array's start
    fixed = struct.pack("<bxHiQ8s3Hxx", [-128, -1, 0, 127][i % 4], 0xffff - i,
                        [-1, 0, 2 ** 31 - 1, -2 ** 31][i % 4], 2 ** 64 - 1 - i, value[:8],
                        1, 0xfffe, i)                     # offsets 8-39
    locs = struct.pack("<II", len(name) << 16 | name_at, len(blob) << 16 | name_at + len(name))
    addr = b"\x00\xff" * 8                                # 48-63 (part, at 60, overlaps it)
    rest = b"tail\xff\0xy"                                # 64-71
    return record(100, fixed + locs + addr + rest + name + blob)


def noprint_record(i):
    value = STRINGS[i].encode() + b"\0"
    return record(103, struct.pack("<i2H6sxxI4s", -i, i, 65535, b"%\0\xff", len(value) << 16 | 32,
                                   STRINGS[i].encode()[:4]) + value)


def arrays_record(event_id, i):
    return record(event_id, struct.pack("<q3Q6s", 1 - i, i, 2 ** 64 - 1, 7, b"\xff"))


def page(records, timestamp, flags=0, lost=None):
    data = b""
    for delta, rec in records:
        rec = rec.ljust((len(rec) + 3) & ~3, b"\0")
        if len(rec) <= 112:
            data += struct.pack("<I", delta << 5 | len(rec) // 4) + rec
        else:
            data += struct.pack("<II", delta << 5, len(rec) + 4) + rec
    body = struct.pack("<QQ", timestamp, len(data) | flags) + data
    if lost is not None:
        body += struct.pack("<Q", lost)
    return body.ljust(4096, b"\0")


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast")
    meta = {"format": "boardtrace-ftrace", "version": 1, "page_size": 4096, "cpus": [0, 1],
            "clock": "mono", "tracer": "nop", "kernel": "6.18.0", "long_size": 8,
            "big_endian": False, "lost": {"0": 0, "1": 3}}
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "saved_cmdlines").write_text('7 we"ird\\n\n8 plain\n')
    for system, fmt in (("test", KINDS), ("raw", PLAIN), ("test", TWICE), ("test", NOPRINT),
                        ("raw", ARRAYS), ("raw", MIXED)):
        name = fmt.split("\n")[0].split()[1]
        os.makedirs(out / "formats" / system / name)
        (out / "formats" / system / name / "format").write_text(fmt)
    cpu0 = [page([(3, kinds_record(i)) for i in range(12)], 1000),
            page([(5, record(101, struct.pack("<qq", i, -i))) for i in range(40)], 1100),
            page([(1, record(102, struct.pack("<ii", 1, 2))), (1, record(999, b"??"))], 2000,
                 flags=1 << 31 | 1 << 30, lost=42),
            b"\xff" * 4096]
    cpu1 = [page([(7, record(101, struct.pack("<qq", i, i), pid=8, flags=0, preempt=0))
                  for i in range(30)], 1050),
            page([(0, kinds_record(i)) for i in range(6)], 1100, flags=1 << 31),
            page([(2, record(101, struct.pack("<qq", 1, 1)))], 990),
            page([(1, noprint_record(i)) for i in range(len(STRINGS))], 3000),
            page([(1, arrays_record(104 + i % 2, i)) for i in range(6)], 2500)]
    (out / "cpu0.raw").write_bytes(b"".join(cpu0))
    (out / "cpu1.raw").write_bytes(b"".join(cpu1))
    return str(out)


def test_json_lines_are_json_items_dumped(capture_dir):
    capture = decode.Capture(capture_dir)
    counts = {"event": 0, "lost": 0, "corrupt": 0, "unknown": 0}
    lines = list(decode.json_lines(capture, None, counts))
    items = list(decode.json_items(capture))
    assert lines == [DUMPS(item) for item in items]
    kinds = [item["type"] for item in items]
    assert counts == {kind: kinds.count(kind) for kind in counts}
    assert counts["lost"] and counts["corrupt"] and counts["unknown"]
    fields = {item["event"]: item["fields"] for item in items if item["type"] == "event"}
    assert set(fields) == {"kinds", "plain", "twice", "noprint", "arrays", "mixed"}
    assert fields["kinds"]["part"] is None        # overlaps addr: not decoded
    for cpu in ([0], [1]):
        assert list(decode.json_lines(capture, cpu)) == [
            DUMPS(item) for item in decode.json_items(capture, cpu)]


def test_report_writes_what_the_generators_give(capture_dir):
    capture = decode.Capture(capture_dir)
    for args, lines in (([], decode.text_lines(capture)), (["--json"], decode.json_lines(capture))):
        out = io.StringIO()
        with redirect_stdout(out):
            assert report.main([capture_dir] + args) == 0
        assert out.getvalue() == "".join(line + "\n" for line in lines)


def test_text_lines_are_prefix_and_body(capture_dir):
    capture = decode.Capture(capture_dir)
    renderer = capture.renderer()
    expected = []
    for kind, ts, cpu, a, b in capture.items():
        if kind == "event":
            expected.append(renderer.prefix(cpu, ts, b) + renderer.body(a, b))
        else:
            expected.append(decode.marker_line(kind, cpu, a, b))
    assert list(decode.text_lines(capture)) == expected
    assert any(line.endswith("100% c=\x80") for line in expected)


def test_generic_body_is_generic(capture_dir):
    seen = set()
    for kind, _, _, fmt, rec in decode.Capture(capture_dir).items():
        if kind == "event":
            try:
                got = text.generic_body(fmt)(rec)
            except KeyError:     # a field the Decoder left out: the callers fall back to generic
                assert any(f.name not in rec for f in fmt.own)
                continue
            assert got == text.generic(fmt, rec)
            seen.add(fmt.name)
    assert seen == {"plain", "twice", "noprint", "arrays", "mixed"}


# -- merging ------------------------------------------------------------------------------------

def pages_of(stamps, cpu, size):
    """A CPU's pages of items with these timestamps (may go back, as absolute stamps do)."""
    pages = []
    for i in range(0, len(stamps), size):
        items = [("event", ts, cpu, None, None) for ts in stamps[i:i + size]]
        pages.append((max([it[1] for it in items]), items))
    pages.insert(len(pages) // 2, (0, []))
    return pages


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=40), min_size=1, max_size=4),
       st.integers(1, 7), st.booleans())
def test_merge_is_heapq_merge(per_cpu, size, ordered):
    streams = [sorted(stamps) if ordered else stamps for stamps in per_cpu]
    want = list(heapq.merge(*[[("event", ts, cpu, None, None) for ts in stamps]
                              for cpu, stamps in enumerate(streams)], key=lambda i: i[1]))
    got = [item for batch in decode.merge([pages_of(stamps, cpu, size)
                                           for cpu, stamps in enumerate(streams)])
           for item in batch]
    assert got == want


# -- print fmt conversions ----------------------------------------------------------------------

def c_format(spec, value, bits, signed):
    """What printf prints: the value cut to the conversion's width, signed or not."""
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return spec % value


TYPES = [("s8", 1, 1), ("u8", 1, 0), ("short", 2, 1), ("u16", 2, 0), ("int", 4, 1),
         ("unsigned int", 4, 0), ("long", 8, 1), ("unsigned long", 8, 0)]
SPECS = [("%d", "%d", 32, True), ("%u", "%d", 32, False), ("%x", "%x", 32, False),
         ("%ld", "%d", 64, True), ("%lu", "%d", 64, False), ("%lx", "%x", 64, False),
         ("%hd", "%d", 16, True), ("%hhu", "%d", 8, False), ("%llx", "%x", 64, False),
         ("%08lx", "%08x", 64, False)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TYPES), st.sampled_from(SPECS), st.integers(0, 2 ** 64 - 1),
       st.booleans())
def test_left_out_conversions_print_as_c(ctype, spec, raw, as_array):
    name, size, signed = ctype
    c_spec, py_spec, bits, c_signed = spec
    decl = "%s v[2]" % name if as_array else "%s v" % name
    arg = "REC->v[1]" if as_array else "REC->v"
    fmt = formats.parse_format("name: one\nID: 5\nformat:\n" + COMMON +
                               "\tfield:%s;\toffset:8;\tsize:%d;\tsigned:%d;\n\n"
                               % (decl, size * (2 if as_array else 1), signed) +
                               'print fmt: "v=%s", %s\n' % (c_spec, arg), "test")
    value = raw & ((1 << size * 8) - 1)
    if signed and value >> (size * 8 - 1):
        value -= 1 << size * 8
    rec = {"v": [0, value] if as_array else value}
    render = printfmt.compile_print(fmt, 64)
    assert render(rec) == "v=" + c_format(py_spec, value, bits, c_signed)
