"""The register fallback: live tracees checked against PTRACE_GET_SYSCALL_INFO, and register
images of the other architectures checked against their layouts and syscall tables."""

import ctypes
import errno
import os
import shutil
import signal
import struct
import subprocess

import pytest

from tests.agent import i386

from target import libc
from target.arch import abi as abis
from target.arch import interpreter_arch
from target.strace import probe
from target.strace.regs import decode_regs, read_regs, syscall_regs

# write(1234, NULL, 5678) with three more distinctive words in the unused argument registers:
# EBADF, and every argument register shows in PTRACE_GET_SYSCALL_INFO.
WRITE_ARGS = (1234, 0, 5678, 0x1111, -2, 0x3333)

WRITE_PROGRAM = r"""
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	if (ptrace(PTRACE_TRACEME, 0, 0, 0))
		return 1;
	raise(SIGSTOP);
	syscall(SYS_write, 1234L, 0L, 5678L, 0x1111L, -2L, 0x3333L);
	return 0;
}
"""


# --- ground truth: PTRACE_GET_SYSCALL_INFO ---------------------------------------------

def kernel_info(pid):
    """(op, abi, ip, sp, nr or rval, args) from PTRACE_GET_SYSCALL_INFO at this stop."""
    buf = ctypes.create_string_buffer(probe.SYSCALL_INFO_SIZE)
    libc.ptrace(libc.PTRACE_GET_SYSCALL_INFO, pid, probe.SYSCALL_INFO_SIZE, buf)
    op, audit, ip, sp = struct.unpack_from("=B3xIQQ", buf.raw)
    if op == 2:
        (rval,) = struct.unpack_from("=q", buf.raw, 24)
        return op, abis.by_audit_arch(audit), ip, sp, rval, None
    values = struct.unpack_from("=7Q", buf.raw, 24)
    return op, abis.by_audit_arch(audit), ip, sp, values[0], values[1:]


@pytest.fixture(scope="module")
def ptrace_works():
    result = probe.ptrace_probe()
    if not result["allowed"]:
        pytest.skip("ptrace is not allowed here: %s" % result["error"])
    if not result["get_syscall_info"]:
        pytest.skip("no PTRACE_GET_SYSCALL_INFO to compare with (Linux < 5.3)")


def wait_stopped(pid):
    _, status = os.waitpid(pid, 0)
    assert os.WIFSTOPPED(status), "tracee ended: status 0x%x" % status
    return os.WSTOPSIG(status)


def next_syscall_stop(pid):
    libc.ptrace(libc.PTRACE_SYSCALL, pid, 0, 0)
    assert wait_stopped(pid) == signal.SIGTRAP | 0x80


def kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def trace_write(pid, abi):
    """From the tracee's SIGSTOP to the entry and then the exit stop of its write(1234, ...):
    the registers agree with PTRACE_GET_SYSCALL_INFO at both."""
    assert wait_stopped(pid) == signal.SIGSTOP
    libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0,
                libc.PTRACE_O_TRACESYSGOOD | libc.PTRACE_O_EXITKILL)
    write_nr = abi.numbers["write"]
    for _ in range(500):
        next_syscall_stop(pid)
        op, _, _, _, nr, args = kernel_info(pid)
        if op == 1 and nr == write_nr and args[0] == 1234:
            break
    else:
        pytest.fail("no write(1234, ...) entry stop")
    mask = (1 << (8 * abi.word)) - 1
    entry = syscall_regs(pid)
    op, kabi, ip, sp, nr, args = kernel_info(pid)
    assert entry.abi is kabi is abi
    assert (entry.nr, entry.args, entry.ip, entry.sp) == (nr, args, ip, sp)
    assert entry.args == tuple(a & mask for a in WRITE_ARGS)
    assert abi.syscall_name(entry.nr) == "write"
    assert entry.entry_marker in (None, 0)

    next_syscall_stop(pid)
    leave = syscall_regs(pid)
    op, kabi, ip, sp, rval, _ = kernel_info(pid)
    assert op == 2 and leave.abi is kabi
    assert leave.retval == rval == -errno.EBADF
    assert (leave.nr, leave.ip, leave.sp) == (entry.nr, ip, sp)
    assert leave.entry_marker in (None, 1)
    return entry


def test_live_native_tracee_agrees_with_get_syscall_info(ptrace_works):
    native = abis.native()
    if native is None:
        pytest.skip("no syscall table for %s" % interpreter_arch())
    pid = os.fork()
    if pid == 0:
        try:
            libc.ptrace(libc.PTRACE_TRACEME)
            os.kill(os.getpid(), signal.SIGSTOP)
            libc.syscall(native.numbers["write"], *WRITE_ARGS)
        except BaseException:
            pass
        os._exit(0)
    try:
        entry = trace_write(pid, native)
        assert len(read_regs(pid)) == {8: {"x86_64": 216, "aarch64": 272, "riscv64": 256},
                                       4: {"i386": 68, "arm": 72}}[native.word][native.name]
        assert entry.abi.name == native.name
    finally:
        kill_and_reap(pid)


@pytest.fixture(scope="module")
def i386_program(tmp_path_factory):
    if interpreter_arch() != "x86_64":
        pytest.skip("the i386 personality test runs on x86_64")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp_path_factory.mktemp("regs") / "write.c"
    src.write_text(WRITE_PROGRAM)
    exe = src.with_suffix("")
    try:
        done = subprocess.run(i386.CC + ["-o", str(exe), str(src)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True)
    except FileNotFoundError:
        pytest.skip(i386.MISSING)
    if done.returncode != 0:
        pytest.skip("%s: %s" % (i386.MISSING, done.stdout.strip().splitlines()[-1]))
    return str(exe)


def test_live_i386_tracee_is_told_by_its_register_size(ptrace_works, i386_program):
    pid = os.posix_spawn(i386_program, [i386_program], os.environ)
    try:
        entry = trace_write(pid, abis.ABIS["i386"])
        regs = read_regs(pid)
        assert len(regs) == 68
        assert decode_regs(regs, "x86_64").abi.name == "i386"
        assert entry.args[4] == 0xFFFFFFFE  # -2, masked to 32 bits
    finally:
        kill_and_reap(pid)


# --- recorded register images ----------------------------------------------------------

AT_FDCWD = -100
O_RDONLY_CLOEXEC = 0x80000
ENOENT = 2


def image(fmt, count, **regs):
    """A register set of count words with the given indexes (r<N>=value) set."""
    words = [0] * count
    for name, value in regs.items():
        words[int(name[1:])] = value & (0xFFFFFFFFFFFFFFFF if fmt == "Q" else 0xFFFFFFFF)
    return struct.pack("<%d%s" % (count, fmt), *words)


def test_aarch64_openat_entry_and_exit():
    common = dict(r1=0xFFFFC2A0E1F0, r2=O_RDONLY_CLOEXEC, r8=56, r31=0xFFFFC2A0E1A0,
                  r32=0xFFFF9B6E3A4C, r33=0x60001000)
    entry = decode_regs(image("Q", 34, r0=AT_FDCWD, r7=0, **common), "aarch64")
    assert entry.abi.name == "aarch64" and entry.abi.syscall_name(entry.nr) == "openat"
    assert entry.args == (0xFFFFFFFFFFFFFF9C, 0xFFFFC2A0E1F0, O_RDONLY_CLOEXEC, 0, 0, 0)
    assert (entry.ip, entry.sp, entry.entry_marker) == (0xFFFF9B6E3A4C, 0xFFFFC2A0E1A0, 0)
    leave = decode_regs(image("Q", 34, r0=3, r7=1, **common), "aarch64")
    assert (leave.retval, leave.entry_marker, leave.nr) == (3, 1, 56)
    assert leave.args[0] == 3  # x0 holds the result now: the caller keeps entry.args


def test_arm_openat_entry_and_exit_keep_arg0_in_orig_r0():
    common = dict(r1=0xBE8C0F20, r2=O_RDONLY_CLOEXEC, r7=322, r13=0xBE8C0EE8, r15=0xB6F1C6A4,
                  r16=0x60000010, r17=AT_FDCWD)
    entry = decode_regs(image("I", 18, r0=AT_FDCWD, r12=0, **common), "armhf")
    assert entry.abi.name == "arm" and entry.abi.syscall_name(entry.nr) == "openat"
    assert entry.args == (0xFFFFFF9C, 0xBE8C0F20, O_RDONLY_CLOEXEC, 0, 0, 0)
    assert (entry.ip, entry.sp, entry.entry_marker, entry.retval) == (
        0xB6F1C6A4, 0xBE8C0EE8, 0, AT_FDCWD)
    leave = decode_regs(image("I", 18, r0=-ENOENT, r12=1, **common), "aarch64")
    assert (leave.retval, leave.entry_marker) == (-ENOENT, 1)
    assert leave.args[0] == 0xFFFFFF9C


def test_arm_private_syscall_set_tls():
    regs = decode_regs(image("I", 18, r0=0xB6FFF4C0, r7=0x0F0005, r17=0xB6FFF4C0), "arm")
    assert regs.abi.syscall_name(regs.nr) == "set_tls"


def test_riscv64_openat_entry_and_exit():
    common = dict(r0=0x3FA7E2C1B6, r2=0x3FFFD8E9A0, r11=0x2AAAB0C010, r12=O_RDONLY_CLOEXEC,
                  r17=56)
    entry = decode_regs(image("Q", 32, r10=AT_FDCWD, **common), "riscv64")
    assert entry.abi.name == "riscv64" and entry.abi.syscall_name(entry.nr) == "openat"
    assert entry.args == (0xFFFFFFFFFFFFFF9C, 0x2AAAB0C010, O_RDONLY_CLOEXEC, 0, 0, 0)
    assert (entry.ip, entry.sp, entry.entry_marker) == (0x3FA7E2C1B6, 0x3FFFD8E9A0, None)
    leave = decode_regs(image("Q", 32, r10=-ENOENT, **common), "riscv64")
    assert leave.retval == -ENOENT and leave.args[0] == 0xFFFFFFFFFFFFFFFE


def test_x86_images_pick_orig_rax_and_the_argument_registers():
    # rdi rsi rdx r10 r8 r9 = 14 13 12 7 9 8; orig_rax 15, rax 10 (-ENOSYS at entry)
    regs = decode_regs(image("Q", 27, r15=257, r10=-38, r14=AT_FDCWD, r13=0x5555, r12=2,
                             r7=0o644, r9=5, r8=6, r16=0x7F00, r19=0x7FFE), "x86_64")
    assert regs.abi.syscall_name(regs.nr) == "openat"
    assert regs.args == (0xFFFFFFFFFFFFFF9C, 0x5555, 2, 0o644, 5, 6)
    assert (regs.retval, regs.ip, regs.sp) == (-38, 0x7F00, 0x7FFE)
    regs = decode_regs(image("I", 17, r11=295, r0=AT_FDCWD, r1=0x5655, r2=2, r6=-38,
                             r12=0xF7F0, r15=0xFFD0), "x86_64")
    assert regs.abi.name == "i386" and regs.abi.syscall_name(regs.nr) == "openat"
    assert regs.args[:3] == (0xFFFFFF9C, 0x5655, 2) and regs.retval == -38


@pytest.mark.parametrize("size,kernel_arch,abi", [
    (216, "x86_64", "x86_64"), (68, "x86_64", "i386"), (68, "i386", "i386"),
    (272, "aarch64", "aarch64"), (72, "aarch64", "arm"), (72, "armhf", "arm"),
    (72, "armel", "arm"), (256, "riscv64", "riscv64"), (72, None, "arm"),
])
def test_size_and_kernel_family_choose_the_layout(size, kernel_arch, abi):
    assert decode_regs(bytes(size), kernel_arch).abi.name == abi


@pytest.mark.parametrize("size,kernel_arch", [
    (72, "x86_64"), (68, "aarch64"), (272, "riscv64"), (216, "arm"), (100, None),
    (72, "mips"), (0, "x86_64"),
])
def test_sizes_outside_the_family_are_refused(size, kernel_arch):
    with pytest.raises(ValueError):
        decode_regs(bytes(size), kernel_arch)
