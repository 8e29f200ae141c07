"""Real emulated boards: boot, SSH with the pinned host key, deploy the agent, SFTP, stop."""

from __future__ import annotations

import dataclasses
import json

import pytest

from host.deploy import deploy
from host.qemu import runner
from host.ssh import SshTransport
from host.profiles import load_board
from tests.qemu.conftest import BOARDS, board_up, image_or_skip

pytestmark = pytest.mark.qemu

UNAME = {"aarch64": "aarch64", "armhf": "armv7l", "riscv64": "riscv64", "x86_64": "x86_64"}


@pytest.fixture(params=BOARDS)
def up(request, booted):
    board, image, running = board_up(booted, request.param)
    transport = SshTransport(runner.ssh_board(board, running))
    yield board, image, running, transport
    transport.close()


def test_uname_is_the_board_arch(up):
    board, _, running, transport = up
    result = transport.run(["uname", "-m"])
    assert result.code == 0, result.stderr
    assert result.stdout.decode().strip() == UNAME[board.arch]
    assert running.port > 0 and running.boot_seconds > 0


def test_the_agent_deploys_and_reports_the_board(up):
    board, image, _, transport = up
    deployed = deploy(transport)
    result = deployed.run(["info"])
    assert result.code == 0, result.stderr.decode()
    info = json.loads(result.stdout)
    assert info["arch"]["name"] == board.arch
    assert info["kernel"]["release"] == image.facts["kernel"]["release"]
    assert info["python"]["version"].startswith(image.python + ".")
    assert info["ftrace"]["path"] == "/sys/kernel/tracing"
    assert info["ftrace"]["mounted"] is True
    assert info["user"]["root"] is True


def test_sftp_moves_files_both_ways(up, tmp_path):
    _, _, _, transport = up
    local = tmp_path / "up.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    transport.put(local, "sftp-test.bin")
    back = tmp_path / "down.bin"
    transport.get("sftp-test.bin", back)
    assert back.read_bytes() == local.read_bytes()
    assert transport.run(["test", "-x", "sftp-test.bin"]).code == 0  # put makes it executable


def test_status_names_the_running_board(up, booted):
    board, image, running, _ = up
    _, state = booted
    assert runner.status(board, state) == running
    assert runner.console_log(board, state).is_file()
    assert image.facts["ready_marker"] in runner.console_log(board, state).read_text(errors="replace")


def test_down_stops_the_board_and_removes_its_state(up, booted):
    board, _, running, transport = up
    _, state = booted
    transport.close()
    assert runner.down(board, state) is True
    assert runner.status(board, state) is None
    assert not (state / f"{board.name}.json").exists()
    assert runner.down(board, state) is False  # stopping a stopped board is fine


def test_an_older_python_runs_the_agent(tmp_path):
    """Bullseye's Python 3.9 on the aarch64 board: the agent's floor is 3.8."""
    board = load_board("qemu-aarch64")
    board = dataclasses.replace(board, name="qemu-aarch64-bullseye",
                                qemu=dataclasses.replace(board.qemu, suite="bullseye"))
    image = image_or_skip(board)
    assert image.python == "3.9"
    running = runner.up(board, image, tmp_path)
    try:
        transport = SshTransport(runner.ssh_board(board, running))
        result = deploy(transport).run(["info"])
        transport.close()
        assert result.code == 0, result.stderr.decode()
        info = json.loads(result.stdout)
        assert info["python"]["version"].startswith("3.9.")
        assert info["kernel"]["release"].startswith("5.10.")
    finally:
        runner.down(board, tmp_path)
