"""Fault injection (-e inject=, -e fault=): a syscall is not run when its number is replaced
at the entry stop (by -1, or by a harmless %pure syscall), and the tracee sees the error or
value we write into its return register at the exit stop.

How the number is replaced depends on the kernel: x86 and riscv take the register set back
(PTRACE_SETREGSET), arm64 has NT_ARM_SYSTEM_CALL (compat tasks too), 32-bit arm kernels
PTRACE_SET_SYSCALL.
"""

import ctypes
import struct

from target import libc
from target.arch.abi import ABIS
from target.strace import regs

NT_ARM_SYSTEM_CALL = 0x404
PTRACE_SET_SYSCALL = 23


def _write(pid, note, data):
    buf = ctypes.create_string_buffer(data, len(data))
    iov = regs._Iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    libc.ptrace(libc.PTRACE_SETREGSET, pid, note, ctypes.byref(iov))


def _patch(pid, kernel_arch, field, value):
    """Rewrite one register of the NT_PRSTATUS set: field is a regs.Layout field name."""
    raw = regs.read_regs(pid)
    layout = regs._layout(len(raw), kernel_arch)
    word = ABIS[layout.abi].word
    data = bytearray(raw)
    struct.pack_into("<Q" if word == 8 else "<I", data, getattr(layout, field) * word,
                     value & ((1 << (8 * word)) - 1))
    _write(pid, libc.NT_PRSTATUS, bytes(data))


def set_syscall(pid, kernel_arch, nr):
    """At a syscall-entry (or seccomp) stop: make the kernel run syscall nr (-1: none)."""
    if kernel_arch == "aarch64":
        _write(pid, NT_ARM_SYSTEM_CALL, struct.pack("<i", nr))
    elif kernel_arch == "arm":
        libc.ptrace(PTRACE_SET_SYSCALL, pid, 0, nr & 0xFFFFFFFF)
    else:
        _patch(pid, kernel_arch, "nr", nr)


def set_return(pid, kernel_arch, value):
    """At a syscall-exit stop: the value the tracee gets back (-errno for an error)."""
    _patch(pid, kernel_arch, "retval", value)
