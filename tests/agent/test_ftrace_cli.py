"""ftrace list/probe/stream/start/stop/extract/show/reset and bad input, on the real tracefs."""

import importlib
import json
import os

import pytest

from ftrace_helpers import ftrace, top_state, tracefs_dir  # noqa: F401
from target.ftrace import probe, tracefs


def test_probe_reports_each_feature(tracefs_dir):
    done = ftrace(tracefs_dir, "probe")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["events"] == "ok" and lines["instances"] == "ok"
    expected = probe.function_tracer_works(tracefs.Tracefs(tracefs_dir))
    if expected["errno"] == "EPERM":  # this sandbox
        assert lines["function"].startswith("blocked (EPERM)")
    elif expected["ok"]:
        assert lines["function"] == "ok"
    for feature in probe.FEATURES:
        assert feature in lines
    assert not [n for n in os.listdir(os.path.join(tracefs_dir, "instances"))
                if n.startswith(probe.PREFIX)]


def test_probe_json(tracefs_dir):
    done = ftrace(tracefs_dir, "probe", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"feature", "ok", "errno", "reason"} <= set(rows[0])
    assert any(r["feature"] == "trace_marker" for r in rows)


def test_list(tracefs_dir):
    with open(os.path.join(tracefs_dir, "available_tracers")) as f:
        tracers = f.read().split()
    done = ftrace(tracefs_dir, "list", "-t")
    assert done.stdout == "tracers: %s\n" % " ".join(tracers)
    done = ftrace(tracefs_dir, "list", "-e", "irq:*")
    events = [line.strip() for line in done.stdout.splitlines()[1:]]
    assert events and all(e.startswith("irq:") for e in events)
    done = ftrace(tracefs_dir, "list", "-C")
    assert "mono" in done.stdout.split()


@pytest.mark.parametrize("args,words", [
    (["record", "-e", "nosuch:event", "--", "/bin/true"], "unknown event 'nosuch:event'"),
    (["record", "-p", "nosuch_tracer"], "tracer 'nosuch_tracer' is not built into"),
    (["record", "-C", "nosuch_clock"], "unknown trace clock"),
    (["record", "-e", "sched:sched_switch", "-f", "prev_pid =="], "error: "),
    (["stop", "--name", "nosuch"], "no flight recorder 'nosuch'"),
])
def test_bad_input_is_one_line(tracefs_dir, tmp_path, args, words):
    before = top_state(tracefs_dir)
    done = ftrace(tracefs_dir, *(args[:1] + (["-o", str(tmp_path / "c")]
                                            if args[0] == "record" else []) + args[1:]))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr
    assert top_state(tracefs_dir) == before


def test_function_tracer_refusal_is_explained(tracefs_dir, tmp_path):
    result = probe.function_tracer_works(tracefs.Tracefs(tracefs_dir))
    if result["ok"]:
        pytest.skip("the function tracer works here")
    done = ftrace(tracefs_dir, "record", "-o", str(tmp_path / "c"), "-p", "function",
                  "--", "/bin/true")
    assert done.returncode == 1
    assert result["reason"].split(":")[0] in done.stderr


def test_without_ftrace(tmp_path):
    done = ftrace(str(tmp_path), "list")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no tracefs at" in done.stderr


def test_stream_a_command(tracefs_dir):
    done = ftrace(tracefs_dir, "stream", "-e", "sched:sched_process_exec", "--", "/bin/true")
    assert done.returncode == 0, done.stderr
    assert "sched_process_exec: filename=/bin/true" in done.stdout


def test_flight_recorder(tracefs_dir, tmp_path):
    before = top_state(tracefs_dir)
    name = "t%d" % os.getpid()
    inst = os.path.join(tracefs_dir, "instances", "boardtrace-keep-" + name)
    done = ftrace(tracefs_dir, "start", "--name", name, "-e", "sched:sched_process_exec")
    assert done.returncode == 0, done.stderr
    try:
        assert os.path.isdir(inst), "start must leave its instance"
        os.system("/bin/true")
        assert ftrace(tracefs_dir, "stop", "--name", name).returncode == 0
        with open(os.path.join(inst, "tracing_on")) as f:
            assert f.read().strip() == "0"
        shown = ftrace(tracefs_dir, "show", "--name", name).stdout
        assert "sched_process_exec" in shown
        again = ftrace(tracefs_dir, "start", "--name", name)
        assert again.returncode == 1 and "running already" in again.stderr
        out = str(tmp_path / "x")
        done = ftrace(tracefs_dir, "extract", "--name", name, "-o", out)
        assert done.returncode == 0, done.stderr
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
        assert meta["events"] == ["sched:sched_process_exec"]
        assert meta["instance"] == "boardtrace-keep-" + name
        assert os.path.exists(os.path.join(out, "formats/sched/sched_process_exec/format"))
    finally:
        done = ftrace(tracefs_dir, "reset", "--name", name)
    assert done.returncode == 0 and "removed boardtrace-keep-" + name in done.stderr
    assert not os.path.exists(inst)
    assert top_state(tracefs_dir) == before


def test_marks_reach_the_recorder_once_and_print_as_the_kernel_prints_them(tracefs_dir, tmp_path):
    """`ftrace mark` and a script's write to the top level's trace_marker (copied into our
    instance where the kernel has copy_trace_marker, 6.17+) both appear, once each, in the
    recorder, and our decode prints them as the kernel's `trace` does."""
    name = "m%d" % os.getpid()
    done = ftrace(tracefs_dir, "start", "--name", name, "-e", "sched:sched_process_exit")
    assert done.returncode == 0, done.stderr
    try:
        assert ftrace(tracefs_dir, "mark", "phase", "one").returncode == 0
        copies = tracefs.Tracefs(tracefs_dir).instance("boardtrace-keep-" + name).exists(
            "options/copy_trace_marker")
        if copies:
            tracefs.Tracefs(tracefs_dir).write("trace_marker", "from a script\n")
        assert ftrace(tracefs_dir, "mark", "--name", name, "only", "here").returncode == 0
        assert ftrace(tracefs_dir, "stop", "--name", name).returncode == 0
        shown = ftrace(tracefs_dir, "show", "--name", name).stdout
        out = str(tmp_path / "x")
        assert ftrace(tracefs_dir, "extract", "--name", name, "-o", out).returncode == 0
    finally:
        ftrace(tracefs_dir, "reset", "--name", name)
    kernel = [line for line in shown.splitlines() if not line.startswith("#")]
    marks = [line.split(": ", 1)[1] for line in kernel if "tracing_mark_write: " in line]
    assert marks == ["tracing_mark_write: phase one"] + \
        ["tracing_mark_write: from a script"] * copies + ["tracing_mark_write: only here"]
    report = ftrace(tracefs_dir, "report", out)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines() == kernel


def test_show_top_level(tracefs_dir):
    done = ftrace(tracefs_dir, "show")
    assert done.returncode == 0 and done.stdout.startswith("# tracer:")


def test_report_dispatch(tracefs_dir, tmp_path):
    try:
        importlib.import_module("target.ftrace.report")
    except ImportError:
        pytest.skip("target.ftrace.report is not written yet")
    done = ftrace(tracefs_dir, "report", "--help")
    assert done.returncode == 0
