"""The SSH transport: the Transport interface over paramiko (commands on channels, files over SFTP).

Commands run as `cd <workdir>; exec <argv quoted with shlex.join>` through the login shell, so a
board runs them in its workdir, exactly like LocalTransport. Output streams live to the sinks.

Host keys are verified, never trusted blindly: a key pinned in the profile (`host_key`) must match
exactly; without a pin, known_hosts decides. An unknown key is refused unless trust_new_host_key
is set, which appends it to known_hosts; a mismatching key is always refused. (fabric's
Connection is not used: it installs AutoAddPolicy on every client it makes.)
"""

from __future__ import annotations

import base64
import os
import posixpath
import secrets
import shlex
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import paramiko
from paramiko.ssh_exception import NoValidConnectionsError

from host.errors import BoardtraceError, ConnectionLost
from host.profiles import Board, display_path
from host.transport import DOWNLOAD_CHUNK, Completed, Transport, resume_offset

KNOWN_HOSTS = "~/.ssh/known_hosts"
SSH_CONFIG = "~/.ssh/config"
KEEPALIVE = 15  # seconds between keepalive packets on an idle connection
# paramiko's messages when the banner or key exchange outlasts the timeout (it has no types for them)
_HANDSHAKE_TIMEOUTS = ("Error reading SSH protocol banner", "No existing session")


@dataclass(frozen=True)
class Endpoint:
    """One SSH server on the way to the board: a jump hop or the board itself."""
    host: str
    port: int
    user: str | None
    keys: tuple[str, ...]

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class _HostKeyRefused(paramiko.SSHException):
    """Raised by the missing-host-key policy: the server offered a key known_hosts lacks."""

    def __init__(self, key: paramiko.PKey):
        super().__init__(key.get_name())
        self.key = key


class _UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuses an unknown host key, or appends it to known_hosts when trusting new keys."""

    def __init__(self, known_hosts: Path, trust_new: bool):
        self.known_hosts, self.trust_new = known_hosts, trust_new

    def missing_host_key(self, client, hostname, key):
        if not self.trust_new:
            raise _HostKeyRefused(key)
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.known_hosts.open("a", encoding="ascii") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SshTransport(Transport):
    """A board reached over SSH (directly, through jump hosts, or via an ~/.ssh/config alias)."""

    def __init__(self, board: Board, *, known_hosts: str | Path = KNOWN_HOSTS,
                 trust_new_host_key: bool = False, ssh_config: str | Path = SSH_CONFIG):
        super().__init__(board)
        if board.transport.kind != "ssh":
            raise BoardtraceError(f"board {board.name}: not an SSH board")
        self.profile = board.transport
        self.known_hosts = Path(os.path.expanduser(known_hosts))
        self.trust_new_host_key = trust_new_host_key
        self.ssh_config = Path(os.path.expanduser(ssh_config))
        self._clients: list[paramiko.SSHClient] = []  # jump hops first, the board last
        self._sftp: paramiko.SFTPClient | None = None

    # -- commands ---------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None,
            stdout: BinaryIO | None = None, stderr: BinaryIO | None = None,
            timeout: float | None = None) -> Completed:
        channel = self._open_session()
        try:
            channel.exec_command(self._command(argv))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._dropped(argv[0], e) from None
        remote = _PidReader(channel.recv_stderr)
        out, err = _Pump(channel.recv, stdout), _Pump(remote, stderr)
        threading.Thread(target=_feed, args=(channel, stdin), daemon=True).start()
        try:
            finished = channel.status_event.wait(timeout)
        except KeyboardInterrupt:
            self._signal(remote, "INT")  # the agent undoes its tracefs changes on SIGINT
            channel.status_event.wait()
            raise
        if not finished:
            self._signal(remote, "KILL")
            channel.close()
            raise BoardtraceError(f"{self.board.name}: {argv[0]} did not finish within {timeout} s")
        code = channel.recv_exit_status()
        if code == -1 and not channel.get_transport().is_active():
            raise self._dropped(argv[0])
        return Completed(code, out.join(), err.join())

    def _dropped(self, what: str, error: Exception | None = None) -> BoardtraceError:
        """ConnectionLost when the connection is gone, else the error as one line."""
        transport = self._clients[-1].get_transport() if self._clients else None
        if transport is None or not transport.is_active():
            return self._lost(f" while {what} ran")
        return BoardtraceError(f"board {self.board.name}: cannot run {what}: {error}")

    def _lost(self, when: str = "") -> ConnectionLost:
        return ConnectionLost(f"board {self.board.name}: the SSH connection to {self._board_endpoint()} "
                              f"dropped{when}")

    def _command(self, argv: Sequence[str]) -> str:
        """The shell line: report the pid (exec keeps it) on stderr, enter the workdir, run argv."""
        workdir = shlex.quote(self.board.workdir)
        return (f"echo $$ >&2; cd {workdir} 2>/dev/null || {{ mkdir -p {workdir} && cd {workdir}; }} 2>/dev/null; "
                f"exec {shlex.join(argv)}")

    def _signal(self, remote: _PidReader, name: str) -> None:
        """Signal a running command through a second session (sshd refuses signal requests for
        root logins, which skip privilege separation, and dropbear ignores them)."""
        if remote.pid is None:
            return
        sudo = ["sudo", "-n"] if self.board.sudo else []   # the command may run as root
        try:
            self.run([*sudo, "kill", f"-{name}", str(remote.pid)], timeout=self.profile.connect_timeout)
        except BoardtraceError:
            pass  # the connection is gone, and the command with it

    def _open_session(self) -> paramiko.Channel:
        transport = self._client().get_transport()
        assert transport is not None
        try:
            return transport.open_session(timeout=self.profile.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if not transport.is_active():
                raise self._lost() from None
            raise BoardtraceError(f"board {self.board.name}: cannot open an SSH session on "
                                  f"{self._board_endpoint()}: {e}") from None

    # -- files ------------------------------------------------------------------------------

    def put(self, local: Path, remote: str) -> None:
        sftp = self._sftp_client()
        dest = self._remote_path(remote)
        part = f"{dest}.part-{secrets.token_hex(4)}"
        try:
            _makedirs(sftp, posixpath.dirname(dest))
            sftp.put(str(local), part)
            sftp.chmod(part, 0o755)
            sftp.posix_rename(part, dest)
        except OSError as e:
            _remove_quietly(sftp, part)
            raise BoardtraceError(f"board {self.board.name}: cannot upload {local} to {dest}: "
                                  f"{e.strerror or e}") from None

    def get(self, remote: str, local: Path) -> None:
        source = self._remote_path(remote)
        try:
            self._sftp_client().get(source, str(local))
        except OSError as e:
            raise BoardtraceError(f"board {self.board.name}: cannot download {source}: "
                                  f"{e.strerror or e}") from None

    def download(self, remote, local, progress=None):
        source = self._remote_path(remote)
        sftp = self._sftp_client()
        try:
            total = sftp.stat(source).st_size or 0
            with sftp.open(source, "rb") as src, local.open("ab") as dst:
                done = resume_offset(dst, total)
                src.seek(done)
                src.prefetch(total)  # pipelined reads from the current position
                while done < total and (chunk := src.read(min(DOWNLOAD_CHUNK, total - done))):
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except OSError as e:
            raise BoardtraceError(f"board {self.board.name}: cannot download {source}: "
                                  f"{e.strerror or e}") from None
        except (paramiko.SSHException, EOFError) as e:
            raise ConnectionLost(f"board {self.board.name}: the SSH connection dropped while "
                                  f"downloading {source} ({e})") from None

    def _remote_path(self, remote: str) -> str:
        """Relative paths are in the workdir, "~/x" in the login's home (SFTP's own start)."""
        if remote.startswith("~/"):
            return remote[2:]
        return posixpath.join(self.board.workdir, remote)

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client().open_sftp()
            except (paramiko.SSHException, OSError) as e:
                raise BoardtraceError(f"board {self.board.name}: no SFTP on {self._board_endpoint()} "
                                      f"({e}); enable the sftp subsystem in the board's sshd") from None
        return self._sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        for client in reversed(self._clients):
            client.close()
        self._clients.clear()

    # -- connecting -------------------------------------------------------------------------

    def _client(self) -> paramiko.SSHClient:
        """The connected client for the board, connecting through the jump hosts on first use."""
        if self._clients and self._clients[-1].get_transport().is_active():
            return self._clients[-1]
        self.close()
        board, hops = self._route()
        for hop in hops:
            self._clients.append(self._connect(hop, self._tunnel(hop), pinned=None, what="jump host"))
        self._clients.append(self._connect(board, self._tunnel(board), pinned=self.profile.host_key,
                                           what="host"))
        return self._clients[-1]

    def _route(self) -> tuple[Endpoint, list[Endpoint]]:
        """The board's endpoint and its jump hops, from the profile and its ssh_config alias."""
        p = self.profile
        config = self._config_entry()
        keys = (p.key,) if p.key else tuple(config.get("identityfile", ()))
        board = Endpoint(host=config.get("hostname", p.host), port=int(config.get("port", p.port)),
                         user=p.user or config.get("user"),
                         keys=tuple(os.path.expanduser(k) for k in keys))
        jump = p.jump or config.get("proxyjump")
        hops = [] if not jump or jump == "none" else [_hop(h, board.keys) for h in jump.split(",")]
        return board, hops

    def _config_entry(self) -> dict:
        if not self.profile.ssh_config:
            return {}
        if not self.ssh_config.is_file():
            raise BoardtraceError(f"board {self.board.name}: ssh_config alias {self.profile.ssh_config!r} "
                                  f"given but {self.ssh_config} does not exist")
        entry = paramiko.SSHConfig.from_path(str(self.ssh_config)).lookup(self.profile.ssh_config)
        return dict(entry)

    def _tunnel(self, target: Endpoint) -> paramiko.Channel | None:
        """A channel to target through the last connected hop (None: connect directly)."""
        if not self._clients:
            return None
        transport = self._clients[-1].get_transport()
        try:
            return transport.open_channel("direct-tcpip", (target.host, target.port), ("127.0.0.1", 0),
                                          timeout=self.profile.connect_timeout)
        except (paramiko.SSHException, OSError) as e:
            self.close()
            raise BoardtraceError(f"board {self.board.name}: the jump host cannot reach {target} ({e}); "
                                  f"check `jump:` and `host:` in {self._file()}") from None

    def _connect(self, target: Endpoint, sock: paramiko.Channel | None, pinned: str | None,
                 what: str) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if pinned:
            key_type, key = _pinned_key(self.board, pinned)
            client.get_host_keys().add(target.known_hosts_name, key_type, key)
        elif self.known_hosts.is_file():
            self._load_known_hosts(client)
        client.set_missing_host_key_policy(_UnknownHostKey(self.known_hosts, self.trust_new_host_key))
        t = self.profile.connect_timeout
        try:
            client.connect(target.host, target.port, username=target.user,
                           key_filename=list(target.keys) or None, sock=sock, timeout=t,
                           banner_timeout=t, auth_timeout=t, channel_timeout=t)
        except Exception as e:
            client.close()
            self.close()
            message = self._explain(e, target, what, pinned)
            if message is None:
                raise
            raise BoardtraceError(message) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE)
        return client

    def _load_known_hosts(self, client: paramiko.SSHClient) -> None:
        try:
            client.load_system_host_keys(str(self.known_hosts))  # read only: never rewritten
        except (OSError, paramiko.hostkeys.InvalidHostKey) as e:
            line = e.line if isinstance(e, paramiko.hostkeys.InvalidHostKey) else e.strerror
            raise BoardtraceError(f"board {self.board.name}: cannot read {self.known_hosts}: "
                                  f"{line!r}") from None

    def _explain(self, e: Exception, target: Endpoint, what: str, pinned: str | None) -> str | None:
        """One line for a failed connection, or None for a failure that is a bug."""
        where = f"board {self.board.name}: {what} {target}"
        file = self._file()
        t = self.profile.connect_timeout
        if isinstance(e, _HostKeyRefused):
            return (f"{where} offered an unknown host key {_describe(e.key)} (not in {self.known_hosts}); "
                    f"check it on the board (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then pin it "
                    f"as transport.host_key in {file} or rerun with --trust-new-host-key")
        if isinstance(e, paramiko.BadHostKeyException):
            source = f"the key pinned in {file}" if pinned else f"{self.known_hosts}"
            return (f"{where} offered host key {_describe(e.key)}, which does not match "
                    f"{_describe(e.expected_key)} from {source}; refused (the board may have been "
                    f"reinstalled, or someone is in between): verify the new key, then update "
                    f"{'transport.host_key' if pinned else 'the known_hosts entry'}")
        if isinstance(e, paramiko.AuthenticationException):
            keys = ", ".join(target.keys) or "ssh-agent and the default keys in ~/.ssh"
            user = target.user or "the local user name"
            return (f"{where} refused authentication as {user} with {keys}; check `user:` and `key:` "
                    f"in {file}, and that the public key is in the board's ~/.ssh/authorized_keys")
        if isinstance(e, NoValidConnectionsError):
            return (f"{where} refused the connection; is sshd running there, and are `host:` and "
                    f"`port:` right in {file}?")
        if isinstance(e, socket.gaierror):
            return f"{where}: cannot resolve the host name ({e.strerror}); check `host:` in {file}"
        if isinstance(e, (socket.timeout, TimeoutError)):
            return (f"{where} did not answer within {t:g} s; is it up and reachable? "
                    f"(`connect_timeout:` in {file})")
        if isinstance(e, paramiko.SSHException) and str(e).startswith(_HANDSHAKE_TIMEOUTS):
            return (f"{where} did not complete the SSH handshake within {t:g} s (a slow board, or "
                    f"not an SSH server); raise `connect_timeout:` in {file}")
        if isinstance(e, (paramiko.SSHException, OSError, EOFError)):
            return f"{where}: SSH connection failed: {e}"
        return None

    def _board_endpoint(self) -> Endpoint:
        return self._route()[0]

    def _file(self) -> str:
        return display_path(self.board.path)


# -- helpers ----------------------------------------------------------------------------------

def _hop(text: str, keys: tuple[str, ...]) -> Endpoint:
    """A ProxyJump hop "[user@]host[:port]" ("[v6addr]:port" for IPv6)."""
    user, _, rest = text.strip().rpartition("@")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.partition(":")
    return Endpoint(host=host, port=int(port or 22), user=user or None, keys=keys)


def _pinned_key(board: Board, line: str) -> tuple[str, paramiko.PKey]:
    """The profile's pinned "ssh-ed25519 AAAA... [comment]" as (type, key)."""
    key_type, blob = line.split()[:2]
    try:
        return key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    except (ValueError, paramiko.SSHException) as e:
        raise BoardtraceError(f"{display_path(board.path)}: transport.host_key: not a usable "
                              f"public key ({e})") from None


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _feed(channel: paramiko.Channel, data: bytes | None) -> None:
    try:
        if data:
            channel.sendall(data)
        channel.shutdown_write()
    except (paramiko.SSHException, OSError, EOFError):
        pass  # the command exited without reading all of its input


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    if not path or path in ("/", "."):
        return
    try:
        sftp.stat(path)
    except FileNotFoundError:
        _makedirs(sftp, posixpath.dirname(path))
        sftp.mkdir(path)


def _remove_quietly(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.remove(path)
    except OSError:
        pass


class _PidReader:
    """Reads a command's stderr, taking off the first line: the remote pid the shell echoed."""

    def __init__(self, read: Callable[[int], bytes]):
        self.read, self.pid, self.head, self.done = read, None, b"", False

    def __call__(self, size: int) -> bytes:
        while not self.done:
            chunk = self.read(size)
            if not chunk:
                self.done = True
                return b""
            line, newline, rest = (self.head + chunk).partition(b"\n")
            if not newline:
                self.head = line
                continue
            self.pid, self.done = int(line) if line.isdigit() else None, True
            if rest:
                return rest
        return self.read(size)


class _Pump:
    """Copies one of a channel's streams to a sink as data arrives, or collects it."""

    def __init__(self, read: Callable[[int], bytes], sink: BinaryIO | None):
        self.read, self.sink, self.chunks = read, sink, []
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        while chunk := self.read(65536):
            if self.sink is None:
                self.chunks.append(chunk)
            else:
                self.sink.write(chunk)
                self.sink.flush()

    def join(self) -> bytes:
        self.thread.join()
        return b"".join(self.chunks)
