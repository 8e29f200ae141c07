"""Fixtures for the QEMU board tests: images built once per session (cached in build/qemu across
sessions), boards booted once per session, in parallel, with their state in a temporary directory."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from host.errors import BoardtraceError
from host.profiles import Board, load_board
from host.qemu import runner
from host.qemu.apt import ArchiveUnavailable
from host.qemu.image import Image, build_image

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "qemu"
BOARDS = ("qemu-aarch64", "qemu-riscv64", "qemu-armhf", "qemu-x86_64")

_images: dict[str, Image | str] = {}  # board -> image, or why it cannot be built
_lock = threading.Lock()


def pytest_configure(config):
    config.addinivalue_line("markers", "qemu: boots or builds real emulated boards (QEMU, Debian packages "
                                       "from deb.debian.org); slow")


def image_for(board: Board) -> Image | str:
    """The board's image, built at most once per session; a string says why there is none."""
    with _lock:
        if board.name not in _images:
            try:
                _images[board.name] = build_image(board, CACHE)
            except ArchiveUnavailable as e:
                _images[board.name] = f"the Debian archive is unavailable: {e}"
        return _images[board.name]


def missing_qemu(board: Board) -> str | None:
    assert board.qemu is not None
    if shutil.which(board.qemu.system) is None:
        package = runner.QEMU_PACKAGES.get(board.qemu.system, board.qemu.system)
        return f"{board.qemu.system} is not installed (apt-get install {package})"
    return None


def image_or_skip(board: Board) -> Image:
    """The board's image for a test that boots it itself: a skip when it cannot run here."""
    reason = missing_qemu(board) or image_for(board)
    if isinstance(reason, str):
        pytest.skip(reason)
    return reason


@pytest.fixture(scope="session")
def booted(tmp_path_factory):
    """Board name -> (board, image, running) or the reason it did not boot. All boards boot at
    once; each is stopped at the end of the session."""
    state = tmp_path_factory.mktemp("qemu-run")
    boards = [load_board(name) for name in BOARDS]
    result: dict[str, object] = {}
    for board in boards:  # downloads one after the other
        result[board.name] = missing_qemu(board) or image_for(board)

    def boot(board: Board) -> None:
        image = result[board.name]
        try:
            result[board.name] = (board, image, runner.up(board, image, state))
        except BoardtraceError as e:
            result[board.name] = e

    threads = [threading.Thread(target=boot, args=(b,)) for b in boards if isinstance(result[b.name], Image)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    yield result, state
    for board in boards:
        runner.down(board, state)


def board_up(booted, name: str):
    """(board, image, running) for the named board: a skip when it cannot run here, a failure
    when it should have booted and did not."""
    result, _ = booted
    value = result[name]
    if isinstance(value, str):
        pytest.skip(value)
    if isinstance(value, BoardtraceError):
        pytest.fail(f"{name} did not boot: {value}")
    return value


def pytest_collection_modifyitems(config, items):
    """test_boot's test_down_stops_the_board... stops the session's boards: run those last, so
    the other modules find the boards still up (board_on() boots a stopped board again anyway)."""
    last = [item for item in items if item.name.startswith("test_down_stops_the_board")]
    items[:] = [item for item in items if item not in last] + last


def board_on(booted, name: str):
    """(board, image, running) like board_up, booting the board again in the session's state
    directory when a test has stopped it."""
    board, image, running = board_up(booted, name)
    result, state = booted
    if runner.status(board, state) is None:
        running = runner.up(board, image, state)
        result[name] = (board, image, running)
    return board, image, running


@pytest.fixture(scope="module", params=BOARDS)
def on_board(request, booted):
    """A booted board with the agent deployed: (board, transport, agent), once per module and
    board (pytest groups a module's tests by board)."""
    from host.deploy import deploy
    from host.ssh import SshTransport

    board, _, running = board_on(booted, request.param)
    transport = SshTransport(runner.ssh_board(board, running))
    try:
        yield board, transport, deploy(transport)
    finally:
        transport.close()
