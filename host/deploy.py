"""Put the agent on a board: find a usable Python, upload the zipapp only when it is missing."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from host.agentbuild import Agent, build_agent
from host.errors import BoardtraceError
from host.profiles import Board
from host.transport import Completed, Transport

MIN_PYTHON = (3, 8)
# -I: no PYTHON* variables, no user site, nothing from the working directory; -S: no site
# (the agent needs only the standard library, and site costs start-up time on every run).
AGENT_FLAGS = ("-I", "-S")
# One round trip on the board before the agent runs (stdlib only): exit 5 and the version when
# the Python is older than 3.8 (the check is written so that old Pythons can parse it); exit 3
# when the workdir cannot be written; "absent" when the agent with the expected sha256 is not there;
# else "present ARCHIVE", ARCHIVE being <agent>.<cache_tag>.pyz: the agent plus each module's
# bytecode (unchecked hash-based .pyc, which zipimport loads without looking at the source),
# compiled once by the board's own Python. A bare zipapp is compiled on every run, which on a
# slow board costs more than a short tool run. If that cannot be made, the bare archive.
# When it makes that archive (once per new build), it removes the files of older builds but
# the two most recent others (another host may be using a different build).
AGENT_CHECK = r"""
import sys
if sys.version_info < (3, 8):
    print('%d.%d' % sys.version_info[:2])
    sys.exit(5)
import hashlib, os, py_compile, tempfile, zipfile
workdir, src, want = sys.argv[1:4]
try:
    os.makedirs(workdir, exist_ok=True)
except OSError:
    sys.exit(3)
if not os.access(workdir, os.W_OK):
    sys.exit(3)
try:
    with open(src, 'rb') as f:
        have = hashlib.sha256(f.read()).hexdigest()
except OSError:
    have = ''
if have != want:
    print('absent')
    sys.exit(0)

def compiled(dst):
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    with tempfile.TemporaryDirectory(dir=os.path.dirname(src)) as tmp:
        part = os.path.join(tmp, 'agent.pyz')
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(part, 'w', zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                data = zin.read(info)
                zout.writestr(info, data)
                if info.filename.endswith('.py') and info.filename != '__main__.py':
                    source = os.path.join(tmp, 'module.py')
                    with open(source, 'wb') as f:
                        f.write(data)
                    pyc = py_compile.compile(source, os.path.join(tmp, 'module.pyc'),
                                             os.path.join(dst, info.filename), True,
                                             invalidation_mode=mode)
                    with open(pyc, 'rb') as f:
                        zout.writestr(zipfile.ZipInfo(info.filename + 'c', info.date_time), f.read())
        os.replace(part, dst)

def prune(keep):
    builds = {}
    for name in os.listdir(workdir):
        if name.startswith('agent-') and name.endswith('.pyz') and len(name) > 70:
            path = os.path.join(workdir, name)
            builds.setdefault(name[:70], []).append((os.path.getmtime(path), path))
    mine = os.path.basename(src)[:70]
    others = sorted((b for b in builds if b != mine), key=lambda b: max(builds[b]), reverse=True)
    for build in others[keep:]:
        for _, path in builds[build]:
            os.remove(path)

run = src
tag = sys.implementation.cache_tag
if tag:
    dst = src[:-len('.pyz')] + '.' + tag + '.pyz'
    try:
        if not os.path.exists(dst):
            compiled(dst)
            prune(2)
        run = dst
    except Exception:
        pass
print('present', run)
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
        return self.transport.run([*prefix, self.python, *AGENT_FLAGS, self.path, *args],
                                  stdin=stdin, stdout=stdout, stderr=stderr)

    def json(self, args: Sequence[str], stdin: bytes | None = None) -> dict:
        """Run an agent command that prints a JSON object (its last line); its error line
        becomes a BoardtraceError."""
        result = self.run(args, stdin=stdin)
        board = self.transport.board.name
        if result.code != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            raise BoardtraceError(f"board {board}: {lines[-1] if lines else f'agent {args[0]} exit {result.code}'}")
        try:
            return json.loads(result.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BoardtraceError(f"board {board}: `agent {' '.join(args[:2])}` printed no JSON") from None


def deploy(transport: Transport, agent: Agent | None = None) -> DeployedAgent:
    """Build the agent if needed and upload it as <workdir>/agent-<sha256>.pyz unless present."""
    agent = agent or build_agent()
    board = transport.board
    path = posixpath.join(board.workdir, f"agent-{agent.sha256}.pyz")
    python, run = _find_python(transport, path, agent)
    uploaded = run is None
    if uploaded:
        transport.put(agent.hashed_path, path)
        run = _agent_state(_check(transport, python, path, agent), board)
        if run is None:
            raise BoardtraceError(f"board {board.name}: {path} did not arrive whole (sha256 differs)")
    return DeployedAgent(transport, python, run, uploaded)


def _find_python(transport: Transport, path: str, agent: Agent) -> tuple[str, str | None]:
    """The first interpreter in the profile's list (then python3) that is Python >= 3.8, and
    the archive it would run (None: the agent is not there yet)."""
    board = transport.board
    candidates = list(dict.fromkeys([*board.python, "python3"]))
    seen = []
    for name in candidates:
        result = _check(transport, name, path, agent)
        if result.code == 5:
            seen.append(f"{name} is {result.stdout.decode().strip()}")
        elif result.code == 2 and b"-I" in result.stderr:
            seen.append(f"{name} is older than 3.4")
        elif result.code != 127:
            return name, _agent_state(result, board)
    found = "; ".join(seen) if seen else "none of " + ", ".join(candidates) + " runs"
    raise BoardtraceError(f"board {board.name}: no Python >= 3.8 ({found}); install python3 on the "
                          f"board or list its interpreter under `python:` in {board.path.name}")


# On boards with `sudo: true` the same round trip first checks that sudo works without a password.
SUDO_CHECK = 'why=$(sudo -n true 2>&1) || { echo "$why" >&2; exit 4; }; exec "$@"'


def _check(transport: Transport, python: str, path: str, agent: Agent) -> Completed:
    board = transport.board
    check = [python, *AGENT_FLAGS, "-c", AGENT_CHECK, board.workdir, path, agent.sha256]
    result = transport.run(["sh", "-c", SUDO_CHECK, "sh", *check] if board.sudo else check)
    if result.code == 4 and board.sudo:
        why = result.stderr.decode(errors="replace").strip().splitlines()
        raise BoardtraceError(f"board {board.name}: `sudo -n` does not work ({why[-1] if why else 'no reason given'}); "
                              f"allow the login user to run sudo without a password (a NOPASSWD rule in "
                              f"/etc/sudoers.d), log in as root, or set `sudo: false` in {board.path.name}")
    return result


def _agent_state(result: Completed, board: Board) -> str | None:
    """The archive to run when the check found the agent whole, else None."""
    if result.code == 3:
        raise BoardtraceError(f"board {board.name}: workdir {board.workdir} cannot be created or written; "
                              f"set `workdir:` in {board.path.name} to a writable directory")
    if result.code != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        raise BoardtraceError(f"board {board.name}: checking the agent failed: "
                              f"{err[-1] if err else f'exit {result.code}'}")
    state, _, run = result.stdout.decode().strip().partition(" ")
    return run if state == "present" else None
