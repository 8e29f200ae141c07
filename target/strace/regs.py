"""Syscall number, arguments and return value from the registers, for kernels without
PTRACE_GET_SYSCALL_INFO (older than 5.3).

PTRACE_GETREGSET(NT_PRSTATUS) fills the tracee's general registers in the layout of the
tracee's personality, and its returned length tells which layout that is: 216 bytes x86_64
and 68 i386 (x86 kernels), 272 aarch64 and 72 arm (arm kernels), 256 riscv64. uname is
never asked: a 32-bit userland on a 64-bit kernel is common on boards.

What registers cannot tell:
- At a syscall-exit stop, aarch64 and riscv64 have overwritten the first argument register
  with the return value and do not export the original, so args[0] is the return value
  there: keep the arguments read at the entry stop. (arm exports ORIG_r0, used for args[0].)
- An x86_64 task making an i386 syscall (int 0x80) shows x86_64 registers; only
  PTRACE_GET_SYSCALL_INFO's arch reveals it.
- arm OABI syscalls carry their number in the swi instruction, not r7: EABI only.
"""

import collections
import ctypes
import functools
import struct

from target import libc
from target.arch import interpreter_arch
from target.arch.abi import ABIS, by_arch_name

SyscallRegs = collections.namedtuple(
    "SyscallRegs", "abi nr args retval ip sp entry_marker")
SyscallRegs.__doc__ = """Registers at a syscall stop: abi (target.arch.abi.Abi), nr and args
(6 ints, unsigned, masked to the word size), retval (signed), ip, sp and entry_marker
(arm r12 / aarch64 x7: 0 at entry, 1 at exit; None where the kernel sets no marker)."""

# Where each value sits, as register indexes into the regset (all little-endian words).
Layout = collections.namedtuple("Layout", "abi count nr args retval ip sp marker")

LAYOUTS = {layout.count * ABIS[layout.abi].word: layout for layout in (
    # user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax
    #                   rip cs eflags rsp ss fs_base gs_base ds es fs gs
    Layout("x86_64", 27, nr=15, args=(14, 13, 12, 7, 9, 8), retval=10, ip=16, sp=19,
           marker=None),
    # user_regs_struct (i386): ebx ecx edx esi edi ebp eax ds es fs gs orig_eax eip cs
    #                          eflags esp ss
    Layout("i386", 17, nr=11, args=(0, 1, 2, 3, 4, 5), retval=6, ip=12, sp=15, marker=None),
    # user_pt_regs: x0..x30 sp pc pstate; the kernel sets x7 to 0 at entry, 1 at exit
    Layout("aarch64", 34, nr=8, args=(0, 1, 2, 3, 4, 5), retval=0, ip=32, sp=31, marker=7),
    # pt_regs: r0..r15 cpsr ORIG_r0; the kernel sets ip (r12) to 0 at entry, 1 at exit
    Layout("arm", 18, nr=7, args=(17, 1, 2, 3, 4, 5), retval=0, ip=15, sp=13, marker=12),
    # user_regs_struct (riscv): pc ra sp gp tp t0 t1 t2 s0 s1 a0..a7 s2..s11 t3..t6
    Layout("riscv64", 32, nr=17, args=(10, 11, 12, 13, 14, 15), retval=10, ip=0, sp=2,
           marker=None),
)}

# The layouts a tracer can meet, by the ABI of the tracer itself: the kernel of one family
# reports the 64-bit or the 32-bit layout, whichever the tracee runs.
FAMILIES = {
    "x86_64": ("x86_64", "i386"),
    "i386": ("x86_64", "i386"),
    "aarch64": ("aarch64", "arm"),
    "arm": ("aarch64", "arm"),
    "riscv64": ("riscv64",),
}

REGS_BUFFER_SIZE = 512  # more than any layout above


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _signed(value, word):
    bits = word * 8
    return value - (1 << bits) if value >> (bits - 1) else value


def _layout(size, kernel_arch):
    layout = LAYOUTS.get(size)
    if kernel_arch is None:
        allowed = tuple(ABIS)
    else:
        abi = by_arch_name(kernel_arch)
        if abi is None:
            raise ValueError("no register layouts known for %s" % kernel_arch)
        allowed = FAMILIES[abi.name]
    if layout is None or layout.abi not in allowed:
        raise ValueError("%d bytes of registers match no %s layout"
                         % (size, "/".join(allowed)))
    return layout


def decode_regs(regs_bytes, kernel_arch=None):
    """SyscallRegs from the bytes PTRACE_GETREGSET(NT_PRSTATUS) returned (exactly iov_len
    of them). kernel_arch, the tracer's own architecture, limits the layouts to its family;
    ValueError when the size matches none."""
    layout = _layout(len(regs_bytes), kernel_arch)
    abi = ABIS[layout.abi]
    regs = struct.unpack("<%d%s" % (layout.count, "Q" if abi.word == 8 else "I"), regs_bytes)
    marker = regs[layout.marker] if layout.marker is not None else None
    return SyscallRegs(abi, regs[layout.nr], tuple(regs[i] for i in layout.args),
                       _signed(regs[layout.retval], abi.word), regs[layout.ip],
                       regs[layout.sp], marker)


def read_regs(pid):
    """The raw NT_PRSTATUS register set of a stopped tracee (its length tells the layout)."""
    buf = ctypes.create_string_buffer(REGS_BUFFER_SIZE)
    iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), REGS_BUFFER_SIZE)
    libc.ptrace(libc.PTRACE_GETREGSET, pid, libc.NT_PRSTATUS, ctypes.byref(iov))
    return buf.raw[:iov.iov_len]


@functools.lru_cache(maxsize=None)
def _own_arch():
    return interpreter_arch()  # reads an ELF header: once, not at every stop


def syscall_regs(pid, kernel_arch=None):
    """SyscallRegs of tracee pid at a syscall stop. kernel_arch defaults to the running
    interpreter's architecture (the tracer's own)."""
    return decode_regs(read_regs(pid), kernel_arch or _own_arch())
