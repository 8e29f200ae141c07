"""Capture sessions on a board: start one from a spec, follow its progress, stop it.

The session runs detached on the board (`agent capture`, target/capture.py), so a dropped
connection loses nothing: the host says so and `invoke pull` picks it up later.
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from dataclasses import dataclass, field

from host.deploy import DeployedAgent
from host.errors import BoardtraceError, ConnectionLost
from host.progress import Progress, describe

# `--ftrace` alone: what the scheduler and interrupts did while the command ran
DEFAULT_FTRACE = ("-e sched:sched_switch -e sched:sched_wakeup -e sched:sched_process_fork "
                  "-e sched:sched_process_exec -e sched:sched_process_exit "
                  "-e irq:irq_handler_entry -e irq:irq_handler_exit")
DEFAULT_STRACE = "-f"
FINAL = ("done", "failed")


@dataclass(frozen=True)
class CaptureRequest:
    """What to capture, as given on the command line."""

    cmd: tuple[str, ...] = ()
    strace: tuple[str, ...] | None = None
    ftrace: tuple[str, ...] | None = None
    dmesg: bool = False
    duration: float | None = None
    session_id: str = field(default_factory=lambda: new_session_id())

    def spec(self) -> dict:
        return {"id": self.session_id, "cmd": list(self.cmd) or None,
                "strace": None if self.strace is None else list(self.strace),
                "ftrace": None if self.ftrace is None else list(self.ftrace),
                "dmesg": self.dmesg, "duration": self.duration}


def new_session_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def tool_options(value: bool | str | None, default: str) -> tuple[str, ...] | None:
    """An optional-value task option: absent (None/False), bare (True: the default options),
    or the tool's options as one shell-like string."""
    if value is None or value is False:
        return None
    return tuple(shlex.split(default if value is True else value))


def make_request(cmd: str | None, strace: bool | str | None, ftrace: bool | str | None,
                 dmesg: bool, duration: float | None) -> CaptureRequest:
    request = CaptureRequest(cmd=tuple(shlex.split(cmd or "")),
                             strace=tool_options(strace, DEFAULT_STRACE),
                             ftrace=tool_options(ftrace, DEFAULT_FTRACE),
                             dmesg=dmesg, duration=duration)
    if request.strace is None and request.ftrace is None and not dmesg:
        raise BoardtraceError("nothing to capture: give --strace, --ftrace and/or --dmesg")
    if duration is not None and duration <= 0:
        raise BoardtraceError(f"--duration {duration:g}: must be more than 0 seconds")
    return request


def start(agent: DeployedAgent, request: CaptureRequest) -> str:
    """Start the session on the board; returns once every part runs."""
    reply = agent.json(["capture", "start"], stdin=json.dumps(request.spec()).encode())
    return reply["id"]


def stop(agent: DeployedAgent, session_id: str) -> dict:
    """End a running session (the board waits for its parts to finish); its final state."""
    return agent.json(["capture", "stop", session_id])


def status(agent: DeployedAgent, session_id: str) -> dict:
    return agent.json(["capture", "status", session_id])


class _StateLines:
    """A sink for `agent capture follow`: one JSON state per line, shown as progress."""

    def __init__(self, progress: Progress):
        self.progress, self.buffer, self.state = progress, b"", {}

    def write(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                self.state = json.loads(line)
            except ValueError:
                continue
            self.progress.show(describe(self.state))

    def flush(self) -> None:
        pass


def follow(agent: DeployedAgent, session_id: str, progress: Progress, interval: float = 1.0) -> dict:
    """Show the session's progress until it finishes; returns its final state."""
    sink = _StateLines(progress)
    board = agent.transport.board.name
    while sink.state.get("state") not in FINAL:
        try:
            result = agent.run(["capture", "follow", session_id, "--interval", str(interval)],
                               stdout=sink)  # type: ignore[arg-type]
        finally:
            if sink.state.get("state") not in FINAL:
                progress.line()
        if sink.state.get("state") not in FINAL and result.code != 130:
            # (130: our own Ctrl-C reached it and the caller stops the session: follow again)
            err = result.stderr.decode(errors="replace").strip().splitlines()
            raise BoardtraceError(f"board {board}: following session {session_id} failed: "
                                  f"{err[-1] if err else f'exit {result.code} before the session ended'}")
    progress.line(describe(sink.state) + (f" ({sink.state['reason']})" if sink.state.get("reason") else ""))
    return sink.state


def goes_on(e: ConnectionLost, board: str, session_id: str) -> BoardtraceError:
    """The error for a connection lost while a session runs: nothing is lost, say how to fetch it."""
    return BoardtraceError(f"{e}; session {session_id} goes on on the board: "
                           f"`invoke pull --board {board} --session {session_id}` fetches it")
