"""`agent capture`: detached sessions running the real strace, ftrace and /dev/kmsg reader
together, on this machine (root, real ptrace, real tracefs)."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from tests.agent.kmsg import devkmsg_on, marker, needs_kmsg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHED = ["-e", "sched:sched_process_exec", "-e", "sched:sched_process_exit"]

pytestmark = needs_kmsg


def agent(tmp_path, *args, spec=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "target", "capture", "--dir", str(tmp_path / "s"),
                           *args], cwd=ROOT, input=None if spec is None else json.dumps(spec),
                          capture_output=True, text=True, timeout=timeout)


def start(tmp_path, **spec):
    done = agent(tmp_path, "start", spec=spec)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["state"] == "running"
    return reply["id"], tmp_path / "s" / reply["id"]


def follow(tmp_path, session_id):
    done = agent(tmp_path, "follow", session_id, "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    states = [json.loads(line) for line in done.stdout.splitlines()]
    assert states[-1]["state"] in ("done", "failed")
    return states[-1]


def check_manifest(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["format"] == "boardtrace-session" and manifest["version"] == 1
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {str(p.relative_to(directory)) for p in directory.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(listed) == on_disk
    for path, entry in listed.items():
        data = (directory / path).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    return manifest


def decoded_ftrace(directory):
    out = subprocess.run([sys.executable, "-m", "target", "ftrace", "report", str(directory / "ftrace")],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


def text_of(path):
    return path.read_text() if path.exists() else ""


def line_time(line):
    return float(re.search(r" (\d+\.\d+): ", line).group(1))


def test_the_tools_run_together_on_one_clock(tmp_path):
    word = marker()
    script = "echo '<3>%s' > /dev/kmsg; ls / > /dev/null" % word
    with devkmsg_on():
        session_id, directory = start(tmp_path, cmd=["sh", "-c", script], strace=["-f"],
                                      ftrace=SCHED, dmesg=True)
        state = follow(tmp_path, session_id)
    assert state["state"] == "done" and state["reason"] == "the command exited with 0", state
    manifest = check_manifest(directory)
    assert manifest["spec"]["cmd"] == ["sh", "-c", script]
    assert manifest["board"]["kernel"]["release"] == os.uname().release
    start_ns, end_ns = state["start_monotonic_ns"], state["end_monotonic_ns"]

    # strace: the write into /dev/kmsg and the exec of ls, in text and JSON
    text = (directory / "strace.txt").read_text()
    assert 'write(1, "<3>%s\\n"' % word in text and 'execve("/usr/bin/ls"' in text
    calls = [json.loads(line) for line in (directory / "strace.jsonl").read_text().splitlines()[1:]]
    write = next(c for c in calls if c.get("syscall") == "write" and word in json.dumps(c["args"]))
    execve = next(c for c in calls if c.get("syscall") == "execve" and c["args"][0] == "/usr/bin/ls")
    assert start_ns < write["ts_ns"] < end_ns

    # dmesg: the record the write made, stamped within a few ms of the syscall
    records = (directory / "dmesg.kmsg").read_bytes().split(b"\0")
    ours = [r for r in records if word.encode() in r]
    assert len(ours) == 1
    usec = int(ours[0].split(b",")[2])
    assert abs(usec * 1000 - write["ts_ns"]) < 50_000_000

    # ftrace: the kernel saw ls exec during strace's execve call
    lines = decoded_ftrace(directory)
    exec_line = next(line for line in lines if "sched_process_exec" in line and "/usr/bin/ls" in line)
    at = line_time(exec_line) * 1e9
    assert execve["ts_ns"] - 1e6 <= at <= execve["ts_ns"] + execve["duration_ns"] + 1e6
    assert state["events"]["strace"] == len(calls) and state["events"]["dmesg"] == len(records) - 1


def test_the_session_outlives_its_caller_in_a_new_session(tmp_path):
    session_id, directory = start(tmp_path, cmd=["sleep", "30"], strace=[])
    state = json.loads((directory / "state.json").read_text())
    assert os.getsid(state["pid"]) == state["pid"] != os.getsid(0)
    stopped = json.loads(agent(tmp_path, "stop", session_id).stdout)
    assert stopped["state"] == "done" and stopped["reason"] == "stopped by signal 15"
    assert "execve(\"/usr/bin/sleep\"" in (directory / "strace.txt").read_text()
    assert "+++ killed by SIGKILL +++" in (directory / "strace.txt").read_text()
    check_manifest(directory)


def test_duration_ends_a_dmesg_only_session(tmp_path):
    started = time.monotonic()
    session_id, directory = start(tmp_path, dmesg=True, duration=0.5)
    state = follow(tmp_path, session_id)
    assert state["reason"] == "duration of 0.5 s reached"
    assert 0.5 <= state["elapsed"] and time.monotonic() - started < 10
    assert sorted(check_manifest(directory)["spec"]) == ["cmd", "dmesg", "duration", "ftrace", "id", "strace"]


def test_a_killed_supervisor_stops_its_parts_and_keeps_their_data(tmp_path):
    session_id, directory = start(tmp_path, cmd=["sleep", "30"], strace=["-f"], ftrace=SCHED)
    state = json.loads((directory / "state.json").read_text())
    while "nanosleep" not in text_of(directory / "strace.txt"):
        time.sleep(0.05)
    state = json.loads((directory / "state.json").read_text())
    assert "/instances/boardtrace-" in state["ftrace_instance"]
    os.kill(state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while os.path.exists(state["ftrace_instance"]):   # ftrace got SIGINT: it finishes, undoes
        assert time.monotonic() < deadline, (directory / "ftrace.log").read_text()
        time.sleep(0.1)
    assert (directory / "ftrace" / "meta.json").exists()
    status = json.loads(agent(tmp_path, "status", session_id).stdout)
    assert status["state"] == "failed" and "ended without finishing" in status["reason"]
    packed = json.loads(agent(tmp_path, "pack", session_id).stdout)
    assert packed["state"] == "failed"
    check_manifest(directory)
    with tarfile.open(tmp_path / "s" / (session_id + ".tar")) as tar:
        assert {"manifest.json", "strace.txt", "ftrace/meta.json"} <= set(tar.getnames())
    assert 'execve("/usr/bin/sleep"' in (directory / "strace.txt").read_text()


def test_pack_is_made_once_and_clean_removes(tmp_path):
    session_id, directory = start(tmp_path, dmesg=True, duration=0.2)
    follow(tmp_path, session_id)
    first, second = (json.loads(agent(tmp_path, "pack", session_id).stdout) for _ in range(2))
    assert first == second and first["size"] == os.path.getsize(tmp_path / "s" / (session_id + ".tar"))
    assert hashlib.sha256((tmp_path / "s" / (session_id + ".tar")).read_bytes()).hexdigest() == first["sha256"]
    listed = [json.loads(line) for line in agent(tmp_path, "list").stdout.splitlines()]
    assert [s["id"] for s in listed] == [session_id] and listed[0]["state"] == "done"
    assert agent(tmp_path, "clean", "--tar", session_id).returncode == 0
    assert not (tmp_path / "s" / (session_id + ".tar")).exists() and directory.exists()
    assert agent(tmp_path, "clean", session_id).returncode == 0
    assert not directory.exists()


def test_a_running_session_is_neither_packed_nor_cleaned(tmp_path):
    session_id, directory = start(tmp_path, dmesg=True)
    try:
        packed = agent(tmp_path, "pack", session_id)
        assert packed.returncode == 1 and "is still running" in packed.stderr
        cleaned = agent(tmp_path, "clean", "--all")
        assert "is running; not removed" in cleaned.stderr and directory.exists()
    finally:
        agent(tmp_path, "stop", session_id)


@pytest.mark.parametrize("spec, message", [
    ("not json", "the spec on stdin is not JSON"),
    ({"dmesg": True, "colour": 1}, "unknown spec key 'colour'"),
    ({"cmd": ["true"]}, "nothing to capture"),
    ({"strace": ["-f"]}, "strace needs a command or -p PID"),
    ({"strace": ["-o", "x"], "cmd": ["true"]}, "strace option -o: a capture sets it itself"),
    ({"strace": ["--bogus"], "cmd": ["true"]}, "strace: unrecognized arguments: --bogus"),
    ({"ftrace": ["-b", "many"]}, "ftrace record: argument -b: invalid int value: 'many'"),
    ({"dmesg": True, "cmd": ["no-such-program-here"]}, "Can't stat 'no-such-program-here'"),
    ({"dmesg": True, "duration": -1}, "spec duration: must be a positive number"),
    ({"dmesg": True, "id": "../x"}, "bad session id '../x'"),
])
def test_bad_specs_get_one_line(tmp_path, spec, message):
    done = subprocess.run([sys.executable, "-m", "target", "capture", "--dir", str(tmp_path / "s"), "start"],
                          cwd=ROOT, input=spec if isinstance(spec, str) else json.dumps(spec),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode in (1, 2) and done.stdout == ""
    assert message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "s").exists() or not os.listdir(tmp_path / "s")


def test_a_part_that_cannot_start_fails_the_session_and_says_why(tmp_path):
    done = agent(tmp_path, "start", spec={"dmesg": True, "ftrace": ["-e", "no_such_system_here"]})
    assert done.returncode == 1
    assert "unknown event 'no_such_system_here'" in done.stderr and len(done.stderr.splitlines()) == 1
    (directory,) = (tmp_path / "s").iterdir()
    state = check_manifest(directory)["state"]
    assert state["state"] == "failed" and "no_such_system_here" in state["reason"]
