"""Sessions at the top level of tracefs, for a tracer the kernel offers only there.

Here that tracer is blk (this kernel lists `blk function nop` at the top level and `function
nop` in instances); on the QEMU boards' 6.1 kernels it is function_graph, tested in
tests/qemu/test_tools.py through the same code path."""

import os
import signal

import pytest

from ftrace_helpers import ftrace, spawn, tracefs_dir, wait_for  # noqa: F401
from target.ftrace import session, tracefs

STATE = ("tracing_on", "current_tracer", "set_event", "trace_clock", "set_event_pid",
         "events/sched/sched_process_exec/filter")


def state(top):
    """The top-level settings a session touches, as it would restore them."""
    return {name: session.normalize(name, top.read(name)) for name in STATE + ("buffer_size_kb",)}


@pytest.fixture
def top(tracefs_dir):
    top = tracefs.Tracefs(tracefs_dir)
    probe_name = "bt-top-level-probe"
    os.mkdir(top.instance(probe_name).path)
    try:
        in_instances = tracefs.tracers(top.instance(probe_name))
    finally:
        os.rmdir(top.instance(probe_name).path)
    if "blk" not in tracefs.tracers(top) or "blk" in in_instances:
        pytest.skip("needs a tracer that only the top level offers (blk here: top level %s, "
                    "instances %s)" % (tracefs.tracers(top), in_instances))
    if session.top_level_user(top):
        pytest.skip("the top level of tracefs is in use: %s" % session.top_level_user(top))
    return top


def test_record_goes_to_the_top_level_and_restores_it(top, tmp_path):
    before = state(top)
    out = str(tmp_path / "cap")
    done = ftrace(top.path, "record", "-p", "blk", "-e", "sched:sched_process_exec",
                  "-f", "pid > 1", "-o", out, "--", "/bin/true")
    assert done.returncode == 0, done.stderr
    assert "blk tracer exists only at the top level" in done.stderr
    report = ftrace(top.path, "report", out)
    assert report.returncode == 0, report.stderr
    assert [line for line in report.stdout.splitlines() if "filename=/bin/true" in line]
    assert state(top) == before
    assert not [n for n in session.journaled() if session.OWNED.match(n)]


def test_flight_recorder_at_the_top_level_matches_the_kernel_text(top, tmp_path):
    before = state(top)
    ftrace(top.path, "reset", "--name", "toplevel")
    started = ftrace(top.path, "start", "-p", "blk", "-e", "sched:sched_process_exec",
                     "-e", "sched:sched_process_exit", "--name", "toplevel")
    assert started.returncode == 0, started.stderr
    try:
        assert top.read("current_tracer").strip() == "blk"
        again = ftrace(top.path, "start", "-p", "blk", "--name", "toplevel")
        assert again.returncode == 1 and "running already" in again.stderr
        os.system("/bin/true")
        assert ftrace(top.path, "stop", "--name", "toplevel").returncode == 0
        shown = ftrace(top.path, "show", "--name", "toplevel")
        out = str(tmp_path / "cap")
        extracted = ftrace(top.path, "extract", "--name", "toplevel", "-o", out)
        assert extracted.returncode == 0, extracted.stderr
    finally:
        reset = ftrace(top.path, "reset", "--name", "toplevel")
    assert reset.returncode == 0 and "removed boardtrace-keep-toplevel" in reset.stderr
    assert state(top) == before
    kernel = [line for line in shown.stdout.splitlines() if not line.startswith("#")]
    report = ftrace(top.path, "report", out)
    assert report.returncode == 0, report.stderr
    assert any("filename=/bin/true" in line for line in kernel)
    assert report.stdout.splitlines() == kernel


@pytest.mark.parametrize("file,value,why", [
    ("current_tracer", "blk", "its current_tracer is blk"),
    ("set_event", "sched:sched_process_fork", "events are enabled there (sched:sched_process_fork)"),
])
def test_a_top_level_in_use_is_left_alone(top, tmp_path, file, value, why):
    before = top.read(file)
    top.write(file, value)
    try:
        during = state(top)
        done = ftrace(top.path, "record", "-p", "blk", "-o", str(tmp_path / "cap"),
                      "--duration", "0.1")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            "ftrace: this kernel offers the blk tracer only at the top level of tracefs, and "
            "the top level is in use: %s (`trace-cmd reset` frees it)" % why]
        assert state(top) == during
    finally:
        top.write(file, session.normalize(file, before) if file != "set_event" else "")


def test_a_sigkilled_top_level_recorder_is_undone_by_the_next_run(top, tmp_path):
    before = state(top)
    proc = spawn(top.path, "record", "-p", "blk", "-e", "sched:sched_switch", "-C", "global",
                 "-o", str(tmp_path / "a"), "--duration", "60")
    try:
        wait_for(lambda: top.read("current_tracer").strip() == "blk"
                 and top.read("tracing_on").strip() == "1")
    finally:
        proc.kill()
        proc.communicate()
    assert state(top) != before, "SIGKILL cannot undo"
    done = ftrace(top.path, "record", "-e", "sched:sched_switch", "-o", str(tmp_path / "b"),
                  "--duration", "0.1")
    assert done.returncode == 0, done.stderr
    assert state(top) == before
