"""Boards with `sudo: true`, for real: a non-root user logs in through a real sshd on loopback
and the agent runs through the real sudo, with and without a password rule."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from host.capture import CaptureRequest
from host.deploy import deploy
from host.errors import BoardtraceError
from host.sessions import capture
from host.ssh import SshTransport
from tests.host.sshd import SshdError, ssh_board, sshd_available, start_sshd

USER = "bt-sudo-test"
SUDOERS = Path("/etc/sudoers.d/bt-sudo-test")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sudo") or not shutil.which("useradd") or not sshd_available(),
    reason="needs root, sudo, useradd and openssh-server (apt-get install sudo openssh-server)")


@pytest.fixture(scope="module")
def server():
    """sshd whose keys sit in a directory the test user can read (sshd reads
    authorized_keys as the user who logs in)."""
    directory = Path(tempfile.mkdtemp(prefix="bt-sudo-sshd-"))
    directory.chmod(0o755)
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:   # left by an aborted run
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)   # no password, not locked
    try:
        with start_sshd(directory) as running:
            yield running
    except SshdError as e:
        pytest.fail(str(e))
    finally:
        subprocess.run(["userdel", "-f", USER], check=False, capture_output=True)
        SUDOERS.unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def board(server, tmp_path):
    workdir = Path(tempfile.mkdtemp(prefix="bt-sudo-work-"))
    shutil.chown(workdir, USER)
    yield dataclasses.replace(ssh_board(server, workdir, user=USER), sudo=True)
    shutil.rmtree(workdir, ignore_errors=True)


def allow(rule: str) -> None:
    SUDOERS.write_text(f"{USER} ALL=(ALL) {rule}ALL\n")
    SUDOERS.chmod(0o440)


def test_sudo_that_asks_for_a_password_is_one_clear_error(board):
    allow("")
    transport = SshTransport(board)
    try:
        with pytest.raises(BoardtraceError, match=r"`sudo -n` does not work \(sudo: a password is required\); "
                                                  r"allow the login user to run sudo without a password"):
            deploy(transport)
    finally:
        transport.close()


def test_the_agent_runs_as_root_through_sudo_and_a_capture_comes_home(board, tmp_path):
    allow("NOPASSWD: ")
    transport = SshTransport(board)
    try:
        agent = deploy(transport)
        facts = json.loads(agent.run(["info", "--compact"]).stdout)
        assert facts["user"]["uid"] == 0
        assert transport.run(["id", "-un"]).stdout.decode().strip() == USER
    finally:
        transport.close()
    request = CaptureRequest(dmesg=True, duration=0.2)
    assert capture([board], request, tmp_path / "home") == 0
    assert (tmp_path / "home" / "loopback" / request.session_id / "dmesg.txt").stat().st_size > 0
