"""ftrace record against the real tracefs: the capture directory contract, the top-level
state left as found, no instance left behind, SIGKILL/SIGINT/SIGTERM."""

import json
import os
import signal
import sys

import pytest

from ftrace_helpers import (ftrace, instances_of, spawn, top_state, tracefs_dir,  # noqa: F401
                            tracing_in, wait_for)
from target.ftrace import session, text, tracefs


def check_contract(out, events):
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    assert meta["format"] == "boardtrace-ftrace" and meta["version"] == 1
    assert meta["clock"] == "mono" and meta["tracer"] == "nop"
    assert meta["events"] == events
    assert meta["kernel"] == os.uname().release and meta["long_size"] == 8
    assert meta["big_endian"] is (sys.byteorder == "big")
    assert meta["stop_monotonic_ns"] >= meta["start_monotonic_ns"]
    assert session.OWNED.match(meta["instance"])
    size = meta["page_size"]
    assert size == os.sysconf("SC_PAGE_SIZE")
    for cpu in meta["cpus"]:
        raw = os.path.getsize(os.path.join(out, "cpu%d.raw" % cpu))
        assert raw % size == 0
        assert str(cpu) in meta["lost"]
        with open(os.path.join(out, "stats", "cpu%d" % cpu)) as f:
            assert "overrun:" in f.read()
    for name in events + ["ftrace:print"]:
        system, event = name.split(":")
        with open(os.path.join(out, "formats", system, event, "format")) as f:
            assert f.read().startswith("name: %s\n" % event)
    for name in ("header_page", "header_event", "saved_cmdlines"):
        assert os.path.exists(os.path.join(out, name))
    with open(os.path.join(out, "kallsyms")) as f:  # no function tracer: the markers' symbol
        lines = f.read().splitlines()
    assert [line.split()[2] for line in lines] == ["tracing_mark_write", text.UNKNOWN]
    return meta


def raw_data(out, meta):
    data = b""
    for cpu in meta["cpus"]:
        with open(os.path.join(out, "cpu%d.raw" % cpu), "rb") as f:
            data += f.read()
    return data


def test_record_a_command(tracefs_dir, tmp_path):
    before = top_state(tracefs_dir)
    out = str(tmp_path / "cap")
    events = ["sched:sched_process_exec", "syscalls:sys_enter_openat"]
    proc = spawn(tracefs_dir, "record", "-o", out, "-e", events[0], "-e", events[1],
                 "--", "/bin/true")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    meta = check_contract(out, events)
    assert b"/bin/true\0" in raw_data(out, meta), "the exec of /bin/true was not captured"
    assert "pages" in err and out in err
    assert top_state(tracefs_dir) == before
    assert instances_of(tracefs_dir, proc.pid) == []


def test_pid_filter_keeps_other_processes_out(tracefs_dir, tmp_path):
    """Only the command (and its children) is traced: sh -c forks /bin/echo."""
    out = str(tmp_path / "cap")
    done = ftrace(tracefs_dir, "record", "-o", out, "-e", "sched:sched_process_exec",
                  "--", "/bin/sh", "-c", "/bin/echo hi >/dev/null; exit 0")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    data = raw_data(out, meta)
    assert b"/bin/echo\0" in data, "the child of the command was not followed"
    assert b"/bin/sh\0" in data


def test_duration_and_event_glob(tracefs_dir, tmp_path):
    out = str(tmp_path / "cap")
    done = ftrace(tracefs_dir, "record", "-o", out, "-e", "sched:sched_wak*",
                  "--duration", "0.3")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    assert meta["events"] and all(e.startswith("sched:sched_wak") for e in meta["events"])
    assert sum(os.path.getsize(os.path.join(out, "cpu%d.raw" % c)) for c in meta["cpus"])


def test_top_level_fallback_is_restored(tracefs_dir, tmp_path):
    """tracing_thresh has no per-instance file: set at the top level, said, restored."""
    if not os.path.exists(os.path.join(tracefs_dir, "tracing_thresh")):
        pytest.skip("no tracing_thresh on this kernel")
    before = top_state(tracefs_dir)
    done = ftrace(tracefs_dir, "record", "-o", str(tmp_path / "c"), "-e", "sched:sched_switch",
                  "--thresh", "7", "--duration", "0.1")
    assert done.returncode == 0, done.stderr
    assert "tracing_thresh is not per instance" in done.stderr
    assert top_state(tracefs_dir) == before


def test_lost_events_are_reported(tracefs_dir, tmp_path):
    """A tiny buffer under a syscall storm overruns: meta.json and stderr both say so."""
    out = str(tmp_path / "cap")
    storm = "import os\nfor i in range(300000): os.getppid()"
    done = ftrace(tracefs_dir, "record", "-o", out, "-b", "8", "-e", "raw_syscalls",
                  "--", sys.executable, "-c", storm)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    total = sum(meta["lost"].values())
    assert total > 0, "expected an overrun with an 8 KB buffer"
    assert "lost" in done.stderr and "events" in done.stderr


def test_sigkill_leaves_the_instance_and_the_next_run_removes_it(tracefs_dir, tmp_path):
    before = top_state(tracefs_dir)
    proc = spawn(tracefs_dir, "record", "-o", str(tmp_path / "a"), "-e", "sched:sched_switch",
                 "--duration", "60")
    try:
        name = wait_for(lambda: tracing_in(tracefs_dir, proc.pid))
    finally:
        proc.kill()
        proc.communicate()
    assert instances_of(tracefs_dir, proc.pid) == [name], "SIGKILL cannot clean up"
    done = ftrace(tracefs_dir, "record", "-o", str(tmp_path / "b"), "-e", "sched:sched_switch",
                  "--duration", "0.1")
    assert done.returncode == 0, done.stderr
    assert instances_of(tracefs_dir, proc.pid) == []
    assert top_state(tracefs_dir) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_write_the_capture(tracefs_dir, tmp_path, sig):
    before = top_state(tracefs_dir)
    out = str(tmp_path / "cap")
    proc = spawn(tracefs_dir, "record", "-o", out, "-e", "sched:sched_switch")
    try:
        # recording: its page files are open (a new instance's tracing_on is 1 before setup)
        wait_for(lambda: os.path.isdir(out) and any(n.endswith(".raw") for n in os.listdir(out)))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by signal %d" % sig in err
    meta = check_contract(out, ["sched:sched_switch"])
    assert raw_data(out, meta)
    assert instances_of(tracefs_dir, proc.pid) == []
    assert top_state(tracefs_dir) == before


def test_signal_during_setup_undoes(tracefs_dir, tmp_path):
    """A SIGTERM while the command is still waiting to start: everything undone, 143."""
    before = top_state(tracefs_dir)
    proc = spawn(tracefs_dir, "record", "-o", str(tmp_path / "c"), "-e", "syscalls",
                 "--", "/bin/sleep", "30")
    try:
        wait_for(lambda: instances_of(tracefs_dir, proc.pid), timeout=20)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 128 + signal.SIGTERM)
    assert instances_of(tracefs_dir, proc.pid) == []
    assert top_state(tracefs_dir) == before


@pytest.mark.parametrize("when", ["right after mkdir", "later in setup", "with a file open"])
def test_a_stop_signal_while_the_session_is_made_leaves_no_instance(tracefs_dir, monkeypatch, when):
    """A real SIGTERM to this process where CI runs once left the instance behind: between
    mkdir and noting it, later in Session.create, and while a write's file is open (its
    descriptor kept the instance busy: rmdir failed with EBUSY)."""
    before = top_state(tracefs_dir)
    if when == "with a file open":
        os_open, sent = os.open, []

        def open_then_signal(path, *args):
            fd = os_open(path, *args)
            if path.endswith("/buffer_size_kb") and not sent:
                sent.append(path)
                os.kill(os.getpid(), signal.SIGTERM)
            return fd
        monkeypatch.setattr(os, "open", open_then_signal)
    elif when == "right after mkdir":
        mkdir = os.mkdir

        def mkdir_then_signal(path, *args):
            mkdir(path, *args)
            os.kill(os.getpid(), signal.SIGTERM)
        monkeypatch.setattr(os, "mkdir", mkdir_then_signal)
    else:
        read = tracefs.Tracefs.read

        def read_then_signal(self, name):
            if name == "available_tracers":
                os.kill(os.getpid(), signal.SIGTERM)
            return read(self, name)
        monkeypatch.setattr(tracefs.Tracefs, "read", read_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(session.Interrupted):
        with session.Session(tracefs.Tracefs(tracefs_dir)) as sess:
            sess.write("buffer_size_kb", "64")
    assert instances_of(tracefs_dir, os.getpid()) == []
    assert top_state(tracefs_dir) == before
    assert signal.getsignal(signal.SIGTERM) is handler


def test_owner_alive_uses_the_start_time():
    assert session.owner_alive(session.own_name())
    pid = os.getpid()
    assert not session.owner_alive("boardtrace-%d-%d" % (pid, session.start_time(pid) + 1))
    assert session.owner_alive("boardtrace-keep-default")
    assert session.owner_alive("boardtrace-probe-1")


def test_remove_stale_keeps_live_and_foreign(tracefs_dir):
    top = tracefs.Tracefs(tracefs_dir)
    dead = "boardtrace-%d-1" % os.getpid()  # our pid, but a start time that is not ours
    live = session.own_name()
    for name in (dead, live):
        os.mkdir(top.instance(name).path)
    try:
        removed = session.remove_stale(top)
        assert dead in removed and live not in removed
        assert os.path.isdir(top.instance(live).path)
    finally:
        for name in (dead, live):
            if os.path.isdir(top.instance(name).path):
                os.rmdir(top.instance(name).path)


@pytest.mark.parametrize("name,text,value", [
    ("trace_clock", "local global [mono] boot\n", "mono"),
    ("buffer_size_kb", "7 (expanded: 1408)\n", "1408"),
    ("buffer_size_kb", "2048\n", "2048"),
    ("filter", "none\n", "0"),
    ("filter", "prev_pid != 0\n", "prev_pid != 0"),
    ("set_ftrace_pid", "no pid\n", ""),
    ("set_ftrace_filter", "#### all functions enabled ####\n", ""),
    ("set_event_pid", "12\n34\n", "12 34"),
])
def test_normalize(name, text, value):
    assert session.normalize(name, text) == value


def test_events_that_print_symbols_bring_kallsyms_and_decode_like_the_kernel(tracefs_dir, tmp_path):
    """timer_start prints function=%ps: the capture carries kallsyms, and our report names
    the functions (no bare addresses left in function= fields)."""
    out = str(tmp_path / "cap")
    done = ftrace(tracefs_dir, "record", "-o", out, "-e", "timer:hrtimer_start", "--duration", "0.3")
    assert done.returncode == 0, done.stderr
    assert os.path.exists(os.path.join(out, "kallsyms"))
    report = ftrace(tracefs_dir, "report", out)
    assert report.returncode == 0, report.stderr
    lines = [l for l in report.stdout.splitlines() if "hrtimer_start:" in l]
    assert lines and not any("function=0x" in l for l in lines)


def test_sigkilled_top_level_writes_are_undone_by_the_next_run(tracefs_dir, tmp_path):
    """tracing_thresh is not per instance on this kernel: it is set at the top level, kept in
    a journal, and a SIGKILLed recorder's value is put back by the next run."""
    before = top_state(tracefs_dir)
    proc = spawn(tracefs_dir, "record", "-o", str(tmp_path / "a"), "-e", "sched:sched_switch",
                 "--thresh", "1234", "--duration", "60")
    try:
        wait_for(lambda: tracing_in(tracefs_dir, proc.pid))
        with open(os.path.join(tracefs_dir, "tracing_thresh")) as f:
            thresh = f.read().strip()
    finally:
        proc.kill()
        proc.communicate()
    if thresh != "1234":
        pytest.skip("tracing_thresh is per instance on this kernel: nothing at the top level")
    assert top_state(tracefs_dir) != before, "SIGKILL cannot undo"
    done = ftrace(tracefs_dir, "record", "-o", str(tmp_path / "b"), "-e", "sched:sched_switch",
                  "--duration", "0.1")
    assert done.returncode == 0, done.stderr
    assert top_state(tracefs_dir) == before
