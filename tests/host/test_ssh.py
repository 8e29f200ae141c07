"""The SSH transport against a real OpenSSH server on loopback (tests/host/sshd.py): this machine
is the board, reached through sshd."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

import host.tools
from host.agentbuild import build_agent
from host.deploy import deploy
from host.errors import BoardtraceError, ConnectionLost
from host.ssh import SshTransport
from host.transport import open_transport
from tests.host.sshd import SshServer, ssh_board, sshd, sshd_connection_processes  # noqa: F401 (a fixture)


@pytest.fixture
def board(sshd, tmp_path):
    return ssh_board(sshd, tmp_path / "work")


@pytest.fixture
def transport(board):
    t = SshTransport(board)
    yield t
    t.close()


def fingerprint(public_key_file: Path) -> str:
    """"SHA256:..." of a public key file, as OpenSSH shows it."""
    return subprocess.run(["ssh-keygen", "-lf", str(public_key_file)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def server_fingerprint(server: SshServer) -> str:
    return fingerprint(server.key.parent / "host_ed25519.pub")


def one_line_error(transport: SshTransport) -> str:
    with pytest.raises(BoardtraceError) as info:
        transport.run(["true"])
    message = str(info.value)
    assert "\n" not in message
    return message


# -- commands ---------------------------------------------------------------------------------

def test_open_transport_gives_ssh_for_an_ssh_board(board):
    transport = open_transport(board)
    assert isinstance(transport, SshTransport)
    assert transport.run(["true"]).code == 0
    transport.close()


def test_run_captures_output_and_exit_code(transport, board):
    result = transport.run(["sh", "-c", "echo out; echo err >&2; pwd; exit 3"])
    assert result.code == 3
    assert result.stdout == f"out\n{board.workdir}\n".encode()
    assert result.stderr == b"err\n"


def test_argv_reaches_the_program_unchanged(transport):
    args = ["a b", "$HOME", "; rm -rf /", "'quoted'", "*", ""]
    result = transport.run(["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *args])
    assert json.loads(result.stdout) == args


def test_a_missing_program_is_127(transport):
    result = transport.run(["boardtrace-no-such-program"])
    assert result.code == 127 and b"not found" in result.stderr


def test_stdin_reaches_the_command(transport):
    assert transport.run(["cat"], stdin=b"hello\n").stdout == b"hello\n"
    assert transport.run(["cat"]).stdout == b""  # no stdin: end of file at once


def test_large_stdin_and_output_do_not_deadlock(transport):
    data = bytes(range(256)) * 16384  # 4 MiB, far beyond the SSH window
    assert transport.run(["cat"], stdin=data, timeout=60).stdout == data


class Recorder:
    """A sink that notes when each chunk arrived."""

    def __init__(self):
        self.chunks: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> int:
        self.chunks.append((time.monotonic(), bytes(data)))
        return len(data)

    def flush(self) -> None:
        pass


def test_output_streams_live_to_the_sinks(transport):
    out, err = Recorder(), Recorder()
    script = "echo first; echo warn >&2; sleep 1; echo second"
    result = transport.run(["sh", "-c", script], stdout=out, stderr=err)
    assert result == result.__class__(0, b"", b"")
    assert b"".join(c for _, c in out.chunks) == b"first\nsecond\n"
    assert b"".join(c for _, c in err.chunks) == b"warn\n"
    first = next(t for t, c in out.chunks if b"first" in c)
    second = next(t for t, c in out.chunks if b"second" in c)
    assert second - first > 0.7  # "first" arrived while the command still ran
    assert err.chunks[0][0] < second


def test_timeout_stops_the_remote_command(transport, board):
    marker = Path(board.workdir) / "finished"
    with pytest.raises(BoardtraceError, match=r"sh did not finish within 0.5 s"):
        transport.run(["sh", "-c", f"sleep 2; touch {marker}"], timeout=0.5)
    time.sleep(2.5)
    assert not marker.exists()
    assert transport.run(["true"]).code == 0  # the connection is still usable


# -- files ------------------------------------------------------------------------------------

def test_a_connection_that_drops_as_a_command_starts_is_connection_lost(transport, sshd, monkeypatch):
    """sshd's connection processes killed just before the exec request: one ConnectionLost
    line (the capture then says the session goes on), never paramiko's EOFError."""
    assert transport.run(["true"]).code == 0
    exec_command = paramiko.Channel.exec_command

    def cut_then_exec(channel, command):
        for pid in sshd_connection_processes(sshd.process):
            os.kill(pid, signal.SIGKILL)
        return exec_command(channel, command)
    monkeypatch.setattr(paramiko.Channel, "exec_command", cut_then_exec)
    with pytest.raises(ConnectionLost, match=r"^board \S+: the SSH connection to \S+ dropped while sleep ran$"):
        transport.run(["sleep", "5"])


def test_put_then_get_round_trip(transport, board, tmp_path):
    local = tmp_path / "agent.pyz"
    local.write_bytes(b"#!/usr/bin/env python3\n" + bytes(range(256)) * 1000)
    transport.put(local, "sub/dir/agent.pyz")
    remote = Path(board.workdir) / "sub/dir/agent.pyz"
    assert remote.read_bytes() == local.read_bytes()
    assert remote.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in remote.parent.iterdir()] == ["agent.pyz"]  # no temporary left
    local.write_bytes(b"replaced")
    transport.put(local, str(remote))  # absolute paths too; an existing file is replaced
    assert remote.read_bytes() == b"replaced"
    back = tmp_path / "back"
    transport.get("sub/dir/agent.pyz", back)
    assert back.read_bytes() == b"replaced"


def test_get_of_a_missing_file_is_one_line(transport):
    with pytest.raises(BoardtraceError, match=r"^board loopback: cannot download .*/no-such-file: "):
        transport.get("no-such-file", Path("/tmp/unused"))


# -- host keys --------------------------------------------------------------------------------

def test_a_wrong_pinned_host_key_is_refused(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", host_key=other))
    message = one_line_error(transport)
    assert message.startswith(f"board loopback: host 127.0.0.1:{sshd.port} offered host key "
                              f"ssh-ed25519 {server_fingerprint(sshd)}, which does not match "
                              f"ssh-ed25519 {fingerprint(tmp_path / 'other.pub')} from the key pinned in "
                              f"boards/local.yaml; refused")


def test_an_unknown_host_is_refused_without_known_hosts_entry(sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", host_key=None), known_hosts=known_hosts)
    message = one_line_error(transport)
    assert message.startswith(f"board loopback: host 127.0.0.1:{sshd.port} offered an unknown host key "
                              f"ssh-ed25519 {server_fingerprint(sshd)} (not in {known_hosts})")
    assert "--trust-new-host-key" in message
    assert not known_hosts.exists()


def test_a_known_hosts_entry_is_accepted(sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text()
    known_hosts.write_text(f"# other hosts\nexample.org {other}" + sshd.known_hosts_line())
    before = known_hosts.read_text()
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", host_key=None), known_hosts=known_hosts)
    assert transport.run(["true"]).code == 0
    transport.close()
    assert known_hosts.read_text() == before


def test_a_broken_known_hosts_file_is_one_line(sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n")
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", host_key=None), known_hosts=known_hosts)
    assert one_line_error(transport).startswith(f"board loopback: cannot read {known_hosts}: 'example.org ")


def test_a_mismatching_known_hosts_entry_is_refused(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {(tmp_path / 'other.pub').read_text()}")
    for trust in (False, True):  # trusting new keys never overrides a mismatch
        transport = SshTransport(ssh_board(sshd, tmp_path / "work", host_key=None), known_hosts=known_hosts,
                                 trust_new_host_key=trust)
        message = one_line_error(transport)
        assert f"offered host key ssh-ed25519 {server_fingerprint(sshd)}, which does not match" in message
        assert f"from {known_hosts}; refused" in message


def test_trust_new_host_key_adds_it_to_known_hosts(sshd, tmp_path):
    known_hosts = tmp_path / "ssh" / "known_hosts"
    board = ssh_board(sshd, tmp_path / "work", host_key=None)
    transport = SshTransport(board, known_hosts=known_hosts, trust_new_host_key=True)
    assert transport.run(["true"]).code == 0
    transport.close()
    assert known_hosts.read_text() == sshd.known_hosts_line()
    again = SshTransport(board, known_hosts=known_hosts)  # now known, without trusting new keys
    assert again.run(["true"]).code == 0
    again.close()


# -- connection failures ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_one_line(sshd, tmp_path):
    port = free_port()
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", port=port))
    assert one_line_error(transport) == (
        f"board loopback: host 127.0.0.1:{port} refused the connection; is sshd running there, "
        f"and are `host:` and `port:` right in boards/local.yaml?")


def test_a_server_without_banner_times_out_in_one_line(sshd, tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        transport = SshTransport(ssh_board(sshd, tmp_path / "work", port=port, connect_timeout=1.0))
        started = time.monotonic()
        message = one_line_error(transport)
    assert time.monotonic() - started < 5
    assert message.startswith(f"board loopback: host 127.0.0.1:{port} did not complete the SSH handshake within 1 s")


def test_a_wrong_key_is_an_authentication_error(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    transport = SshTransport(ssh_board(sshd, tmp_path / "work", key=str(tmp_path / "stranger")))
    message = one_line_error(transport)
    assert message.startswith(f"board loopback: host 127.0.0.1:{sshd.port} refused authentication as "
                              f"{sshd.user} with {tmp_path / 'stranger'}; ")


# -- routes -----------------------------------------------------------------------------------

def test_a_jump_host_leads_to_the_board(sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"  # the hop is checked against known_hosts
    known_hosts.write_text(sshd.known_hosts_line())
    board = ssh_board(sshd, tmp_path / "work", jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    transport = SshTransport(board, known_hosts=known_hosts)
    assert transport.run(["echo", "via jump"]).stdout == b"via jump\n"
    assert len(transport._clients) == 2
    transport.close()


def test_an_ssh_config_alias_supplies_the_settings(sshd, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"Host testboard\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
                      f"  IdentityFile {sshd.key}\n")
    board = ssh_board(sshd, tmp_path / "work", host="testboard", port=22, user=None, key=None,
                      ssh_config="testboard")
    transport = SshTransport(board, ssh_config=config)
    assert transport.run(["echo", "aliased"]).stdout == b"aliased\n"
    transport.close()


# -- the agent over SSH -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    return build_agent(tmp_path_factory.mktemp("build"))


def test_deploy_over_ssh_uploads_once_and_runs_the_agent(transport, board, agent):
    first = deploy(transport, agent)
    assert first.uploaded
    assert (Path(board.workdir) / f"agent-{agent.sha256}.pyz").read_bytes() == agent.path.read_bytes()
    second = deploy(transport, agent)
    assert not second.uploaded
    result = second.run(["info"])
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["python"]


def test_run_tool_streams_dmesg_through_ssh(board, monkeypatch, capfd):
    monkeypatch.setattr(host.tools, "load_board", lambda name: board)
    assert host.tools.run_tool("loopback", "dmesg", ["--level", "err"]) == 0
    out, err = capfd.readouterr()
    assert err == ""
    local = subprocess.run(["python3", "-m", "target", "dmesg", "--level", "err"], capture_output=True,
                           check=True).stdout.decode()
    assert out.splitlines()[:5] == local.splitlines()[:5]  # the same kernel log, seen through SSH


def test_deploy_board_says_what_it_did_and_shows_info(board, monkeypatch, capfd):
    monkeypatch.setattr(host.tools, "load_board", lambda name: board)
    assert host.tools.deploy_board("loopback") == 0
    out, err = capfd.readouterr()
    assert err.startswith("board loopback: uploaded agent-") and json.loads(out)["kernel"]
    assert host.tools.deploy_board("loopback") == 0
    out, err = capfd.readouterr()
    assert "already there, nothing uploaded" in err and json.loads(out)["python"]
