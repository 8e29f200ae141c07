"""Cross-compile user programs for a board, install the toolchains, run the programs on the board.

A toolchain profile (toolchains/<name>.yaml) names the Debian packages, the compiler and its
flags; a board names its toolchain. `build_program` compiles one C file with it and checks, from
the ELF header (the agent's own reader, target/arch/elf.py), that the result is for the board's
arch. `run_program` builds, deploys the agent, uploads the program to <workdir>/progs/<stem> and
runs it there, plain or under the agent's strace; `capture_program` captures it instead (strace,
ftrace and dmesg on one clock, pulled home). docs/toolchains.md describes the tasks.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final, Sequence

from host import REPO
from host.capture import CaptureRequest
from host.deploy import DeployedAgent, deploy
from host.errors import BoardtraceError
from host.profiles import TOOLCHAINS_DIR, Board, Toolchain, display_path, load_toolchain
from host.sessions import capture
from host.transport import open_transport
from target.arch.elf import elf_arch

PROGS_DIR: Final = REPO / "build" / "progs"  # default output: PROGS_DIR/<board>/<stem>
REMOTE_PROGS: Final = "progs"  # on the board, relative to its workdir
QEMU_USER_PACKAGE: Final = "qemu-user"
NOT_EXECUTABLE: Final = 126  # a shell's exit code for "found but cannot execute"


# -- installing ---------------------------------------------------------------------------------

def install_hint(toolchain: Toolchain) -> str:
    return f"invoke toolchain.install --toolchain {toolchain.name}"


def missing_packages(packages: Sequence[str]) -> list[str]:
    """The Debian packages of the list that dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        raise BoardtraceError("dpkg-query not found: installing toolchains needs a Debian-based host "
                              "(else install the compilers yourself)")
    return [p for p in packages if not _installed(p)]


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "install ok installed"


def _apt_get(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("E:")), lines[-1] if lines else "")
        raise BoardtraceError(f"`apt-get {' '.join(args)}` failed (exit {result.returncode}): {why.strip()}")


def install_toolchain(name: str, with_qemu_user: bool = False,
                      toolchains_dir: Path = TOOLCHAINS_DIR) -> list[str]:
    """apt-get install the toolchain's packages (and qemu-user when asked) that are missing;
    `apt-get update` runs only when something is to be installed. Returns the packages installed
    (empty: nothing to do). Then checks the compiler (and qemu-user binary) is on PATH."""
    toolchain = load_toolchain(name, toolchains_dir)
    wanted = [*toolchain.packages, *([QEMU_USER_PACKAGE] if with_qemu_user else [])]
    missing = missing_packages(wanted)
    if missing:
        if os.geteuid() != 0:
            raise BoardtraceError(f"toolchain {name}: {', '.join(missing)} not installed and installing "
                                  f"needs root: sudo {sys.executable} -m invoke toolchain.install "
                                  f"--toolchain {name}, or apt-get install {' '.join(missing)}")
        print(f"toolchain {name}: installing {' '.join(missing)}", file=sys.stderr, flush=True)
        _apt_get("update", "-qq")
        _apt_get("install", "-y", "-qq", "--no-install-recommends", *missing)
    for command in [toolchain.cc, *([toolchain.qemu_user] if with_qemu_user else [])]:
        if shutil.which(command) is None:
            raise BoardtraceError(f"toolchain {name}: {', '.join(wanted)} are installed but {command} is not "
                                  f"on PATH; fix `packages:` or `cc:` in {display_path(toolchain.path)}")
    return missing


# -- building -----------------------------------------------------------------------------------

def default_output(board: Board, src: Path) -> Path:
    return PROGS_DIR / board.name / src.stem


def build_program(board: Board, src: Path, out: Path | None = None) -> Path:
    """Compile the C file src with the board's toolchain (`cc` + `cflags`) into out (default
    build/progs/<board>/<stem>); the result must be an ELF file for the board's arch."""
    toolchain = board.toolchain
    src, out = Path(src), Path(out) if out is not None else default_output(board, Path(src))
    if not src.is_file():
        raise BoardtraceError(f"source file {src} not found")
    cc = shutil.which(toolchain.cc)
    if cc is None:
        packages = ", ".join(toolchain.packages)
        raise BoardtraceError(f"board {board.name}: compiler {toolchain.cc} not found ({packages} not "
                              f"installed?): {install_hint(toolchain)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([cc, *toolchain.cflags, "-o", str(out), str(src)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BoardtraceError(f"board {board.name}: {toolchain.cc} failed on {src}: {_first_error(result.stderr)}")
    check_arch(board, out)
    return out


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for marker in (": fatal error:", ": error:", "undefined reference", "ld: "):
        for line in lines:
            if marker in line:
                return line
    return lines[-1] if lines else "no message"


def check_arch(board: Board, program: Path) -> None:
    """Raise (and remove program) unless it is an ELF file for the board's arch."""
    try:
        arch = elf_arch(program)
    except (ValueError, OSError) as e:
        program.unlink(missing_ok=True)
        raise BoardtraceError(f"board {board.name}: {e}") from None
    if arch != board.arch:
        program.unlink(missing_ok=True)
        raise BoardtraceError(f"board {board.name}: {board.toolchain.cc} built {arch} code, the board is "
                              f"{board.arch}; check `cc:` and `cflags:` in {display_path(board.toolchain.path)}")


# -- running on the board -----------------------------------------------------------------------

def remote_program(board: Board, src: Path) -> str:
    """Where run_program puts the program on the board (absolute)."""
    return posixpath.join(board.workdir, REMOTE_PROGS, Path(src).stem)


def _upload(transport, board: Board, src: Path) -> tuple[DeployedAgent, str]:
    """Build src, deploy the agent, upload the program: (agent, program path from the workdir)."""
    program = build_program(board, src)
    relative = posixpath.join(REMOTE_PROGS, program.name)
    agent = deploy(transport)
    transport.put(program, relative)
    print(f"board {board.name}: {remote_program(board, src)}", file=sys.stderr, flush=True)
    return agent, relative


def run_program(board: Board, src: Path, args: Sequence[str] = (), strace_opts: Sequence[str] | None = None,
                trust_new_host_key: bool = False) -> int:
    """Build src for the board, upload it to <workdir>/progs/<stem> and run it there with args,
    under the agent's strace when strace_opts is not None; output streams to ours. Returns its
    exit code. A workdir on a noexec mount is one clear error."""
    transport = open_transport(board, trust_new_host_key)
    try:
        agent, relative = _upload(transport, board, src)
        argv = [f"./{relative}", *args]
        sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        if strace_opts is None:
            try:
                code = transport.run(argv, **sinks).code
            except PermissionError:  # the local transport execs directly: EACCES
                code = NOT_EXECUTABLE
            failed_to_start = code == NOT_EXECUTABLE
        else:
            code = agent.run(["strace", *strace_opts, "--", *argv], **sinks).code
            failed_to_start = code != 0  # the agent's strace says "exec: Permission denied", exit 1
        if failed_to_start:
            _check_exec_mount(agent, board)
    finally:
        transport.close()
    return code


def capture_program(board: Board, src: Path, args: Sequence[str], request: CaptureRequest, home: Path,
                    trust_new_host_key: bool = False) -> int:
    """Build and upload src as run_program does, then capture it (request's tools, its command
    the program with args) and pull the session home: `invoke run --capture`."""
    transport = open_transport(board, trust_new_host_key)
    try:
        _upload(transport, board, src)
    finally:
        transport.close()
    request = dataclasses.replace(request, cmd=(remote_program(board, src), *args))
    return capture([board], request, home, trust_new_host_key)


def _check_exec_mount(agent: DeployedAgent, board: Board) -> None:
    """Raise the noexec error when the agent reports the workdir's mount as noexec."""
    facts = agent.json(["info", "--workdir", board.workdir, "--compact"]).get("workdir") or {}
    if facts.get("noexec"):
        where = f" ({facts.get('mount_point')})" if facts.get("mount_point") else ""
        raise BoardtraceError(f"board {board.name}: workdir {board.workdir} is mounted noexec{where}; set "
                              f"`workdir:` in {board.path.name} to a directory on an exec mount")

