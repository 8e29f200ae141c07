"""Capture sessions end to end through a real OpenSSH server on loopback (tests/host/sshd.py):
deploy, start, follow, a cut connection, pull with resume, checksums, fleets, Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host.capture import CaptureRequest, follow, start
from host.deploy import deploy
from host.errors import BoardtraceError
from host.progress import Progress
from host.pull import pull
from host.sessions import capture, clean_sessions, list_sessions, pull_session
from host.ssh import SshTransport
from tests.agent.kmsg import needs_kmsg
from tests.host.sshd import ssh_board, sshd, sshd_connection_processes  # noqa: F401 (sshd is a fixture)

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")
pytestmark = needs_kmsg


@pytest.fixture
def board(sshd, tmp_path):
    return ssh_board(sshd, tmp_path / "work")


@pytest.fixture
def agent(board):
    transport = SshTransport(board)
    yield deploy(transport)
    transport.close()


def quiet() -> Progress:
    return Progress("test", stream=open(os.devnull, "w"))


def board_session(board, session_id) -> Path:
    return Path(board.workdir) / "sessions" / session_id


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_capture_through_ssh_brings_every_output_home(board, tmp_path, capsys):
    request = CaptureRequest(cmd=("sh", "-c", "ls / > /dev/null"), strace=("-f",),
                             ftrace=("-e", "sched:sched_process_exec"), dmesg=True)
    home = tmp_path / "home"
    assert capture([board], request, home) == 0
    out = capsys.readouterr().out
    dest = home / "loopback" / request.session_id
    assert f"loopback: session {request.session_id} done (the command exited with 0)" in out
    for name in ("strace.txt", "strace.jsonl", "dmesg.kmsg", "dmesg.txt", "dmesg.json", "ftrace.txt",
                 "ftrace.jsonl", "trace.dat", "manifest.json", "report.html"):
        assert (dest / name).is_file(), name
    assert 'execve("/usr/bin/ls"' in (dest / "strace.txt").read_text()
    assert any("sched_process_exec" in line and "/usr/bin/ls" in line
               for line in (dest / "ftrace.txt").read_text().splitlines())
    assert not (board_session(board, request.session_id).parent / f"{request.session_id}.tar").exists()
    assert not list(dest.parent.glob("*.part")) and not list(dest.parent.glob(".*"))

    assert list_sessions(board, home) == 0
    listing = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == [request.session_id, "done", "yes"] for line in listing), listing
    assert clean_sessions(board, [], False, None, home) == 0     # by default: what is at home
    assert not board_session(board, request.session_id).exists()


def test_a_cut_connection_loses_nothing_and_pull_fetches_it_all(sshd, board, tmp_path, capsys):
    request = CaptureRequest(cmd=("sh", "-c", "sleep 1.5; echo after-the-cut"), strace=("-f",), dmesg=True)
    home = tmp_path / "home"
    codes = []
    worker = threading.Thread(target=lambda: codes.append(capture([board], request, home)))
    worker.start()
    state = board_session(board, request.session_id) / "state.json"
    wait_for(state.exists, what="the session to start")
    for pid in sshd_connection_processes(sshd.process):
        os.kill(pid, signal.SIGKILL)
    worker.join(60)
    assert codes == [1]
    err = capsys.readouterr().err
    assert f"session {request.session_id} goes on on the board" in err
    assert f"invoke pull --board loopback --session {request.session_id}" in err

    assert pull_session(board, request.session_id, home) == 0
    dest = home / "loopback" / request.session_id
    assert 'write(1, "after-the-cut\\n", 14)' in (dest / "strace.txt").read_text()
    assert json.loads((dest / "manifest.json").read_text())["state"]["reason"] == "the command exited with 0"


def test_a_file_changed_on_the_board_is_a_checksum_mismatch(agent, board, tmp_path):
    request = CaptureRequest(dmesg=True, duration=0.2)
    start(agent, request)
    follow(agent, request.session_id, quiet())
    kmsg = board_session(board, request.session_id) / "dmesg.kmsg"
    kmsg.write_bytes(kmsg.read_bytes().replace(b"\0", b"\1", 1))
    home = tmp_path / "home"
    for _ in range(2):   # pulling again does not make it right
        with pytest.raises(BoardtraceError, match=r"checksum mismatch in dmesg\.kmsg .*everything is kept"):
            pull(agent, request.session_id, home)
    dest = home / "loopback" / request.session_id
    assert (dest / "dmesg.kmsg").read_bytes() == kmsg.read_bytes() and (dest / "dmesg.txt").exists()


def test_an_interrupted_download_resumes_and_a_damaged_one_restarts(agent, board, tmp_path):
    request = CaptureRequest(cmd=("ls", "-R", "/usr/lib/python3"), strace=(), duration=30)
    start(agent, request)
    follow(agent, request.session_id, quiet())
    packed = agent.json(["capture", "pack", request.session_id])
    tar = Path(board.workdir) / packed["tar"]
    part = tmp_path / "home" / "loopback" / f"{request.session_id}.tar.part"
    part.parent.mkdir(parents=True)

    part.write_bytes(b"x" * 1000)   # not a prefix of the tar: the sha256 check catches it
    with pytest.raises(BoardtraceError, match="is damaged .* run the pull again"):
        pull(agent, request.session_id, tmp_path / "home")
    assert not part.exists()

    part.write_bytes(tar.read_bytes()[:packed["size"] // 2])   # half of it came before a cut
    pulled = pull(agent, request.session_id, tmp_path / "home")
    assert (pulled.dest / "strace.txt").read_text().count("\n") > 100
    assert not part.exists()


def test_one_unreachable_board_does_not_stop_the_others(board, tmp_path, capsys):
    closed = dataclasses.replace(board, name="unreachable", transport=dataclasses.replace(
        board.transport, port=1))
    request = CaptureRequest(dmesg=True, duration=0.3)
    assert capture([closed, board], request, tmp_path / "home") == 1
    captured = capsys.readouterr()
    assert "unreachable: error: board unreachable: host 127.0.0.1:1 refused the connection" in captured.err
    assert "1 of 2 boards failed: unreachable" in captured.err
    assert (tmp_path / "home" / "loopback" / request.session_id / "dmesg.txt").is_file()


def invoke(home: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([str(INVOKE), "-r", str(REPO), "capture", "--home", str(home), *args],
                            cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def test_invoke_capture_passes_tool_options_on_the_local_board(tmp_path):
    done = invoke(tmp_path / "home", "--cmd", "cat /etc/hostname", "--strace=-e trace=openat")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    (dest,) = (tmp_path / "home" / "local").iterdir()
    lines = (dest / "strace.txt").read_text().splitlines()
    assert any('openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3' in line for line in lines), lines
    assert all("openat(" in line or line.startswith("+++") for line in lines)
    assert json.loads((dest / "spec.json").read_text())["strace"] == ["-e", "trace=openat"]


def test_ctrl_c_stops_the_session_and_still_pulls_it(tmp_path):
    proc = invoke(tmp_path / "home", "--cmd", "sleep 60", "--strace")
    workdir = Path("/tmp/boardtrace-local/sessions")

    found = []

    def running_session():
        for state in workdir.glob("*/state.json"):
            spec = json.loads(state.with_name("spec.json").read_text())
            strace = state.with_name("strace.txt")
            if (spec["cmd"] == ["sleep", "60"] and not state.with_name("manifest.json").exists()
                    and strace.exists() and "nanosleep" in strace.read_text()):
                found.append(spec["id"])
        return found
    wait_for(running_session, what="the session of the invoke process")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted: stopping the sessions" in err
    (session_id,) = found
    dest = tmp_path / "home" / "local" / session_id
    assert json.loads((dest / "manifest.json").read_text())["state"]["reason"] == "stopped by signal 15"
    assert "+++ killed by SIGKILL +++" in (dest / "strace.txt").read_text()
