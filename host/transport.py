"""Where the agent runs: run a command with stdin, stream its output, move files.

LocalTransport runs commands as subprocesses on this machine, in the board's workdir, exactly as
a board would run them; the SSH transport implements the same interface.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from host.errors import BoardtraceError
from host.profiles import Board


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: bytes  # empty when the output was streamed to a sink
    stderr: bytes


class Transport(ABC):
    """Runs commands on a board and moves files to and from it."""

    def __init__(self, board: Board):
        self.board = board

    @abstractmethod
    def run(self, argv: Sequence[str], *, stdin: bytes | None = None,
            stdout: BinaryIO | None = None, stderr: BinaryIO | None = None,
            timeout: float | None = None) -> Completed:
        """Run argv (no shell). Output goes live to the given sinks, else it is captured.
        A missing program gives code 127, like a shell would."""

    @abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to a path on the board (made executable)."""

    @abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the board to a local path."""

    @abstractmethod
    def download(self, remote: str, local: Path, progress: Callable[[int, int], None] | None = None) -> None:
        """Append to local what the board's file has past local's current size (so an
        interrupted download resumes); progress(done, total) is called as bytes arrive."""

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    """The host itself as a board: subprocesses run in the board's workdir."""

    def __init__(self, board: Board):
        super().__init__(board)
        self.workdir = Path(os.path.expanduser(board.workdir))

    def run(self, argv, *, stdin=None, stdout=None, stderr=None, timeout=None):
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BoardtraceError(f"board {self.board.name}: workdir {self.workdir} cannot be created "
                                  f"or written ({e.strerror}); set `workdir:` in {self.board.path.name}")
        try:
            proc = subprocess.Popen(list(argv), cwd=self.workdir,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            return Completed(127, b"", f"{argv[0]}: not found\n".encode())
        out, err = _Pump(proc.stdout, stdout), _Pump(proc.stderr, stderr)
        if stdin is not None:
            threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BoardtraceError(f"{self.board.name}: {argv[0]} did not finish within {timeout} s")
        except KeyboardInterrupt:
            proc.wait()  # the child got the same SIGINT; let it finish its clean-up
            raise
        return Completed(code, out.join(), err.join())

    def put(self, local, remote):
        dest = self._path(remote)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(local, tmp)
        tmp.chmod(0o755)
        tmp.replace(dest)

    def get(self, remote, local):
        shutil.copyfile(self._path(remote), local)

    def download(self, remote, local, progress=None):
        source = self._path(remote)
        total = source.stat().st_size
        with source.open("rb") as src, local.open("ab") as dst:
            done = resume_offset(dst, total)
            src.seek(done)
            while chunk := src.read(DOWNLOAD_CHUNK):
                dst.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)

    def _path(self, remote: str) -> Path:
        return self.workdir / os.path.expanduser(remote)  # absolute remote paths stay absolute


DOWNLOAD_CHUNK = 1 << 20


def resume_offset(local: BinaryIO, total: int) -> int:
    """Where to resume a download into local (open for appending): its size, or 0 after
    emptying it when it is longer than the whole file (it was another file)."""
    done = local.tell()
    if done > total:
        local.truncate(0)
        done = 0
    return done


def _feed(pipe: BinaryIO, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except BrokenPipeError:
        pass


class _Pump:
    """Copies a child's pipe to a sink as data arrives, or collects it."""

    def __init__(self, pipe: BinaryIO, sink: BinaryIO | None):
        self.pipe, self.sink, self.chunks = pipe, sink, []
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 65536):
            if self.sink is None:
                self.chunks.append(chunk)
            else:
                self.sink.write(chunk)
                self.sink.flush()
        self.pipe.close()

    def join(self) -> bytes:
        self.thread.join()
        return b"".join(self.chunks)


def open_transport(board: Board, trust_new_host_key: bool = False) -> Transport:
    """The board's transport; trust_new_host_key: add an unknown (never a changed) host key."""
    if board.transport.kind == "local":
        return LocalTransport(board)
    if board.qemu is not None:
        from host.qemu import ensure_up
        board = ensure_up(board)  # booted when it is down
    from host.ssh import SshTransport  # paramiko loads only when a board needs it
    return SshTransport(board, trust_new_host_key=trust_new_host_key)
