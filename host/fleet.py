"""Run one job on many boards at once: a thread per board, each with its own connection.

A board that fails is reported and the others go on. Ctrl-C runs each board's interrupt
action (a capture stops its session, so what was captured is still pulled home); a second
Ctrl-C gives up waiting.

(fabric's ThreadingGroup runs one shell command on many Connections; a board's job here is
deploy, capture, follow and pull over our own host-key-verifying transport, so the threads
are ours.)
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from host.deploy import DeployedAgent, deploy
from host.errors import BoardtraceError
from host.profiles import Board
from host.progress import Progress
from host.transport import Transport, open_transport


@dataclass
class BoardRun:
    """One board's share of a fleet job: its connection, agent, progress line and the
    action that ends its work early on Ctrl-C."""

    board: Board
    trust_new_host_key: bool
    progress: Progress
    transport: Transport | None = None
    on_interrupt: Callable[[], object] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deploy(self) -> DeployedAgent:
        self.transport = open_transport(self.board, self.trust_new_host_key)
        return deploy(self.transport)

    def interrupt(self) -> None:
        with self._lock:
            action, self.on_interrupt = self.on_interrupt, None
        if action is not None:
            try:
                action()
            except BoardtraceError as e:
                self.progress.line(f"could not stop: {e}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True)
class Outcome:
    board: str
    ok: bool
    text: str   # the job's summary, or the error line


def run_on_boards(boards: list[Board], job: Callable[[BoardRun], str],
                  trust_new_host_key: bool = False) -> list[Outcome]:
    """job(run) on every board in parallel; its return value is the board's summary."""
    runs = [BoardRun(b, trust_new_host_key, Progress(b.name)) for b in boards]

    def work(run: BoardRun) -> Outcome:
        try:
            return Outcome(run.board.name, True, job(run))
        except BoardtraceError as e:
            return Outcome(run.board.name, False, str(e))
        finally:
            run.close()

    pool = ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="board")
    futures = [pool.submit(work, run) for run in runs]
    try:
        _wait(futures)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the sessions, then pulling what they captured "
              "(Ctrl-C again to give up)", file=sys.stderr, flush=True)
        for run in runs:
            run.interrupt()
        _wait(futures)
    finally:
        pool.shutdown(wait=False)
    return [f.result() for f in futures]


def _wait(futures: list) -> None:
    while not all(f.done() for f in futures):
        wait(futures, timeout=0.2)   # short waits: Ctrl-C is seen at once
