"""Put the agent on a board: find a usable Python, upload the zipapp only when it is missing."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from host.agentbuild import Agent, build_agent
from host.errors import BoardtraceError
from host.transport import Completed, Transport

MIN_PYTHON = (3, 8)
PYTHON_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
# Prints "present" when the file exists with the expected sha256, else "absent"; exit 3 when the
# workdir cannot be written. Stdlib only, Python 3.8, runs on the board before the agent is there.
AGENT_CHECK = r"""
import hashlib, os, sys
workdir, path, want = sys.argv[1:4]
try:
    os.makedirs(workdir, exist_ok=True)
except OSError:
    sys.exit(3)
if not os.access(workdir, os.W_OK):
    sys.exit(3)
try:
    with open(path, 'rb') as f:
        have = hashlib.sha256(f.read()).hexdigest()
except OSError:
    have = ''
print('present' if have == want else 'absent')
"""


@dataclass(frozen=True)
class DeployedAgent:
    """The agent on a board, ready to run tools."""

    transport: Transport
    python: str
    path: str
    uploaded: bool

    def run(self, args: Sequence[str], *, stdin: bytes | None = None,
            stdout: BinaryIO | None = None, stderr: BinaryIO | None = None) -> Completed:
        prefix = ["sudo", "-n"] if self.transport.board.sudo else []
        return self.transport.run([*prefix, self.python, self.path, *args],
                                  stdin=stdin, stdout=stdout, stderr=stderr)


def find_python(transport: Transport) -> str:
    """The first interpreter in the profile's list (then python3) that is Python >= 3.8."""
    board = transport.board
    candidates = list(dict.fromkeys([*board.python, "python3"]))
    seen = []
    for name in candidates:
        result = transport.run([name, "-c", PYTHON_VERSION])
        if result.code != 0:
            continue
        version = result.stdout.decode().strip()
        seen.append(f"{name} is {version}")
        if tuple(int(x) for x in version.split(".")) >= MIN_PYTHON:
            return name
    found = "; ".join(seen) if seen else "none of " + ", ".join(candidates) + " runs"
    raise BoardtraceError(f"board {board.name}: no Python >= 3.8 ({found}); install python3 on the "
                          f"board or list its interpreter under `python:` in {board.path.name}")


def deploy(transport: Transport, agent: Agent | None = None) -> DeployedAgent:
    """Build the agent if needed and upload it as <workdir>/agent-<sha256>.pyz unless present."""
    agent = agent or build_agent()
    board = transport.board
    python = find_python(transport)
    path = posixpath.join(board.workdir, f"agent-{agent.sha256}.pyz")
    if _agent_state(transport, python, path, agent) == "present":
        return DeployedAgent(transport, python, path, uploaded=False)
    transport.put(agent.hashed_path, path)
    if _agent_state(transport, python, path, agent) != "present":
        raise BoardtraceError(f"board {board.name}: {path} did not arrive whole (sha256 differs)")
    return DeployedAgent(transport, python, path, uploaded=True)


def _agent_state(transport: Transport, python: str, path: str, agent: Agent) -> str:
    board = transport.board
    result = transport.run([python, "-c", AGENT_CHECK, board.workdir, path, agent.sha256])
    if result.code == 3:
        raise BoardtraceError(f"board {board.name}: workdir {board.workdir} cannot be created or written; "
                              f"set `workdir:` in {board.path.name} to a writable directory")
    if result.code != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        raise BoardtraceError(f"board {board.name}: checking the agent failed: "
                              f"{err[-1] if err else f'exit {result.code}'}")
    return result.stdout.decode().strip()
