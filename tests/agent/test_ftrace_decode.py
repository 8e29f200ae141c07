"""End to end against the real tracefs: trace events in a private instance, copy its raw
pages into a capture directory, decode them and diff with the kernel's own `trace` text of
the same buffer, line by line.

tracefs is mounted at a private temporary directory (the same kernel tracing state as
/sys/kernel/tracing), so no mount that someone else owns is touched; it is unmounted after."""

import io
import json
import os
import subprocess
import sys
import uuid
from contextlib import redirect_stdout

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import ftrace_capture  # noqa: E402
from ftrace_helpers import tracefs_dir  # noqa: E402,F401  (the fixture)

from target.ftrace import decode, report  # noqa: E402

EVENTS = ["sched:sched_switch", "sched:sched_wakeup", "sched:sched_waking",
          "sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit",
          "irq:*", "timer:*", "raw_syscalls:*", "syscalls:sys_enter_openat",
          "syscalls:sys_exit_openat"]


def write(path, value):
    with open(path, "w") as f:
        f.write(value)


def append(path, value):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path):
    with open(path) as f:
        return f.read()


def workload(instance):
    subprocess.run(["sh", "-c", "ls / >/dev/null; cat /proc/version >/dev/null; sleep 0.05"],
                   check=True)
    with open(os.path.join(instance, "trace_marker"), "w") as f:
        f.write("boardtrace decode test marker")
    with open(os.path.join(instance, "trace_marker"), "w") as f:
        f.write("second marker\n")


@pytest.fixture(scope="module")
def capture_dir(tracefs_dir, tmp_path_factory):
    instance = os.path.join(tracefs_dir, "instances", "boardtrace-test-%s" % uuid.uuid4().hex[:8])
    try:
        os.mkdir(instance)
    except OSError as e:
        pytest.skip("cannot create a tracefs instance: %s" % e)
    try:
        write(os.path.join(instance, "tracing_on"), "0")
        write(os.path.join(instance, "trace_clock"), "mono")
        write(os.path.join(instance, "buffer_size_kb"), "4096")
        write(os.path.join(instance, "options", "hash-ptr"), "0")
        for event in EVENTS:
            append(os.path.join(instance, "set_event"), event)
        enabled = read(os.path.join(instance, "set_event")).split()
        write(os.path.join(instance, "tracing_on"), "1")
        workload(instance)
        write(os.path.join(instance, "tracing_on"), "0")
        write(os.path.join(instance, "set_event"), "")
        out = str(tmp_path_factory.mktemp("capture"))
        ftrace_capture.capture(tracefs_dir, instance, out, enabled + ["ftrace:print"])
        yield out
    finally:
        write(os.path.join(instance, "set_event"), "")
        os.rmdir(instance)


def kernel_lines(capture_dir):
    with open(os.path.join(capture_dir, "trace.txt")) as f:
        return [line.rstrip("\n") for line in f if not line.startswith("#")]


def test_text_matches_kernel_trace(capture_dir):
    kernel = kernel_lines(capture_dir)
    ours = list(decode.text_lines(decode.Capture(capture_dir)))
    assert len(kernel) > 100, "the workload should give a few hundred events"
    mismatches = [(i, k, o) for i, (k, o) in enumerate(zip(kernel, ours)) if k != o]
    assert not mismatches[:5]
    assert len(ours) == len(kernel)


def test_capture_has_every_event_kind(capture_dir):
    names = {line.split(": ")[1].split("(")[0] for line in kernel_lines(capture_dir)
             if ": " in line}
    for name in ("sched_switch", "sched_process_fork", "sched_process_exec", "sys_enter",
                 "sys_exit", "sys_openat", "tracing_mark_write", "hrtimer_start"):
        assert name in names or name + " -> 0x3" in names


def test_marker_text(capture_dir):
    lines = [line for line in decode.text_lines(decode.Capture(capture_dir))
             if "tracing_mark_write" in line]
    assert [line.split(": ", 2)[2] for line in lines] == [
        "boardtrace decode test marker", "second marker"]


def test_per_cpu_selection_matches_kernel_lines_of_that_cpu(capture_dir):
    capture = decode.Capture(capture_dir)
    for cpu in capture.cpus:
        tag = "[%03d]" % cpu
        kernel = [line for line in kernel_lines(capture_dir) if line[25:30] == tag]
        assert list(decode.text_lines(capture, [cpu])) == kernel


def test_json_lines(capture_dir):
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.main([capture_dir, "--json"]) == 0
    items = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [i for i in items if i["type"] == "event"]
    assert len(events) == len(kernel_lines(capture_dir))
    stamps = [i["ts"] for i in events]
    assert stamps == sorted(stamps)
    switch = next(i for i in events if i["event"] == "sched_switch")
    assert switch["system"] == "sched"
    assert set(switch["fields"]) == {"prev_comm", "prev_pid", "prev_prio", "prev_state",
                                     "next_comm", "next_pid", "next_prio"}
    assert switch["text"].startswith("sched_switch: prev_comm=")
    fork = next(i for i in events if i["event"] == "sched_process_fork")
    assert isinstance(fork["fields"]["child_comm"], str)
    enter = next(i for i in events if i["event"] == "sys_enter")
    assert len(enter["fields"]["args"]) == 6


def test_report_text_cli(capture_dir):
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.main([capture_dir]) == 0
    assert out.getvalue().splitlines() == kernel_lines(capture_dir)


def test_report_command_line(capture_dir):
    code = ("import sys; from target.cli import run; from target.ftrace import report;"
            "sys.exit(run('ftrace report', report.main, sys.argv[1:]))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", code, capture_dir, "--cpu", "99"], cwd=root,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert done.returncode == 1
    assert "no cpu 99 in this capture" in done.stderr
    done = subprocess.run([sys.executable, "-c", code, "/nonexistent"], cwd=root,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert done.returncode == 1 and "not a capture directory" in done.stderr
