"""Test helpers for the decoder: a minimal single-process tracer that prints lines with
target.strace.decode, the real strace run on the same program, and line normalisation.

The tracer follows no forks and handles only what the decode corpus does: syscall stops
(PTRACE_GET_SYSCALL_INFO) and signal-delivery stops, which it prints as strace does and
delivers.
"""

import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess

from target import libc
from target.arch import abi as abis
from target.strace import decode
from target.strace.memory import Memory

STRACE = shutil.which("strace")
GCC = shutil.which("gcc")
PROGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs")
INFO_SIZE = 88


def compile_prog(name, outdir):
    exe = os.path.join(outdir, name)
    subprocess.run([GCC, "-O0", "-o", exe, os.path.join(PROGS, name + ".c"), "-lpthread"],
                   check=True)
    return exe


def line_of(call):
    body = decode.entry_text(call) + decode.exit_text(call)
    body = body.ljust(40) if len(body) < 40 else body + " "
    return body + decode.return_text(call)


def _syscall_info(pid):
    buf = ctypes.create_string_buffer(INFO_SIZE)
    libc.ptrace(libc.PTRACE_GET_SYSCALL_INFO, pid, INFO_SIZE, buf)
    raw = buf.raw
    op = raw[0]
    arch, = struct.unpack_from("<I", raw, 4)
    sp, = struct.unpack_from("<Q", raw, 16)
    if op == 1:
        return op, arch, sp, struct.unpack_from("<7Q", raw, 24)
    rval, is_error = struct.unpack_from("<qB", raw, 24)
    return op, arch, sp, (rval, is_error)


def trace(argv, cwd, opts, env=None, calls=None):
    """Run argv under our decoder; return its lines. calls, when a list, receives the
    decoded Call objects."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.closerange(3, 1 << 16)
            libc.ptrace(libc.PTRACE_TRACEME)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execve(argv[0], argv, env if env is not None else os.environ)
        finally:
            os._exit(127)
    lines = []
    mem = Memory(pid)

    def too_slow(signum, frame):
        raise TimeoutError("the traced program did not finish within 60 s")
    old_alarm = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(60)   # a hung tracee fails the test instead of the whole run
    try:
        os.waitpid(pid, 0)
        libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0,
                    libc.PTRACE_O_TRACESYSGOOD | libc.PTRACE_O_EXITKILL |
                    libc.PTRACE_O_TRACEEXEC)
        call = None
        deliver = 0
        while True:
            libc.ptrace(libc.PTRACE_SYSCALL, pid, 0, deliver)
            deliver = 0
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            sig = os.WSTOPSIG(status)
            if status >> 16:  # the exec event stop: the process has a new memory
                mem.close()
                mem = Memory(pid)
                continue
            if sig != signal.SIGTRAP | 0x80:
                raw = libc.ptrace_getsiginfo(pid)
                lines.append("--- %s ---" % decode.siginfo_text(raw, abis.ABIS["x86_64"]))
                deliver = sig
                continue
            op, arch, sp, values = _syscall_info(pid)
            if op == 1:
                abi = abis.by_audit_arch(arch)
                call = decode.Call(pid, abi, values[0], values[1:])
                call.sp = sp
                decode.decode_entry(call, mem, opts)
                if call.name in ("exit", "exit_group"):
                    lines.append(line_of(call))
                    call = None
            elif op == 2 and call is not None:
                decode.decode_exit(call, mem, opts, values[0], values[1])
                lines.append(line_of(call))
                if calls is not None:
                    calls.append(call)
                call = None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        mem.close()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return lines


def strace(argv, cwd, flags, env=None):
    """The real strace's lines for argv (no -f)."""
    out = os.path.join(cwd, "strace.out")
    subprocess.run([STRACE, "-qq", "-o", out] + flags + argv, cwd=cwd, env=env, check=False,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with open(out) as f:
        lines = f.read().splitlines()
    os.unlink(out)
    return lines


def after_marker(lines, marker):
    """The lines after the first one starting with marker (the corpus's start write)."""
    for i, line in enumerate(lines):
        if line.startswith(marker):
            return lines[i:]
    raise AssertionError("marker %r not found in %d lines" % (marker, len(lines)))


ADDR = re.compile(r"0x[0-9a-f]{6,}")
PORT = re.compile(r"htons\((\d{4,})\)")
SOCKET = re.compile(r"(socket|pipe):\[\d+\]")
# calls whose numbers change from run to run: times, usage, random ids
VOLATILE = re.compile(r"^(clock_gettime|gettimeofday|time|getrusage|--- SIGCHLD|"
                      r"sysinfo|getsockname|getpeername|accept4?|connect|getrandom|f?statfs)\b")
DIGITS = re.compile(r"\d+|\\x[0-9a-f]{2}")
# the column strace pads to depends on the masked addresses' lengths
PADDING = re.compile(r" +(?== [-?0-9])")


# with -v: inode numbers and file times of the files the corpus creates
VERBOSE_VOLATILE = re.compile(r"^(stat|lstat|fstat|newfstatat|getdents64|statx)\(")


# calls whose arguments or result hold pids (futex: pthread_join waits on the thread's tid);
# elsewhere a pid's digits are some other value (mprotect(..., 4096, ...) when a pid is 4096)
PID_ARGS = re.compile(r"^(?:<\.\.\. )?(kill|tkill|tgkill|rt_sigqueueinfo|rt_tgsigqueueinfo|wait4|"
                      r"waitid|setpgid|getpgid|getsid|getpriority|setpriority|prlimit64|"
                      r"pidfd_open|ptrace|futex|sched_\w+)\b")
PID_RESULT = re.compile(r"^(?:<\.\.\. )?(getpid|getppid|gettid|getpgid|getpgrp|getsid|setsid|"
                        r"clone|clone3|fork|vfork|set_tid_address|wait4|waitid)\b")


def mask_pids(line, labels):
    """Each pid (a key of labels) replaced by its label where a pid stands: pid= and
    clone3's parent_tid=[] fields, pid-taking arguments and pid results."""
    for pid, label in labels.items():
        line = re.sub(r"(?<=pid=)%s\b|(?<=tid=\[)%s\b" % (pid, pid), label, line)
        if PID_ARGS.match(line):
            line = re.sub(r"(?<=[(\s])%s(?=[,)\]}])" % pid, label, line)
        if PID_RESULT.match(line):
            line = re.sub(r"(?<== )%s$" % pid, label, line)
    return line


def normalise(lines, verbose=False):
    """Mask what differs between two runs: addresses, pids, ports, inode numbers, times."""
    pids = {}
    for line in lines:
        m = re.match(r"^(getpid|getppid|gettid|clone|set_tid_address)\(.*= (\d+)$", line)
        if m:
            pids[m.group(2)] = "PID"
    out = []
    for line in lines:
        line = ADDR.sub("0xADDR", line)
        line = PADDING.sub(" ", line)
        line = PORT.sub("htons(PORT)", line)
        line = SOCKET.sub(r"\1:[INODE]", line)
        line = mask_pids(line, pids)
        if VOLATILE.match(line) or verbose and VERBOSE_VOLATILE.match(line):
            line = DIGITS.sub("N", line)
        out.append(line)
    return out
