"""The local transport: real subprocesses in the board's workdir."""

import dataclasses
import io
import sys

import pytest

from host.errors import BoardtraceError
from host.profiles import load_board
from host.transport import LocalTransport, open_transport


@pytest.fixture
def transport(tmp_path):
    board = dataclasses.replace(load_board("local"), workdir=str(tmp_path / "work"))
    return open_transport(board)


def test_local_board_gets_the_local_transport(transport):
    assert isinstance(transport, LocalTransport)


def test_run_captures_output_and_exit_code_in_the_workdir(transport, tmp_path):
    result = transport.run([sys.executable, "-c",
                            "import os,sys; print(os.getcwd()); print('oops', file=sys.stderr); sys.exit(3)"])
    assert result.code == 3
    assert result.stdout.decode().strip() == str(tmp_path / "work")
    assert result.stderr == b"oops\n"


def test_run_feeds_stdin(transport):
    data = bytes(range(256)) * 4096  # larger than a pipe buffer
    result = transport.run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])"],
                           stdin=data)
    assert result.code == 0 and result.stdout == data[::-1]


def test_run_streams_to_sinks(transport):
    out, err = io.BytesIO(), io.BytesIO()
    result = transport.run([sys.executable, "-c", "import sys; print('a'); print('b', file=sys.stderr)"],
                           stdout=out, stderr=err)
    assert (result.stdout, out.getvalue(), err.getvalue()) == (b"", b"a\n", b"b\n")


def test_a_missing_program_is_exit_127(transport):
    result = transport.run(["boardtrace-no-such-program"])
    assert result.code == 127 and b"not found" in result.stderr


def test_timeout_kills_and_says_so(transport):
    with pytest.raises(BoardtraceError, match="did not finish within 0.5 s"):
        transport.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_put_and_get_copy_files(transport, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00agent\xff")
    remote = str(tmp_path / "work" / "sub" / "agent.pyz")
    transport.put(src, remote)
    back = tmp_path / "back.bin"
    transport.get(remote, back)
    assert back.read_bytes() == src.read_bytes()
    assert (tmp_path / "work" / "sub" / "agent.pyz").stat().st_mode & 0o111
