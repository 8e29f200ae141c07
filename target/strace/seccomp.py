"""The seccomp-bpf filter that makes only the traced syscalls stop the tracee (--seccomp-bpf).

The program returns SECCOMP_RET_TRACE (a PTRACE_EVENT_SECCOMP stop for the tracer) for the
traced syscall numbers and SECCOMP_RET_ALLOW for the others:

    load arch; not the native AUDIT_ARCH -> TRACE   (i386 code on x86_64, arm on aarch64, ...)
    load nr
    one check per run of consecutive traced numbers, each followed by its own RET TRACE,
    so that no jump goes further than 2 instructions (BPF jumps reach at most 255)
    nr above the highest known number -> TRACE     (x32's 0x40000000 + n, unknown ones)
    RET ALLOW

Like strace, execve and execveat are always traced: the tracer must see every exec. Fork,
vfork and clone need no stop of their own: their PTRACE_EVENT_* stops come anyway.
"""

import ctypes
import errno
import struct

from target import libc

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JGT_K = 0x25
BPF_RET_K = 0x06
DATA_NR = 0          # offsetof(struct seccomp_data, nr)
DATA_ARCH = 4        # offsetof(struct seccomp_data, arch)
MAX_INSNS = 4096     # BPF_MAXINSNS
ALWAYS_TRACED = ("execve", "execveat")
INSN = struct.Struct("=HBBI")   # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def build_filter(abi, numbers):
    """The packed struct sock_filter array that traces numbers (a set of abi's syscall
    numbers; None: all of them; numbers abi has no name for are ignored), execve/execveat,
    every number above abi's highest and every syscall of another arch."""
    if numbers is None:
        return pack([(BPF_RET_K, 0, 0, libc.SECCOMP_RET_TRACE)])
    wanted = set(numbers) | {abi.numbers[name] for name in ALWAYS_TRACED if name in abi.numbers}
    highest = max(abi.names)
    program = [(BPF_LD_W_ABS, 0, 0, DATA_ARCH),
               (BPF_JEQ_K, 1, 0, abi.audit_arch),
               (BPF_RET_K, 0, 0, libc.SECCOMP_RET_TRACE),
               (BPF_LD_W_ABS, 0, 0, DATA_NR)]
    for low, high in runs(sorted(nr for nr in wanted if nr in abi.names)):
        program.extend(run_check(low, high))
    program.extend([(BPF_JGT_K, 0, 1, highest), (BPF_RET_K, 0, 0, libc.SECCOMP_RET_TRACE),
                    (BPF_RET_K, 0, 0, libc.SECCOMP_RET_ALLOW)])
    if len(program) > MAX_INSNS:
        raise ValueError("seccomp filter too long: %d instructions" % len(program))
    return pack(program)


def runs(numbers):
    """Sorted numbers as (first, last) runs of consecutive ones."""
    result = []
    for nr in numbers:
        if result and result[-1][1] == nr - 1:
            result[-1] = (result[-1][0], nr)
        else:
            result.append((nr, nr))
    return result


def run_check(low, high):
    """Instructions that return TRACE for low <= nr <= high and fall through otherwise."""
    trace = (BPF_RET_K, 0, 0, libc.SECCOMP_RET_TRACE)
    if low == high:
        return [(BPF_JEQ_K, 0, 1, low), trace]
    return [(BPF_JGE_K, 0, 2, low), (BPF_JGT_K, 1, 0, high), trace]


def pack(program):
    return b"".join(INSN.pack(*insn) for insn in program)


def install_filter(program):
    """In the tracee-to-be, once the tracer has set PTRACE_O_TRACESECCOMP: install program
    with prctl(PR_SET_SECCOMP). An unprivileged process gets EACCES unless it sets
    PR_SET_NO_NEW_PRIVS first, so that is retried with it (as strace does). Raises OSError
    when the kernel refuses (the caller traces without the filter then)."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // INSN.size, ctypes.addressof(buf))
    try:
        libc.prctl(libc.PR_SET_SECCOMP, libc.SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
    except OSError as e:
        if e.errno != errno.EACCES:
            raise
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        libc.prctl(libc.PR_SET_SECCOMP, libc.SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
