"""host.tracedat: trace.dat (v6) from a capture directory, checked with Debian's trace-cmd.

The honest test makes a real capture from this machine's tracefs (tests/host/capture_helper.py),
writes trace.dat from it and has `trace-cmd report` read it back: every event must agree
with the kernel's own `trace` text of the same buffer (timestamp, CPU, pid, event name,
and with plugins off the whole text). Bad captures must give one BoardtraceError and leave
no file behind.
"""

import collections
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from host.errors import BoardtraceError
from host.tracedat import write_tracedat
from tests.agent.event_formats import event_format
from tests.host.capture_helper import CaptureUnavailable, make_capture

TRACE_CMD = shutil.which("trace-cmd")
needs_trace_cmd = pytest.mark.skipif(
    TRACE_CMD is None, reason="trace-cmd is not installed (apt-get install -y trace-cmd)")

KERNEL_LINE = re.compile(r"^\s*(?P<comm>.*)-(?P<pid>\d+)\s+(?:\(.*?\)\s+)?\[(?P<cpu>\d+)\]\s+"
                         r"(?P<flags>\S+)\s+(?P<ts>\d+\.\d+): (?P<event>\w+): ?(?P<rest>.*)$")
REPORT_LINE = re.compile(r"^\s*(?P<comm>.*)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
                         r"(?P<ts>\d+\.\d+): (?P<event>\w+):\s*(?P<rest>.*)$")


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    try:
        return make_capture(tmp_path_factory.mktemp("capture"))
    except CaptureUnavailable as e:
        pytest.skip(f"no real capture on this machine: {e}")


@pytest.fixture(scope="module")
def tracedat(capture, tmp_path_factory):
    out = tmp_path_factory.mktemp("dat") / "trace.dat"
    write_tracedat(capture, out)
    return out


def trace_cmd(*args):
    done = subprocess.run([TRACE_CMD, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


KERNEL_LOST = re.compile(r"^CPU:\d+ \[LOST \d+ EVENTS\]$")
REPORT_LOST = re.compile(r"^CPU:\d+ \[\d+ EVENTS DROPPED\]$")
# trace_marker text is the ftrace:print event; the kernel names it by its ip (always
# tracing_mark_write), trace-cmd prints "print:" and the ip (symbolic with kallsyms)
MARKER = re.compile(r"^(?:0x[0-9a-f]+|tracing_mark_write): (.*)$")


def kernel_events(capture):
    lines = [line for line in (capture / "trace.txt").read_text().splitlines()
             if line and not line.startswith("#") and not KERNEL_LOST.match(line)]
    matches = [KERNEL_LINE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches) if not m][:3]
    return [m.groupdict() for m in matches]


def report_events(stdout):
    lines = stdout.splitlines()
    assert re.fullmatch(r"cpus=\d+", lines[0]), lines[0]
    lines = [line for line in lines[1:] if not REPORT_LOST.match(line)]
    matches = [REPORT_LINE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches) if not m][:3]
    events = [m.groupdict() for m in matches]
    for e in events:
        marker = MARKER.match(e["rest"]) if e["event"] == "print" else None
        if marker:
            e["event"], e["rest"] = "tracing_mark_write", marker[1]
    return events


def by_cpu(events):
    """Each CPU's events in order: both sides keep per-CPU order; ties across CPUs may differ."""
    out = collections.defaultdict(list)
    for m in events:
        out[int(m["cpu"])].append(m)
    return out


def key(m):
    return (m["ts"], m["cpu"], m["pid"], m["event"])


@needs_trace_cmd
def test_report_reads_without_errors_or_warnings(tracedat, capture):
    done = trace_cmd("report", "-i", str(tracedat))
    assert done.stderr == ""
    meta = json.loads((capture / "meta.json").read_text())
    assert done.stdout.splitlines()[0] == f"cpus={max(meta['cpus']) + 1}"


@needs_trace_cmd
def test_every_event_agrees_with_the_kernel_text(tracedat, capture):
    kernel = kernel_events(capture)
    report = report_events(trace_cmd("report", "-i", str(tracedat)).stdout)
    assert len(kernel) > 1000, "the workload should give a real trace"
    assert len(report) == len(kernel)
    kernel_cpus, report_cpus = by_cpu(kernel), by_cpu(report)
    assert sorted(report_cpus) == sorted(kernel_cpus)
    for cpu, events in kernel_cpus.items():
        assert [key(m) for m in report_cpus[cpu]] == [key(m) for m in events], f"CPU {cpu}"
    seen = {m["event"] for m in kernel}
    assert {"sched_switch", "sys_enter", "sys_exit", "tracing_mark_write"} <= seen


@needs_trace_cmd
def test_kallsyms_section_resolves_addresses(capture, tmp_path):
    """With /proc/kallsyms in the capture, trace-cmd names the marker's ip from our
    kallsyms section, as the kernel does."""
    if not Path("/proc/kallsyms").read_text().startswith("ffff"):
        pytest.skip("/proc/kallsyms hides addresses here (kptr_restrict)")
    with_syms = tmp_path / "cap"
    shutil.copytree(capture, with_syms)
    shutil.copyfile("/proc/kallsyms", with_syms / "kallsyms")
    out = tmp_path / "trace.dat"
    write_tracedat(with_syms, out)
    marks = [line for line in trace_cmd("report", "-i", str(out)).stdout.splitlines()
             if "boardtrace-test mark" in line]
    assert len(marks) == 3
    assert all(re.search(r" print: +tracing_mark_write: boardtrace-test mark \d$", line)
               for line in marks), marks


@needs_trace_cmd
def test_without_plugins_the_text_is_the_kernels(tracedat, capture):
    """With plugins off (-N) libtraceevent prints each event from its print fmt, as the
    kernel does: the whole event text must be identical."""
    kernel = by_cpu(kernel_events(capture))
    report = by_cpu(report_events(trace_cmd("report", "-N", "-i", str(tracedat)).stdout))
    for cpu, events in kernel.items():
        assert ([key(m) + (m["rest"],) for m in report[cpu]]
                == [key(m) + (m["rest"],) for m in events]), f"CPU {cpu}"


@needs_trace_cmd
def test_sched_plugin_formats_the_same_switches(tracedat, capture):
    """With the sched plugin trace-cmd prints switches as `prev:pid [prio] S ==> next:pid
    [prio]`: built from the kernel's fields, each line must be the same. The plugin has its
    own table of state letters (it shows the kernel's I, TASK_IDLE, as W and R+ as R), so
    the state is compared only where the kernel printed R, S or D."""
    field = re.compile(r"(\w+)=(.*?)(?= \w+=| ==> |$)")
    kernel = by_cpu(m for m in kernel_events(capture) if m["event"] == "sched_switch")
    report = by_cpu(m for m in report_events(trace_cmd("report", "-i", str(tracedat)).stdout)
                    if m["event"] == "sched_switch")
    assert kernel and sorted(report) == sorted(kernel)
    for cpu, events in kernel.items():
        assert len(report[cpu]) == len(events)
        for k, r in zip(events, report[cpu]):
            f = dict(field.findall(k["rest"]))
            prev, state, nxt = re.fullmatch(r"(.*\]) (\S+) ==> (.*)", r["rest"]).groups()
            assert prev == f"{f['prev_comm']}:{f['prev_pid']} [{f['prev_prio']}]"
            assert nxt == f"{f['next_comm']}:{f['next_pid']} [{f['next_prio']}]"
            if f["prev_state"] in ("R", "S", "D"):
                assert state == f["prev_state"], k


@needs_trace_cmd
def test_cpu_filter(tracedat, capture):
    kernel = by_cpu(kernel_events(capture))
    for cpu, events in kernel.items():
        report = report_events(trace_cmd("report", "--cpu", str(cpu), "-i", str(tracedat)).stdout)
        assert [key(m) for m in report] == [key(m) for m in events]


@needs_trace_cmd
def test_stat_shows_cpustat_and_page_aligned_data(tracedat, capture):
    out = trace_cmd("report", "--stat", "-i", str(tracedat)).stdout
    meta = json.loads((capture / "meta.json").read_text())
    for cpu in meta["cpus"]:
        stats = (capture / "stats" / f"cpu{cpu}").read_text()
        assert f"CPU: {cpu}\n{stats}" in out
        offset = int(re.search(rf"CPU{cpu} data recorded at offset=0x([0-9a-f]+)", out)[1], 16)
        size = int(re.search(rf"CPU{cpu} data recorded at offset=0x[0-9a-f]+\n\s+(\d+) bytes",
                             out)[1])
        assert offset % meta["page_size"] == 0
        assert size == (capture / f"cpu{cpu}.raw").stat().st_size
        assert tracedat.read_bytes()[offset:offset + size] == (capture / f"cpu{cpu}.raw").read_bytes()


@needs_trace_cmd
def test_uname_and_clock(tracedat, capture):
    meta = json.loads((capture / "meta.json").read_text())
    assert trace_cmd("report", "--uname", "-i", str(tracedat)).stdout.splitlines()[1] == \
        f"Linux {meta['kernel']} {meta['arch']}"
    dump = trace_cmd("dump", "--options", "--clock", "-i", str(tracedat)).stdout
    assert "[Option TRACECLOCK" in dump and "[Option UNAME" in dump
    assert dump.rstrip().endswith("[mono]")


@needs_trace_cmd
def test_dump_accepts_the_file(tracedat, capture):
    summary = trace_cmd("dump", "--summary", "-i", str(tracedat)).stdout
    assert re.search(r"^\s*6\s+\[Version\]", summary, re.M)
    assert re.search(r"^\s*8\s+\[Bytes in a long\]", summary, re.M)
    assert "[Ftrace format, 1 events]" in summary  # formats/ftrace/print (trace_marker)
    full = trace_cmd("dump", "-i", str(tracedat))
    assert "[Flyrecord tracing data]" in full.stdout
    meta = json.loads((capture / "meta.json").read_text())
    systems = {e.split(":")[0] for e in meta["events"]}
    events = trace_cmd("dump", "--events", "-i", str(tracedat)).stdout
    assert re.search(rf"\[Events format, {len(systems)} systems\]", events)
    names = set(re.findall(r"^name: (\w+)$", events, re.M))
    assert names == {e.split(":")[1] for e in meta["events"]}


# --- a synthetic capture: other byte orders and long sizes, empty pages ------------------

HEADER_PAGE = ("\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
               "\tfield: local_t commit;\toffset:8;\tsize:{long};\tsigned:1;\n"
               "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
               "\tfield: char data;\toffset:{data};\tsize:{rest};\tsigned:0;\n")
HEADER_EVENT = ("# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n"
                "\tarray       :   32 bits\n\n\tpadding     : type == 29\n"
                "\ttime_extend : type == 30\n\ttime_stamp : type == 31\n"
                "\tdata max type_len  == 28\n")


def synthetic(root, big_endian=False, long_size=8, pages=2, cpus=(0, 1)):
    """A capture of empty ring-buffer pages (timestamp and commit 0)."""
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format": "boardtrace-ftrace", "version": 1, "page_size": 4096, "cpus": list(cpus),
            "clock": "mono", "tracer": "nop", "events": [], "kernel": "6.1.0", "arch": "arm",
            "long_size": long_size, "big_endian": big_endian, "lost": {},
            "instance": "boardtrace-x", "start_monotonic_ns": 0, "stop_monotonic_ns": 1}
    (root / "meta.json").write_text(json.dumps(meta))
    data = 8 + long_size
    (root / "header_page").write_text(HEADER_PAGE.format(long=long_size, data=data,
                                                         rest=4096 - data))
    (root / "header_event").write_text(HEADER_EVENT)
    (root / "saved_cmdlines").write_text("1 init\n")
    for cpu in cpus:
        (root / f"cpu{cpu}.raw").write_bytes(bytes(4096 * pages))
    return root


@pytest.mark.parametrize("big_endian,long_size", [(False, 8), (True, 4), (False, 4), (True, 8)])
def test_header_fields_follow_the_capture(tmp_path, big_endian, long_size):
    cap = synthetic(tmp_path / "cap", big_endian, long_size, cpus=(0, 2))
    out = tmp_path / "trace.dat"
    write_tracedat(cap, out)
    data = out.read_bytes()
    order = ">" if big_endian else "<"
    assert data[:10] == b"\x17\x08\x44tracing"
    assert data[10:12] == b"6\0"
    assert data[12] == (1 if big_endian else 0) and data[13] == long_size
    assert struct.unpack_from(order + "I", data, 14)[0] == 4096
    assert data[18:30] == b"header_page\0"
    assert struct.unpack_from(order + "Q", data, 30)[0] == len((cap / "header_page").read_bytes())
    table = data.index(b"flyrecord\0") + 10
    entries = [struct.unpack_from(order + "QQ", data, table + 16 * i) for i in range(3)]
    assert entries[1] == (0, 0)  # CPU 1 is not in the capture
    assert entries[0][0] % 4096 == 0 and entries[0][1] == 8192
    assert entries[2] == (entries[0][0] + 8192, 8192)
    assert len(data) == entries[2][0] + 8192


@needs_trace_cmd
@pytest.mark.parametrize("big_endian,long_size", [(True, 4), (False, 4)])
def test_trace_cmd_reads_other_byte_orders_and_long_sizes(tmp_path, big_endian, long_size):
    cap = synthetic(tmp_path / "cap", big_endian, long_size)
    out = tmp_path / "trace.dat"
    write_tracedat(cap, out)
    done = trace_cmd("report", "-i", str(out))
    assert done.stdout.strip() == "cpus=2" and done.stderr == ""
    summary = trace_cmd("dump", "--summary", "-i", str(out)).stdout
    assert f"{long_size}\t[Bytes in a long]" in summary
    assert ("Big endian" if big_endian else "Little endian") in summary


def test_optional_sections_are_written(tmp_path):
    """kallsyms, printk_formats and ftrace formats go to their sections when present."""
    cap = synthetic(tmp_path / "cap")
    (cap / "kallsyms").write_text("ffffffff81000000 T _stext\nffffffff81000100 t helper\t[mod]\n")
    (cap / "printk_formats").write_text('0xffffffff82000000 : "hello %d\\n"\n')
    (cap / "formats/ftrace/print").mkdir(parents=True)
    (cap / "formats/ftrace/print/format").write_text(PRINT_FORMAT)
    out = tmp_path / "trace.dat"
    write_tracedat(cap, out)
    data = out.read_bytes()
    for name in ("kallsyms", "printk_formats", "formats/ftrace/print/format", "saved_cmdlines"):
        assert (cap / name).read_bytes() in data, name
    if TRACE_CMD:
        summary = trace_cmd("dump", "--summary", "-i", str(out)).stdout
        assert "[Ftrace format, 1 events]" in summary
        assert f"[Kallsyms, {len((cap / 'kallsyms').read_bytes())} bytes]" in summary
        assert f"[Trace printk, {len((cap / 'printk_formats').read_bytes())} bytes]" in summary
        assert "hello %d" in trace_cmd("dump", "--printk", "-i", str(out)).stdout
        assert "_stext" in trace_cmd("dump", "--kallsyms", "-i", str(out)).stdout


PRINT_FORMAT = event_format('print', 5, [
    ('unsigned long ip', 8, 8, 0),
    ('char buf[]', 16, 0, 1)], '"%ps: %s", (void *)REC->ip, REC->buf')


# --- bad input: one BoardtraceError, nothing left behind -----------------------------------

def break_capture(root, how):
    if how == "no meta.json":
        (root / "meta.json").unlink()
    elif how == "garbage meta.json":
        (root / "meta.json").write_text("{not json")
    elif how == "foreign meta.json":
        (root / "meta.json").write_text(json.dumps({"format": "perf"}))
    elif how == "meta.json without cpus":
        meta = json.loads((root / "meta.json").read_text())
        del meta["cpus"]
        (root / "meta.json").write_text(json.dumps(meta))
    elif how == "no header_page":
        (root / "header_page").unlink()
    elif how == "no header_event":
        (root / "header_event").unlink()
    elif how == "no saved_cmdlines":
        (root / "saved_cmdlines").unlink()
    elif how == "no cpu1.raw":
        (root / "cpu1.raw").unlink()
    elif how == "truncated cpu0.raw":
        with open(root / "cpu0.raw", "r+b") as f:
            f.truncate(4096 + 100)
    elif how == "missing event format":
        meta = json.loads((root / "meta.json").read_text())
        meta["events"] = ["sched:sched_switch"]
        (root / "meta.json").write_text(json.dumps(meta))
    elif how == "long size disagrees":
        meta = json.loads((root / "meta.json").read_text())
        meta["long_size"] = 4
        (root / "meta.json").write_text(json.dumps(meta))


BROKEN = ["no meta.json", "garbage meta.json", "foreign meta.json", "meta.json without cpus",
          "no header_page", "no header_event", "no saved_cmdlines", "no cpu1.raw",
          "truncated cpu0.raw", "missing event format", "long size disagrees"]


@pytest.mark.parametrize("how", BROKEN)
def test_bad_capture_is_one_clear_error_and_no_file(tmp_path, how):
    cap = synthetic(tmp_path / "cap")
    break_capture(cap, how)
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(BoardtraceError) as info:
        write_tracedat(cap, outdir / "trace.dat")
    message = str(info.value)
    assert "\n" not in message and str(cap) in message
    assert list(outdir.iterdir()) == []


def test_truncated_raw_names_the_file_and_sizes(tmp_path):
    cap = synthetic(tmp_path / "cap")
    break_capture(cap, "truncated cpu0.raw")
    with pytest.raises(BoardtraceError, match=r"cpu0\.raw is truncated: 4196 bytes"):
        write_tracedat(cap, tmp_path / "trace.dat")


def test_failure_keeps_an_existing_file(tmp_path):
    out = tmp_path / "trace.dat"
    out.write_bytes(b"previous")
    cap = synthetic(tmp_path / "cap")
    break_capture(cap, "no cpu1.raw")
    with pytest.raises(BoardtraceError):
        write_tracedat(cap, out)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cap", "trace.dat"]


def test_unwritable_destination_is_one_error(tmp_path):
    cap = synthetic(tmp_path / "cap")
    with pytest.raises(BoardtraceError, match="cannot write"):
        write_tracedat(cap, tmp_path / "no" / "such" / "trace.dat")


def test_rewrite_replaces_the_file(tmp_path):
    cap = synthetic(tmp_path / "cap")
    out = tmp_path / "trace.dat"
    out.write_bytes(b"old")
    write_tracedat(cap, out)
    assert out.read_bytes()[:10] == b"\x17\x08\x44tracing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cap", "trace.dat"]
