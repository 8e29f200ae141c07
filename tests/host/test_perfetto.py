"""host.perfetto: a REAL capture made on this machine (strace, ftrace and the kernel log on the
local board), exported and checked against the trace-event format and against its inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from host import REPO
from host.capture import CaptureRequest
from host.clocks import printk_offset_ns
from host.perfetto import CPU_TID_BASE, KERNEL_PID, KMSG_TID, export_perfetto, value_text
from host.profiles import load_board
from host.sessions import capture
from tests.agent.kmsg import KMSG, devkmsg_on

MARKER = "perfetto-test"
CMD = ("sh", "-c", f"ls / >/dev/null; echo '<3>{MARKER}' > /dev/kmsg")
INVOKE = str(Path(sys.executable).parent / "invoke")
REQUIRED = {"X": {"name", "ph", "ts", "dur", "pid", "tid"},
            "i": {"name", "ph", "ts", "pid", "tid", "s"},
            "M": {"name", "ph", "pid", "args"}}
METADATA = {"process_name", "thread_name", "process_sort_index", "thread_sort_index"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0 or not os.path.exists(KMSG):
        pytest.skip("needs root (ptrace, tracefs) and /dev/kmsg")
    home = tmp_path_factory.mktemp("perfetto") / "home"
    request = CaptureRequest(cmd=CMD, strace=("-f",),
                             ftrace=("-e", "sched:sched_switch", "-e", "sched:sched_process_exec"),
                             dmesg=True)
    with devkmsg_on():
        assert capture([load_board("local")], request, home=home) == 0
    dest = home / "local" / request.session_id
    assert (dest / "manifest.json").is_file()
    return dest


@pytest.fixture(scope="module")
def exported(session: Path) -> tuple[dict[str, Any], dict[str, int]]:
    out = session.parent / "trace.json"
    counts = export_perfetto(session, out)
    with open(out, encoding="utf-8") as f:
        return json.load(f), counts


def lines(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ns(us: float) -> int:
    return round(us * 1000)


def test_every_event_has_what_its_phase_requires(exported, session):
    trace, counts = exported
    assert set(trace) >= {"traceEvents", "displayTimeUnit"} and trace["displayTimeUnit"] == "ns"
    events = trace["traceEvents"]
    assert len(events) == counts["events"] > 0
    clocks = json.loads((session / "manifest.json").read_text())["clocks"]
    low, high = clocks["start"]["monotonic_ns"] - 1_000_000, clocks["end"]["monotonic_ns"] + 1_000_000
    phases: dict[str, int] = defaultdict(int)
    for e in events:
        phases[e["ph"]] += 1
        assert REQUIRED[e["ph"]] <= set(e), e
        assert isinstance(e["name"], str) and isinstance(e["pid"], int), e
        if e["ph"] == "M":
            assert e["name"] in METADATA, e
            assert "sort_index" in e["args"] if e["name"].endswith("sort_index") else e["args"]["name"]
            if e["name"].startswith("thread"):
                assert isinstance(e["tid"], int), e
            continue
        assert isinstance(e["tid"], int) and isinstance(e["ts"], (int, float)), e
        # one clock: everything falls inside the session's CLOCK_MONOTONIC span
        assert low <= ns(e["ts"]) <= high, e
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0, e
            assert ns(e["ts"] + e["dur"]) <= high, e
        else:
            assert e["s"] in ("g", "p", "t"), e
    assert phases["X"] and phases["i"] and phases["M"]


def test_one_slice_per_syscall_on_its_thread_and_failures_marked(exported, session):
    trace, counts = exported
    records = [r for r in lines(session / "strace.jsonl") if r["type"] == "syscall"]
    slices = [e for e in trace["traceEvents"] if e.get("cat", "").startswith("syscall")]
    assert len(slices) == len(records) == counts["syscalls"] > 0
    assert all(e["ph"] == "X" for e in slices)
    # the same calls, on the same tracks, at the same times
    key = lambda pid, tid, ts, name: (pid, tid, ts // 1000, name)  # noqa: E731 (µs resolution)
    assert sorted(key(e["pid"], e["tid"], ns(e["ts"]), e["name"]) for e in slices) == \
        sorted(key(r["pid"], r["tid"], r["ts_ns"], r["syscall"]) for r in records)
    failed = [e for e in slices if "error" in e["args"]]
    assert failed and len(failed) == sum(1 for r in records if r["error"])
    assert all(e["cat"] == "syscall,error" and e["args"]["retval"] == -1 for e in failed)
    assert all(e["cat"] == "syscall" for e in slices if "error" not in e["args"])
    # a thread does one call at a time: its slices never overlap (JSON slices must nest)
    by_thread: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for e in slices:
        by_thread[e["tid"]].append((ns(e["ts"]), ns(e["ts"] + e["dur"])))
    for spans in by_thread.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1 for a, b in zip(spans, spans[1:])), spans


def test_each_cpu_has_one_track_of_non_overlapping_sched_slices(exported, session):
    trace, counts = exported
    events = trace["traceEvents"]
    meta = json.loads((session / "ftrace" / "meta.json").read_text())
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == KERNEL_PID}
    sched = [e for e in events if e.get("cat") == "sched" and e["ph"] == "X"]
    assert len(sched) == counts["sched_slices"] > 0
    per_cpu: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in sched:
        assert e["pid"] == KERNEL_PID
        per_cpu[e["tid"] - CPU_TID_BASE].append(e)
    assert set(per_cpu) <= set(meta["cpus"]) and per_cpu
    for cpu, slices in per_cpu.items():
        assert names[CPU_TID_BASE + cpu] == f"CPU {cpu}"
        slices.sort(key=lambda e: e["ts"])
        for a, b in zip(slices, slices[1:]):
            assert ns(a["ts"] + a["dur"]) <= ns(b["ts"]), (a, b)
        for e in slices:
            assert e["name"] == f"{e['args']['comm']} {e['args']['pid']}"
    # every switch to a task (not the idle one) starts a slice named after next_comm/next_pid
    switches = [r for r in lines(session / "ftrace.jsonl")
                if r["type"] == "event" and r["event"] == "sched_switch" and r["fields"]["next_pid"]]
    starts = {(e["tid"] - CPU_TID_BASE, ns(e["ts"]) // 1000, e["name"]) for e in sched}
    for r in switches:
        f = r["fields"]
        assert (r["cpu"], r["ts"] // 1000, f"{f['next_comm']} {f['next_pid']}") in starts, r


def test_the_kernel_log_marker_is_an_instant_on_the_kernel_log_track(exported):
    trace, counts = exported
    marks = [e for e in trace["traceEvents"] if e.get("cat") == "dmesg" and MARKER in e["name"]]
    assert len(marks) == 1
    (mark,) = marks
    assert mark["ph"] == "i" and mark["s"] == "t"
    assert (mark["pid"], mark["tid"]) == (KERNEL_PID, KMSG_TID)
    assert mark["args"]["level"] == "err" and mark["args"]["text"] == MARKER
    # records from before the session (the boot log) are left out by default
    assert counts["dmesg"] == sum(1 for e in trace["traceEvents"] if e.get("cat") == "dmesg")


def test_strace_and_ftrace_see_the_exec_of_ls_at_the_same_time(exported):
    events = exported[0]["traceEvents"]
    execs = [e for e in events if e["name"] == "execve" and "error" not in e["args"]
             and e["args"]["args"].split(",", 1)[0].strip('"').rsplit("/", 1)[-1] == "ls"]
    kernel = [e for e in events if e["name"] == "sched_process_exec"
              and e["args"]["filename"].rsplit("/", 1)[-1] == "ls"]
    assert len(execs) == 1 and len(kernel) == 1, (execs, kernel)
    (call,), (event,) = execs, kernel
    # same thread track, and the kernel's exec event falls within the call (2 ms of slack)
    assert (call["pid"], call["tid"]) == (event["pid"], event["tid"])
    assert call["ts"] - 2000 <= event["ts"] <= call["ts"] + call["dur"] + 2000, (call, event)
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names[(call["pid"], call["tid"])] == "ls"


def test_the_dmesg_marker_lies_inside_the_write_that_logged_it(exported, session):
    """The shell writes the marker with write(2) on /dev/kmsg: the record's time, moved from the
    printk clock to CLOCK_MONOTONIC by the distance the agent measured (it drifts: NTP slews
    CLOCK_MONOTONIC only), lies inside that call's slice."""
    events = exported[0]["traceEvents"]
    (mark,) = [e for e in events if e.get("cat") == "dmesg" and MARKER in e["name"]]
    writes = [e for e in events if e["name"] == "write" and MARKER in e["args"]["args"]]
    assert len(writes) == 1, writes
    (write,) = writes
    assert write["ts"] - 20 <= mark["ts"] <= write["ts"] + write["dur"] + 20, (write, mark)
    offset = printk_offset_ns(json.loads((session / "manifest.json").read_text()))
    assert offset != 0 and abs(offset) < 50_000_000


def test_invoke_export_writes_the_file_and_bad_input_is_one_line(session, tmp_path):
    out = tmp_path / "t.json"
    done = subprocess.run([INVOKE, "-r", str(REPO), "export", str(session), "--format", "perfetto",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{out}: ") and " syscalls, " in done.stdout
    assert json.loads(out.read_text())["traceEvents"]
    for args, message in (([str(session), "--format", "tracy"], "--format tracy: unknown format"),
                          ([str(tmp_path / "nothing")], "not a session directory")):
        bad = subprocess.run([INVOKE, "-r", str(REPO), "export", *args], capture_output=True,
                             text=True, timeout=120)
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    assert not list(tmp_path.glob("*.part"))


def test_strace_values_are_written_back_in_strace_notation():
    assert value_text({"const": "AT_FDCWD", "value": -100}) == "AT_FDCWD"
    assert value_text({"flags": ["O_RDONLY", "O_CLOEXEC"], "value": 524288}) == "O_RDONLY|O_CLOEXEC"
    assert value_text({"fd": 3, "path": "/etc/passwd"}) == "3</etc/passwd>"
    assert value_text({"str": "0123", "truncated": True}) == '"0123"...'
    assert value_text({"hex": "ff00", "truncated": False}) == '"\\xff\\x00"'
    assert value_text({"in": 128, "out": 16}) == "128 => 16"
    assert value_text({"value": "0x7ffd1000", "comment": "3 vars"}) == "0x7ffd1000 /* 3 vars */"
    assert value_text({"st_mode": 33188, "st_size": 3, "abbreviated": True}) == \
        "{st_mode=33188, st_size=3, ...}"
    assert value_text([None, "0x10", "text", "..."]) == '[NULL, 0x10, "text", ...]'
    assert value_text({"major": 1, "minor": 3}) == "makedev(0x1, 0x3)"
