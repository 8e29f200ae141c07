"""A real OpenSSH server on 127.0.0.1 for tests: a temporary host key, one authorized client key.

Use it with `from tests.host.sshd import sshd, ssh_board` in a test module. The server runs in
the foreground (`sshd -D -e -f <config>`) as the current user (root in CI) on a free port, for
one test module, and its log is shown when it fails to start. Needs Debian's openssh-server.
start_sshd() is the same server without pytest (for bench/deploy.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from host.profiles import Board, SshTransport, load_board

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it (privilege separation)
CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/host_ed25519
PidFile none
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {dir}/authorized_keys
Subsystem sftp internal-sftp
"""


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    key: Path  # the authorized client private key
    host_key: str  # the server's public host key line, "ssh-ed25519 AAAA..."
    process: subprocess.Popen
    log: Path

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key}\n"


def ssh_board(server: SshServer, workdir: Path, **transport: object) -> Board:
    """The local board, reached through the test sshd, with its workdir in `workdir`.
    Keyword arguments change the SSH profile; the host key is pinned unless host_key=None."""
    settings = dict(host=server.host, port=server.port, user=server.user, key=str(server.key),
                    host_key=server.host_key, connect_timeout=5.0)
    settings.update(transport)
    board = load_board("local")
    return dataclasses.replace(board, name="loopback", transport=SshTransport(**settings),
                               workdir=str(workdir))


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boardtrace-test", "-f", str(path)],
                   check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshdError(Exception):
    """sshd did not start; the message holds its log."""


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SshdError(f"sshd exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise SshdError(f"sshd did not answer on port {port}:\n{log.read_text()}")


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


@contextlib.contextmanager
def start_sshd(directory: Path) -> Iterator[SshServer]:
    """Run sshd (keys, config and log in directory, which must exist) until the block ends.
    Usable outside pytest (bench/deploy.py); raises SshdError when sshd does not start."""
    _keygen(directory / "host_ed25519")
    _keygen(directory / "client_ed25519")
    shutil.copyfile(directory / "client_ed25519.pub", directory / "authorized_keys")
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(CONFIG.format(port=port, dir=directory))
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log = directory / "sshd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=log_file)
    try:
        _wait_for_banner(port, process, log, time.monotonic() + 10)
        host_key = " ".join((directory / "host_ed25519.pub").read_text().split()[:2])
        yield SshServer(host="127.0.0.1", port=port, user=getpass.getuser(),
                        key=directory / "client_ed25519", host_key=host_key, process=process, log=log)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SshServer]:
    if not sshd_available():
        pytest.skip("needs Debian's openssh-server (apt-get install openssh-server)")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(start_sshd(tmp_path_factory.mktemp("sshd")))
        except SshdError as e:
            pytest.fail(str(e))
        yield server


def sshd_connection_processes(server: subprocess.Popen) -> list[int]:
    """The sshd processes serving connections: descendants of the listener named sshd."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry)] = (int(fields[1]), stat[stat.index("(") + 1:stat.rindex(")")])
    found = []
    for pid, (_, name) in parents.items():
        ancestor = parents[pid][0]
        while ancestor in parents and ancestor != server.pid:
            ancestor = parents[ancestor][0]
        if ancestor == server.pid and name == "sshd":
            found.append(pid)
    return found
