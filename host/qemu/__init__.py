"""QEMU boards: Debian kernel + busybox/dropbear/python initramfs images (image), booted in the
background with SSH forwarded to 127.0.0.1 (runner). Documented in docs/qemu.md.

ensure_up() is what every task uses: a QEMU board that is down is built (if needed) and booted,
then reached like any SSH board, its host key pinned from the image."""

from __future__ import annotations

import sys
import threading

from host import REPO
from host.profiles import Board

CACHE = REPO / "build" / "qemu"
STATE = CACHE / "run"
_building = threading.Lock()  # boards of a fleet share the APT cache and the client key


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_up(board: Board, extra_append: str = "", restart: bool = False) -> Board:
    """The board as an SSH board on its forwarded port, booted first when it is down.
    extra_append: kernel command line options to boot with; a board running without them is an
    error unless `restart`, which stops a running board first."""
    from host.qemu import runner
    from host.qemu.image import build_image

    running = runner.status(board, STATE)
    if running is not None and restart:
        say(f"{board.name}: restarting" + (f" with {extra_append}" if extra_append else ""))
        runner.down(board, STATE)
        running = None
    if running is None:
        with _building:
            image = build_image(board, CACHE, say)
        running = runner.up(board, image, STATE, say=say, extra_append=extra_append)
    runner.check_append(board, running, extra_append)
    return runner.ssh_board(board, running)
