"""The function_graph printer (target/ftrace/graph.py) on hand-built funcgraph_entry /
funcgraph_exit sequences: every line is compared whole with what the kernel's
trace_functions_graph.c prints for it (the formats are riscv64 6.12's)."""

import io
import json
import os
import struct
from contextlib import redirect_stdout

import pytest

from event_formats import event_format
from target.ftrace import formats, graph, report, text

ENTRY_FORMAT = event_format('funcgraph_entry', 11, [
    ('unsigned long func', 8, 8, 0),
    ('int depth', 16, 4, 1)], '"--> %ps (%d)", (void *)REC->func, REC->depth')
EXIT_FORMAT = event_format('funcgraph_exit', 10, [
    ('unsigned long func', 8, 8, 0),
    ('int depth', 16, 4, 1),
    ('unsigned int overrun', 20, 4, 0),
    ('unsigned long long calltime', 24, 8, 0),
    ('unsigned long long rettime', 32, 8, 0)],
    '"<-- %ps (%d) (start: %llx  end: %llx) over: %d", (void *)REC->func, REC->depth, '
    'REC->calltime, REC->rettime, REC->depth')
PRINT_FORMAT = event_format('print', 5, [
    ('unsigned long ip', 8, 8, 0),
    ('char buf[]', 16, 0, 0)], '"%ps: %s", (void *)REC->ip, REC->buf')
ENTRY = formats.parse_format(ENTRY_FORMAT, "ftrace")
EXIT = formats.parse_format(EXIT_FORMAT, "ftrace")
PRINT = formats.parse_format(PRINT_FORMAT, "ftrace")

VFS_READ, RW_VERIFY, SEC_FILE, IRQ_FUNC = 0xffffffff80300000, 0xffffffff80300400, \
    0xffffffff80300800, 0xffffffff80001010
KALLSYMS = """ffffffff80001000 T __irqentry_text_start
ffffffff80001010 T handle_riscv_irq
ffffffff80001100 T __irqentry_text_end
ffffffff80300000 T vfs_read
ffffffff80300400 T rw_verify_area
ffffffff80300800 T security_file_permission
"""
COMMS = {123: "ls", 173: "dropbear", 174: "python3"}


def entry(cpu, ts, func, depth=0, pid=123):
    return ("event", ts, cpu, ENTRY, {"common_pid": pid, "common_flags": 0,
                                      "common_preempt_count": 0, "func": func, "depth": depth})


def exit_(cpu, ts, func, duration, depth=0, pid=123):
    return ("event", ts, cpu, EXIT, {"common_pid": pid, "common_flags": 0,
                                     "common_preempt_count": 0, "func": func, "depth": depth,
                                     "overrun": 0, "calltime": ts - duration, "rettime": ts})


def printer(ncpus=2, **kwargs):
    renderer = text.Renderer(COMMS, text.Symbols(KALLSYMS), "mono", "6.12.0", 8)
    return graph.GraphPrinter(renderer, graph.cpu_width(list(range(ncpus))),
                              graph.irq_range(KALLSYMS), **kwargs)


def lines(items, ncpus=2, **kwargs):
    """Print items (in time order) through per-CPU streams, as a capture does."""
    streams = [[i for i in items if i[2] == cpu] for cpu in range(ncpus)]
    return list(printer(ncpus, **kwargs).lines(streams))


def test_a_leaf_is_one_line_with_its_duration():
    assert lines([entry(0, 1000, VFS_READ), exit_(0, 1500, VFS_READ, 500)]) == [
        " 0)   0.500 us    |  vfs_read();"]


def test_nested_calls_open_and_close_with_the_indent():
    assert lines([
        entry(0, 1000, VFS_READ),
        entry(0, 1100, RW_VERIFY, depth=1),
        entry(0, 1200, SEC_FILE, depth=2),
        exit_(0, 1300, SEC_FILE, 100, depth=2),
        exit_(0, 1600, RW_VERIFY, 500, depth=1),
        exit_(0, 263000, VFS_READ, 262000),
    ]) == [
        " 0)               |  vfs_read() {",
        " 0)               |    rw_verify_area() {",
        " 0)   0.100 us    |      security_file_permission();",
        " 0)   0.500 us    |    }",
        " 0) ! 262.000 us  |  }",
    ]


@pytest.mark.parametrize("duration, column", [
    (10000, "  10.000 us   "),          # not above 10 us: no mark
    (10001, "+ 10.001 us   "),
    (100000, "+ 100.000 us  "),
    (100001, "! 100.001 us  "),
    (1000000, "! 1000.000 us "),
    (1000001, "# 1000.001 us "),
    (10000000, "# 10000.00 us "),       # 5 digits of us: the fraction shrinks to 2
    (10000001, "* 10000.00 us "),
    (100000001, "@ 100000.0 us "),
    (1000000001, "$ 1000000 us  "),     # 7 digits: no fraction
    (123456789012, "$ 123456789 us "),  # wider than the column: no padding
])
def test_overhead_marks_at_each_threshold(duration, column):
    got = lines([entry(0, 1000, VFS_READ), exit_(0, 1000 + duration, VFS_READ, duration)])
    assert got == [" 0) " + column + "|  vfs_read();"]


def test_without_overhead_option_there_is_no_mark():
    got = lines([entry(0, 1000, VFS_READ), exit_(0, 201000, VFS_READ, 200000)],
                options={"cpu", "duration"})
    assert got == [" 0)   200.000 us  |  vfs_read();"]


def test_a_task_switch_prints_a_separator():
    assert lines([
        entry(1, 1000, VFS_READ, pid=173), exit_(1, 2000, VFS_READ, 1000, pid=173),
        entry(1, 3000, VFS_READ, pid=0), exit_(1, 4000, VFS_READ, 1000, pid=0),
        entry(1, 5000, VFS_READ, pid=174), exit_(1, 6000, VFS_READ, 1000, pid=174),
    ]) == [
        " 1)   1.000 us    |  vfs_read();",
        " ------------------------------------------",
        " 1)  dropbea-173   =>    <idle>-0   ",
        " ------------------------------------------",
        "",
        " 1)   1.000 us    |  vfs_read();",
        " ------------------------------------------",
        " 1)    <idle>-0    =>  python3-174  ",
        " ------------------------------------------",
        "",
        " 1)   1.000 us    |  vfs_read();",
    ]


def test_the_pid_is_followed_per_cpu():
    # the first event of each CPU sets its pid without a separator
    assert lines([
        entry(0, 1000, VFS_READ, pid=173), exit_(0, 2000, VFS_READ, 1000, pid=173),
        entry(1, 3000, VFS_READ, pid=174), exit_(1, 4000, VFS_READ, 1000, pid=174),
    ]) == [" 0)   1.000 us    |  vfs_read();", " 1)   1.000 us    |  vfs_read();"]


def test_an_exit_without_its_entry_names_the_function():
    assert lines([
        exit_(0, 1000, RW_VERIFY, 300, depth=1),
        exit_(0, 263000, VFS_READ, 262000),
    ]) == [
        " 0)   0.300 us    |    } /* rw_verify_area */",
        " 0) ! 262.000 us  |  } /* vfs_read */",
    ]


def test_an_exit_at_a_depth_whose_entry_was_another_function_is_named():
    assert lines([
        entry(0, 1000, VFS_READ),
        entry(0, 1100, SEC_FILE, depth=1),
        exit_(0, 1600, RW_VERIFY, 500, depth=1),
        exit_(0, 2000, VFS_READ, 1000),
    ]) == [
        " 0)               |  vfs_read() {",
        " 0)               |    security_file_permission() {",
        " 0)   0.500 us    |    } /* rw_verify_area */",
        " 0)   1.000 us    |  }",
    ]


def test_the_leaf_lookahead_is_the_next_event_of_the_same_cpu():
    # cpu 1's event falls between, in time, cpu 0's entry and exit: still a leaf on cpu 0
    assert lines([
        entry(0, 1000, VFS_READ),
        entry(1, 1200, VFS_READ, pid=174), exit_(1, 1300, VFS_READ, 100, pid=174),
        exit_(0, 1500, VFS_READ, 500),
    ]) == [" 0)   0.500 us    |  vfs_read();", " 1)   0.100 us    |  vfs_read();"]


def test_an_exit_of_another_pid_does_not_make_a_leaf():
    # (the closing brace matches: the kernel remembers the entries per CPU, not per task)
    assert lines([
        entry(0, 1000, VFS_READ, pid=173),
        exit_(0, 1500, VFS_READ, 500, pid=174),
    ]) == [
        " 0)               |  vfs_read() {",
        " ------------------------------------------",
        " 0)  dropbea-173   =>  python3-174  ",
        " ------------------------------------------",
        "",
        " 0)   0.500 us    |  }",
    ]


def test_the_cpu_column_is_as_wide_as_the_highest_cpu():
    got = lines([entry(11, 1000, VFS_READ), exit_(11, 1500, VFS_READ, 500)], ncpus=12)
    assert got == [" 11)   0.500 us    |  vfs_read();"]
    got = lines([entry(3, 1000, VFS_READ), exit_(3, 1500, VFS_READ, 500)], ncpus=12)
    assert got == ["  3)   0.500 us    |  vfs_read();"]


def test_irq_entry_functions_are_marked():
    assert lines([
        entry(0, 1000, VFS_READ),
        entry(0, 1100, IRQ_FUNC, depth=1), exit_(0, 1300, IRQ_FUNC, 200, depth=1),
        exit_(0, 2000, VFS_READ, 1000),
    ]) == [
        " 0)               |  vfs_read() {",
        " 0)   ==========> |",
        " 0)   0.200 us    |    handle_riscv_irq();",
        " 0)   <========== |",
        " 0)   1.000 us    |  }",
    ]


def test_other_events_are_comments_at_the_current_depth():
    marker = ("event", 1200, 0, PRINT, {"common_pid": 123, "common_flags": 0,
                                         "common_preempt_count": 0, "ip": VFS_READ,
                                         "buf": "hello\n"})
    assert lines([
        entry(0, 1000, VFS_READ),
        entry(0, 1100, RW_VERIFY, depth=1),
        marker,
        exit_(0, 1600, RW_VERIFY, 500, depth=1),
        exit_(0, 2000, VFS_READ, 1000),
    ]) == [
        " 0)               |  vfs_read() {",
        " 0)               |    rw_verify_area() {",
        " 0)               |      /* hello */",
        " 0)   0.500 us    |    }",
        " 0)   1.000 us    |  }",
    ]


def test_proc_and_abstime_options():
    got = lines([entry(0, 5123456789, VFS_READ), exit_(0, 5123457289, VFS_READ, 500)],
                options={"abstime", "cpu", "proc", "duration", "overhead"})
    assert got == ["    5.123456 |   0)     ls-123     |   0.500 us    |  vfs_read();"]


def test_lost_events_are_reported():
    items = [("lost", 900, 0, 7, None), entry(0, 1000, VFS_READ),
             exit_(0, 1500, VFS_READ, 500)]
    assert lines(items) == ["CPU:0 [LOST 7 EVENTS]", " 0)   0.500 us    |  vfs_read();"]


# -- through `ftrace report` on a capture directory ---------------------------------------------

def record(payload, delta):
    payload = payload.ljust((len(payload) + 3) // 4 * 4, b"\0")
    return struct.pack("<I", (delta << 5) | (len(payload) // 4)) + payload


def raw_entry(pid, func, depth):
    return struct.pack("<HBBiQi", 11, 0, 0, pid, func, depth)


def raw_exit(pid, func, depth, calltime, rettime):
    return struct.pack("<HBBiQiIQQ", 10, 0, 0, pid, func, depth, 0, calltime, rettime)


GRAPH_LINES = [
    " 0)               |  vfs_read() {",
    " 0)   0.500 us    |    rw_verify_area();",
    " 0) ! 262.000 us  |  }",
]


def write_graph_capture(directory):
    """A function_graph capture directory of one nested call: vfs_read -> rw_verify_area."""
    tmp_path = directory
    data = b"".join([
        record(raw_entry(123, VFS_READ, 0), 0),
        record(raw_entry(123, RW_VERIFY, 1), 100),
        record(raw_exit(123, RW_VERIFY, 1, 1100, 1600), 500),
        record(raw_exit(123, VFS_READ, 0, 1000, 263000), 261400),
    ])
    page = (struct.pack("<QQ", 1000, len(data)) + data).ljust(4096, b"\0")
    (tmp_path / "cpu0.raw").write_bytes(page)
    for fmt_text, name in ((ENTRY_FORMAT, "funcgraph_entry"), (EXIT_FORMAT, "funcgraph_exit")):
        os.makedirs(tmp_path / "formats" / "ftrace" / name)
        (tmp_path / "formats" / "ftrace" / name / "format").write_text(fmt_text)
    (tmp_path / "kallsyms").write_text(KALLSYMS)
    (tmp_path / "saved_cmdlines").write_text("123 ls\n")
    meta = {"format": "boardtrace-ftrace", "version": 1, "page_size": 4096, "cpus": [0],
            "clock": "mono", "tracer": "function_graph", "events": [], "kernel": "6.12.0",
            "long_size": 8, "big_endian": False, "lost": {"0": 0}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))


def test_report_prints_the_graph_for_a_function_graph_capture(tmp_path):
    write_graph_capture(tmp_path)
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.main([str(tmp_path)]) == 0
    assert out.getvalue().splitlines() == GRAPH_LINES
    # JSON output stays one object per event
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.main([str(tmp_path), "--json"]) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["funcgraph_entry", "funcgraph_entry",
                                            "funcgraph_exit", "funcgraph_exit"]
