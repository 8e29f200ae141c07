"""Toolchains for real: installing (the no-op path only, apt never runs here), building with the
host's gcc and the Debian cross compilers, ELF arch checks, running under qemu-user and on the
local board, plain and under the agent's strace."""

import dataclasses
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import host.toolchain as toolchain_mod
from host import REPO
from host.errors import BoardtraceError
from host.profiles import ProfileError, host_arch, load_board, load_toolchain
from host.toolchain import (build_program, default_output, install_toolchain, missing_packages,
                            remote_program, run_program)
from target.arch.elf import elf_arch

INVOKE = str(Path(sys.executable).parent / "invoke")

HELLO = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    printf("boardtrace says %s\n", argc > 1 ? argv[1] : "hello");
    fflush(stdout);
    write(2, "to stderr\n", 10);
    return argc > 2 ? atoi(argv[2]) : 0;
}
"""

CROSS_BOARDS = {"aarch64-linux-gnu": "qemu-aarch64", "riscv64-linux-gnu": "qemu-riscv64",
                "arm-linux-gnueabihf": "qemu-armhf"}


@pytest.fixture
def hello(tmp_path):
    src = tmp_path / "bt_hello.c"
    src.write_text(HELLO)
    return src


@pytest.fixture
def local(tmp_path):
    return dataclasses.replace(load_board("local"), workdir=str(tmp_path / "work"))


@pytest.fixture
def no_apt(monkeypatch):
    """Fail the test if apt-get would run."""
    def refuse(*args):
        raise AssertionError(f"apt-get {' '.join(args)} ran")
    monkeypatch.setattr(toolchain_mod, "_apt_get", refuse)


def one_line(error):
    text = str(error.value)
    assert "\n" not in text and text
    return text


# -- installing -------------------------------------------------------------------------------

def test_install_is_a_no_op_when_the_packages_are_installed(no_apt):
    name = load_board("local").toolchain.name
    assert install_toolchain(name) == []


def test_install_with_qemu_user_is_a_no_op_when_it_is_installed(no_apt):
    if missing_packages(["qemu-user"]):
        pytest.skip("qemu-user is not installed: invoke toolchain.install --toolchain aarch64-linux-gnu "
                    "--with-qemu-user")
    assert install_toolchain(load_board("local").toolchain.name, with_qemu_user=True) == []


def test_missing_packages_asks_dpkg():
    assert missing_packages(["libc6", "boardtrace-no-such-package"]) == ["boardtrace-no-such-package"]


def test_an_unknown_toolchain_is_one_line(no_apt):
    with pytest.raises(ProfileError) as error:
        install_toolchain("no-such-toolchain")
    assert one_line(error).startswith("unknown toolchain 'no-such-toolchain' (known: aarch64-linux-gnu,")


def test_installing_needs_root_and_says_so(tmp_path, monkeypatch, no_apt):
    text = (REPO / "toolchains" / "aarch64-linux-gnu.yaml").read_text()
    (tmp_path / "aarch64-linux-gnu.yaml").write_text(
        text.replace("packages: [gcc-aarch64-linux-gnu,", "packages: [boardtrace-no-such-package,"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BoardtraceError) as error:
        install_toolchain("aarch64-linux-gnu", toolchains_dir=tmp_path)
    assert "boardtrace-no-such-package not installed and installing needs root" in one_line(error)


# -- building ---------------------------------------------------------------------------------

def test_build_for_the_local_board_by_default_under_build_progs(hello):
    board = load_board("local")
    out = build_program(board, hello)
    assert out == REPO / "build" / "progs" / "local" / "bt_hello" == default_output(board, hello)
    assert elf_arch(out) == host_arch() == board.arch
    result = subprocess.run([out, "local"], capture_output=True, text=True)
    assert result.stdout == "boardtrace says local\n"


def test_static_by_default(hello, tmp_path):
    out = build_program(load_board("local"), hello, tmp_path / "prog")
    assert "-static" in load_board("local").toolchain.cflags
    assert b"/ld-linux" not in out.read_bytes()  # no program interpreter: static


def cross_board(name):
    toolchain = load_toolchain(name)
    if shutil.which(toolchain.cc) is None:
        pytest.skip(f"{toolchain.packages[0]} is not installed: invoke toolchain.install --toolchain {name}")
    return load_board(CROSS_BOARDS[name])


@pytest.mark.parametrize("name", sorted(CROSS_BOARDS))
def test_cross_build_is_an_elf_for_the_boards_arch(name, hello, tmp_path):
    board = cross_board(name)
    out = build_program(board, hello, tmp_path / name / "hello")
    assert elf_arch(out) == board.arch == load_toolchain(name).arch


@pytest.mark.parametrize("name", sorted(CROSS_BOARDS))
def test_cross_built_program_runs_under_qemu_user(name, hello, tmp_path):
    board = cross_board(name)
    qemu = board.toolchain.qemu_user
    if shutil.which(qemu) is None:
        pytest.skip(f"{qemu} (qemu-user) is not installed: invoke toolchain.install --toolchain {name} "
                    f"--with-qemu-user")
    out = build_program(board, hello, tmp_path / "hello")
    result = subprocess.run([qemu, out, board.arch, "7"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (7, f"boardtrace says {board.arch}\n",
                                                                 "to stderr\n")


def test_an_arch_mismatch_is_one_line_and_leaves_no_program(hello, tmp_path):
    other = "riscv64" if host_arch() != "riscv64" else "aarch64"
    board = dataclasses.replace(load_board("local"), arch=other)  # the host's gcc builds host code
    out = tmp_path / "prog"
    with pytest.raises(BoardtraceError) as error:
        build_program(board, hello, out)
    assert f"built {host_arch()} code, the board is {other}" in one_line(error)
    assert not out.exists()


def test_a_compile_error_is_one_line(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("int main(void)\n{\n    return undeclared_thing;\n}\n")
    with pytest.raises(BoardtraceError) as error:
        build_program(load_board("local"), src, tmp_path / "broken")
    text = one_line(error)
    assert "broken.c:3:" in text and "error:" in text and "undeclared_thing" in text


def test_a_missing_compiler_says_how_to_install_it(hello, tmp_path):
    board = load_board("local")
    board = dataclasses.replace(board, toolchain=dataclasses.replace(board.toolchain, cc="boardtrace-no-such-gcc"))
    with pytest.raises(BoardtraceError) as error:
        build_program(board, hello, tmp_path / "prog")
    assert one_line(error).endswith(f"invoke toolchain.install --toolchain {board.toolchain.name}")


def test_a_missing_source_is_one_line(tmp_path):
    with pytest.raises(BoardtraceError) as error:
        build_program(load_board("local"), tmp_path / "nope.c")
    assert "nope.c not found" in one_line(error)


# -- running on the board ---------------------------------------------------------------------

def test_run_program_on_the_local_board(hello, local, capfd):
    assert run_program(local, hello, ["there", "5"]) == 5
    out, err = capfd.readouterr()
    assert out == "boardtrace says there\n"
    assert "to stderr\n" in err
    assert f"board local: {remote_program(local, hello)}\n" in err
    assert (Path(local.workdir) / "progs" / "bt_hello").is_file()


def test_run_program_under_strace_shows_its_syscalls(hello, local, capfd):
    assert run_program(local, hello, ["traced"], strace_opts=["-e", "trace=write"]) == 0
    out, err = capfd.readouterr()
    assert out == "boardtrace says traced\n"
    assert 'write(1, "boardtrace says traced\\n", 23) = 23' in " ".join(err.split())
    assert 'write(2, "to stderr\\n", 10) = 10' in " ".join(err.split())
    assert "+++ exited with 0 +++" in err


@pytest.fixture
def noexec_dir(tmp_path):
    path = tmp_path / "noexec"
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=64m", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a noexec tmpfs here: {result.stderr.strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("strace_opts", [None, ["-e", "trace=none"]])
def test_a_noexec_workdir_is_one_line(hello, local, noexec_dir, strace_opts):
    board = dataclasses.replace(local, workdir=str(noexec_dir))
    with pytest.raises(BoardtraceError) as error:
        run_program(board, hello, [], strace_opts)
    assert one_line(error) == (f"board local: workdir {noexec_dir} is mounted noexec ({noexec_dir}); set "
                               f"`workdir:` in local.yaml to a directory on an exec mount")


def test_a_failing_program_is_not_mistaken_for_noexec(hello, local, capfd):
    assert run_program(local, hello, ["x", "126"]) == 126
    assert run_program(local, hello, ["x", "1"], strace_opts=[]) == 1


# -- the tasks --------------------------------------------------------------------------------

def invoke(*args):
    return subprocess.run([INVOKE, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_invoke_run_with_strace_and_args(hello):
    result = invoke("run", "--src", str(hello), "--args", "'two words' 3", "--strace=-e trace=write")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "boardtrace says two words\n"
    assert 'write(1, "boardtrace says two words\\n"' in result.stderr


def test_invoke_run_with_capture_pulls_the_session_home(hello, tmp_path):
    result = invoke("run", "--src", str(hello), "--args", "captured 0", "--capture", "--home", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (session,) = (tmp_path / "local").iterdir()
    program = remote_program(load_board("local"), hello)
    strace = (session / "strace.txt").read_text()
    assert re.search(r'^(\d+ +)?execve\("%s", \[.*, "captured", "0"\]' % program, strace, re.M), strace
    assert 'write(1, "boardtrace says captured\\n", 25) = 25' in strace
    assert "sched_process_exec: filename=%s" % program in (session / "ftrace.txt").read_text()
    assert (session / "dmesg.txt").stat().st_size > 0 and (session / "report.html").exists()


def test_invoke_run_ftrace_needs_capture(hello):
    result = invoke("run", "--src", str(hello), "--ftrace")
    assert result.returncode == 1 and result.stderr == "error: --ftrace goes with --capture\n"


def test_invoke_build_errors_are_one_line(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("int main(void) { return }\n")
    result = invoke("build", "--src", str(src), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: board local: ")


def test_invoke_toolchain_install_unknown_toolchain():
    result = invoke("toolchain.install", "--toolchain", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown toolchain 'nope'") and result.stderr.count("\n") == 1
