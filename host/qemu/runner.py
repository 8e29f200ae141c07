"""Boot a QEMU board in the background and reach it over SSH on a forwarded port.

QEMU runs in its own session (a Ctrl-C or the end of the caller does not stop it), its serial
console goes to a file, QMP listens on a unix socket. The guest's port 22 is forwarded from a port
the host kernel picks (hostfwd ...:0), read back over QMP. The board is up when an SSH command
really runs with the image's pinned host key; slirp accepts TCP connections before the guest
listens, so a TCP connect proves nothing. State lives in state_dir/<board>.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paramiko

from host.errors import BoardtraceError
from host.profiles import Board, SshTransport as SshProfile, host_arch
from host.qemu.image import READY, Image
from host.ssh import SshTransport

STATE_DIR = Path("build/qemu/run")
BOOT_TIMEOUT = 180.0  # seconds to SSH under TCG; a loaded 2-core runner needs ~30 s for four boards
KVM_PROBE = 30.0  # seconds for a KVM boot to reach /init before falling back to TCG
QEMU_PACKAGES = {"qemu-system-aarch64": "qemu-system-arm", "qemu-system-arm": "qemu-system-arm",
                 "qemu-system-riscv64": "qemu-system-misc", "qemu-system-x86_64": "qemu-system-x86"}
_USERNET_PORT = re.compile(r"HOST_FORWARD\]\s+\d+\s+127\.0\.0\.1\s+(\d+)\s+\S+\s+22\b")


@dataclass(frozen=True)
class Running:
    board: str
    pid: int
    port: int
    accel: str
    image_dir: Path
    host_key: str
    client_key: Path
    console: Path
    qmp: Path
    boot_seconds: float
    notes: tuple[str, ...] = ()
    append: str = ""  # the kernel command line it booted with (-append)


def up(board: Board, image: Image, state_dir: Path = STATE_DIR, timeout: float = BOOT_TIMEOUT,
       say: Callable[[str], None] = print, extra_append: str = "") -> Running:
    """Boot the board from the image unless it already runs from it; returns when SSH works.
    extra_append: kernel command line options added to the profile's `qemu.append`; a board
    already running without them is an error (it is never restarted here)."""
    q = _qemu(board)
    state_dir = state_dir.resolve()
    running = status(board, state_dir)
    if running is not None:
        if running.image_dir != image.dir:
            raise BoardtraceError(f"board {board.name} already runs another image (pid {running.pid}); "
                                  f"stop it first (down)")
        check_append(board, running, extra_append)
        return running
    if shutil.which(q.system) is None:
        raise BoardtraceError(f"{q.system} not found: apt-get install {QEMU_PACKAGES.get(q.system, q.system)}")
    state_dir.mkdir(parents=True, exist_ok=True)
    accel, notes = _accelerator(board)
    if accel == "kvm":
        try:
            return _boot(board, image, state_dir, "kvm", timeout, notes, say, extra_append, probe=KVM_PROBE)
        except _NoProgress:
            notes.append(f"kvm: QEMU quit or the guest reached no /init within {KVM_PROBE:g} s; "
                         f"fell back to tcg")
            say(f"{board.name}: {notes[-1]}")
    return _boot(board, image, state_dir, "tcg", timeout, notes, say, extra_append)


def down(board: Board, state_dir: Path = STATE_DIR) -> bool:
    """Stop the board (QMP quit, then kill); False when it was not running. The state goes, the
    console log stays."""
    state_dir = state_dir.resolve()
    running = status(board, state_dir)
    if running is not None:
        try:
            with Qmp(running.qmp, timeout=5) as qmp:
                qmp.command("quit")  # busybox init ignores system_powerdown
        except (OSError, BoardtraceError):
            pass
        if not _wait_gone(running.pid, 10):
            os.kill(running.pid, signal.SIGKILL)
            _wait_gone(running.pid, 10)
    for path in (_state_file(board, state_dir), state_dir / f"{board.name}.qmp"):
        path.unlink(missing_ok=True)
    return running is not None


def status(board: Board, state_dir: Path = STATE_DIR) -> Running | None:
    """The running board, or None (no state, or its QEMU is gone)."""
    path = _state_file(board, state_dir.resolve())
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    fields = {f.name for f in dataclasses.fields(Running)}
    state.setdefault("append", _argv_append(state.get("argv") or []))
    running = Running(**{k: v for k, v in state.items() if k in fields})
    running = dataclasses.replace(running, image_dir=Path(running.image_dir), client_key=Path(running.client_key),
                                  console=Path(running.console), qmp=Path(running.qmp), notes=tuple(running.notes))
    return running if _is_our_qemu(running, _qemu(board).system) else None


def _argv_append(argv: list[str]) -> str:
    """The -append of a QEMU command line (state files written before `append` was recorded)."""
    return argv[argv.index("-append") + 1] if "-append" in argv[:-1] else ""


def console_log(board: Board, state_dir: Path = STATE_DIR) -> Path:
    return state_dir.resolve() / f"{board.name}.console.log"


def ssh_board(board: Board, running: Running) -> Board:
    """The board as the rest of the host uses it: SSH to the forwarded port, host key pinned,
    logging in as root with the image's client key."""
    connect_timeout = board.transport.connect_timeout if isinstance(board.transport, SshProfile) else 30.0
    return dataclasses.replace(board, transport=SshProfile(
        host="127.0.0.1", port=running.port, user="root", key=str(running.client_key),
        host_key=running.host_key, connect_timeout=connect_timeout))


# -- booting ------------------------------------------------------------------------------------

class _NoProgress(Exception):
    """A KVM boot showed no sign of reaching /init."""


def _qemu(board: Board):
    if board.qemu is None:
        raise BoardtraceError(f"board {board.name}: not a QEMU board (no `qemu:` in {board.path.name})")
    return board.qemu


def _accelerator(board: Board) -> tuple[str, list[str]]:
    q = _qemu(board)
    notes: list[str] = []
    if "kvm" in q.accel:
        reason = _kvm_unusable(board)
        if reason is None:
            return "kvm", notes
        notes.append(f"kvm not used: {reason}")
    if "tcg" not in q.accel:
        raise BoardtraceError(f"board {board.name}: {notes[0]}, and `qemu.accel` does not allow tcg")
    return "tcg", notes


def kernel_command_line(board: Board, extra_append: str = "") -> str:
    """What -append passes: the console, the profile's `qemu.append`, then extra_append."""
    q = _qemu(board)
    return " ".join(f"console={q.console} {q.append} {extra_append}".split())


def missing_append(running: Running, extra_append: str) -> list[str]:
    """The options of extra_append that the running board's kernel command line lacks."""
    booted = running.append.split()
    return [option for option in extra_append.split() if option not in booted]


def check_append(board: Board, running: Running, extra_append: str) -> None:
    missing = missing_append(running, extra_append)
    if missing:
        raise BoardtraceError(f"board {board.name} runs without {' '.join(missing)} on its kernel command line "
                              f"({running.append!r}); stop it first (down)")


def _kvm_unusable(board: Board) -> str | None:
    if host_arch() != board.arch:
        return f"the host is {host_arch()}, the board {board.arch}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is missing or not accessible"
    if Path("/sys/module/kvm_pvm").exists():
        return "/dev/kvm is kvm_pvm (PVM nested virtualisation), which boots no stock kernel"
    return None


def _command(board: Board, image: Image, accel: str, console: Path, qmp: Path, append: str) -> list[str]:
    q = _qemu(board)
    cpu = q.kvm_cpu or q.cpu if accel == "kvm" else q.cpu
    argv = [q.system, "-M", q.machine, "-accel", accel, "-cpu", cpu, "-smp", str(q.smp), "-m", str(q.memory),
            "-display", "none", "-monitor", "none", "-no-reboot", "-serial", f"file:{console}",
            "-qmp", f"unix:{qmp},server=on,wait=off", "-device", "virtio-rng-pci",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:0-:22", "-device", f"{q.net_device},netdev=n0",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", append]
    if q.bios:
        argv += ["-bios", q.bios]
    return argv


def _boot(board: Board, image: Image, state_dir: Path, accel: str, timeout: float, notes: list[str],
          say: Callable[[str], None], extra_append: str = "", probe: float | None = None) -> Running:
    console, qmp = console_log(board, state_dir), state_dir / f"{board.name}.qmp"
    for stale in (console, qmp):
        stale.unlink(missing_ok=True)  # an old log would fake progress
    append = kernel_command_line(board, extra_append)
    argv = _command(board, image, accel, console, qmp, append)
    started = time.monotonic()
    with (state_dir / f"{board.name}.qemu.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    say(f"{board.name}: booting ({accel}, pid {proc.pid})")
    try:
        try:
            port = _forwarded_port(board, proc, qmp, state_dir)
            ready = _wait_console(proc, console, started + (probe or timeout))
        except BoardtraceError:
            if probe is None:
                raise
            ready = False  # e.g. KVM refused the guest and QEMU quit
        if not ready and probe is not None:
            raise _NoProgress()
        if not ready:
            raise BoardtraceError(f"{board.name}: no {READY!r} on the console within {timeout:g} s; "
                                  f"console ({console}): {_tail(console)}")
        running = Running(board=board.name, pid=proc.pid, port=port, accel=accel, image_dir=image.dir,
                          host_key=image.host_key, client_key=image.client_key, console=console, qmp=qmp,
                          boot_seconds=0.0, notes=tuple(notes), append=append)
        _wait_ssh(board, running, proc, started + timeout)
    except BaseException:
        _kill(proc)
        raise
    running = dataclasses.replace(running, boot_seconds=round(time.monotonic() - started, 1))
    state = {**dataclasses.asdict(running), "argv": argv}
    _state_file(board, state_dir).write_text(json.dumps(state, indent=2, default=str) + "\n")
    say(f"{board.name}: up in {running.boot_seconds:g} s, ssh root@127.0.0.1 -p {port}")
    return running


def _forwarded_port(board: Board, proc: subprocess.Popen, qmp_path: Path, state_dir: Path) -> int:
    """The host port QEMU picked for the guest's port 22 (hostfwd ...:0), from `info usernet`."""
    deadline = time.monotonic() + 15
    qemu_log = state_dir / f"{board.name}.qemu.log"
    while not qmp_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BoardtraceError(f"{board.name}: QEMU did not start: {_tail(qemu_log)}")
        time.sleep(0.05)
    try:
        with Qmp(qmp_path) as qmp:
            text = qmp.command("human-monitor-command", **{"command-line": "info usernet"})
    except OSError as e:
        raise BoardtraceError(f"{board.name}: QEMU's QMP socket failed ({e}): {_tail(qemu_log)}") from None
    match = _USERNET_PORT.search(text)
    if match is None:
        raise BoardtraceError(f"{board.name}: no SSH port forward in QEMU's `info usernet`: {text!r}")
    return int(match.group(1))


def _wait_console(proc: subprocess.Popen, console: Path, deadline: float) -> bool:
    """Whether /init printed its readiness marker (dropbear started) before the deadline."""
    while time.monotonic() < deadline and proc.poll() is None:
        if console.exists() and READY.encode() in console.read_bytes():
            return True
        time.sleep(0.2)
    return False


def _wait_ssh(board: Board, running: Running, proc: subprocess.Popen, deadline: float) -> None:
    """Until a command runs over SSH (dropbear may not listen yet right after the marker)."""
    with _PARAMIKO:
        _try_ssh(board, running, proc, deadline)


class _Silenced:
    """A logger silenced while any thread is inside: paramiko logs a traceback for each expected
    failure while a guest comes up, and boards may boot in parallel threads."""

    def __init__(self, name: str):
        self.logger, self.lock, self.inside, self.saved = logging.getLogger(name), threading.Lock(), 0, 0

    def __enter__(self) -> None:
        with self.lock:
            if self.inside == 0:
                self.saved = self.logger.level
                self.logger.setLevel(logging.CRITICAL)
            self.inside += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.inside -= 1
            if self.inside == 0:
                self.logger.setLevel(self.saved)


_PARAMIKO = _Silenced("paramiko.transport")


def _try_ssh(board: Board, running: Running, proc: subprocess.Popen, deadline: float) -> None:
    probe = ssh_board(board, running)
    probe = dataclasses.replace(probe, transport=dataclasses.replace(probe.transport, connect_timeout=10.0))
    last = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BoardtraceError(f"{board.name}: QEMU exited ({proc.returncode}) during boot; console: "
                                  f"{_tail(running.console)}")
        transport = SshTransport(probe)
        try:
            if transport.run(["true"], timeout=10).code == 0:
                return
        except (BoardtraceError, paramiko.SSHException, OSError, EOFError) as e:
            last = str(e)
        finally:
            transport.close()
        time.sleep(0.5)
    raise BoardtraceError(f"{board.name}: no SSH within the boot timeout (last: {last}); console "
                          f"({running.console}): {_tail(running.console)}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(none)"
    return " | ".join(text[-lines:]) or "(empty)"


# -- processes ----------------------------------------------------------------------------------

def _state_file(board: Board, state_dir: Path) -> Path:
    return state_dir / f"{board.name}.json"


def _is_our_qemu(running: Running, system: str) -> bool:
    try:
        cmdline = Path(f"/proc/{running.pid}/cmdline").read_bytes().split(b"\0")
        zombie = Path(f"/proc/{running.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
    return not zombie and bool(cmdline) and Path(cmdline[0].decode()).name == Path(system).name \
        and f"unix:{running.qmp},server=on,wait=off".encode() in cmdline


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps it when it is our child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Qmp:
    """A minimal QMP client on QEMU's unix socket."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.file = self.sock.makefile("rwb")
        self._read()  # the greeting
        self.command("qmp_capabilities")

    def command(self, name: str, **arguments: Any) -> Any:
        message = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise BoardtraceError(f"QMP {name}: {reply['error'].get('desc', reply['error'])}")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise BoardtraceError("QMP: QEMU closed the connection")
        return json.loads(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
