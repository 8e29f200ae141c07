"""The seccomp-bpf filter: decisions compared with the filter the real strace builds for the
same -e trace= (dumped by `strace -d --seccomp-bpf`, run by one BPF interpreter), and the
filter installed in real processes, without a tracer (RET_TRACE then fails the syscall with
ENOSYS) and under a tracer that counts its PTRACE_EVENT_SECCOMP stops."""

import errno
import os
import re
import shutil
import signal
import struct
import subprocess

import pytest

from target import libc
from target.arch import abi as abis
from target.strace import filters, probe, seccomp

X86_64 = abis.ABIS["x86_64"]
I386 = abis.ABIS["i386"]
NATIVE = abis.native()
on_x86_64 = pytest.mark.skipif(getattr(NATIVE, "name", None) != "x86_64",
                               reason="compares with strace's x86_64 filter")
needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="the reference strace is not installed (apt-get install strace)")
needs_ret_trace = pytest.mark.skipif(
    "trace" not in (probe.actions_avail() or []),
    reason="this kernel has no seccomp filters with SECCOMP_RET_TRACE "
           "(/proc/sys/kernel/seccomp/actions_avail lacks trace: CONFIG_SECCOMP_FILTER)")

CLASSES = ["%file", "%process", "%net", "%network", "%signal", "%ipc", "%desc", "%memory",
           "%creds", "%stat", "%lstat", "%fstat", "%%stat", "%statfs", "%fstatfs",
           "%%statfs", "%clock", "%pure"]
EXPRESSIONS = CLASSES + ["none", "openat", "!%file", "getppid,getpid", "/^sched_", "file",
                         "?nosuch,59,%clock"]


# --- a classic BPF interpreter for seccomp programs -----------------------------------------

def unpack(program):
    return [seccomp.INSN.unpack_from(program, i) for i in range(0, len(program), 8)]


def run_bpf(insns, arch, nr):
    """The SECCOMP_RET_* action of insns for seccomp_data {nr, arch}."""
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    a = x = pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            a = data[k]
        elif code == 0x00:
            a = k
        elif code == 0x54:
            a &= k
        elif code == 0x74:
            a >>= k
        elif code == 0x6C:
            a = (a << x) & 0xFFFFFFFF
        elif code == 0x07:
            x = a
        elif code == 0x87:
            a = x
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return k
        else:
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf


STRACE_OPS = {"BPF_JEQ": 0x15, "BPF_JGE": 0x35, "BPF_JSET": 0x45, "BPF_JA": 0x05,
              "BPF_AND": 0x54, "BPF_RSH": 0x74, "BPF_LSH": 0x6C, "BPF_TAX": 0x07,
              "BPF_TXA": 0x87, "BPF_LDWIMM": 0x00}
RETURNS = {"SECCOMP_RET_ALLOW": libc.SECCOMP_RET_ALLOW, "SECCOMP_RET_TRACE": libc.SECCOMP_RET_TRACE}


def strace_filter(expression):
    """The filter real strace installs for -e trace=expression, from its -d dump."""
    run = subprocess.run(["strace", "-f", "--seccomp-bpf", "-d", "-e", "trace=" + expression,
                          "-o", "/dev/null", "true"], stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=30)
    assert run.returncode == 0, run.stderr
    if "seccomp filter enabled" not in run.stderr:
        pytest.skip("strace did not enable its seccomp filter here")
    insns = []
    for line in run.stderr.splitlines():
        match = re.match(r"strace: (STMT|JUMP)\((\w+)(?:, (.*))?\)$", line)
        if not match:
            continue
        op, args = match.group(2), [a.strip() for a in (match.group(3) or "").split(",") if a]
        if op == "BPF_LDWABS":
            insns.append((0x20, 0, 0, 4 if args[0] == "data->arch" else 0))
        elif op == "BPF_RET":
            insns.append((0x06, 0, 0, RETURNS[args[0]]))
        elif op == "BPF_JA":
            insns.append((0x05, 0, 0, int(args[0])))
        elif op in ("BPF_JEQ", "BPF_JGE", "BPF_JSET"):
            insns.append((STRACE_OPS[op], int(args[0]), int(args[1]), int(args[2], 0)))
        else:
            insns.append((STRACE_OPS[op], 0, 0, 0 if args == ["X"] else int(args[0], 0) if args else 0))
    return insns


def ours(expression, abi=X86_64):
    return unpack(seccomp.build_filter(abi, filters.parse(["trace=" + expression]).traced_numbers(abi)))


# --- the program ----------------------------------------------------------------------------

def test_layout_and_limits():
    for abi in abis.ABIS.values():
        every_other = set(sorted(abi.names)[::2])
        insns = unpack(seccomp.build_filter(abi, every_other))
        assert len(insns) < seccomp.MAX_INSNS
        assert all(jt <= 255 and jf <= 255 for _, jt, jf, _ in insns)
        assert insns[:3] == [(0x20, 0, 0, 4), (0x15, 1, 0, abi.audit_arch),
                             (0x06, 0, 0, libc.SECCOMP_RET_TRACE)]
        assert insns[-1] == (0x06, 0, 0, libc.SECCOMP_RET_ALLOW)
        for nr in abi.names:
            expected = nr in every_other or abi.names[nr] in seccomp.ALWAYS_TRACED
            assert (run_bpf(insns, abi.audit_arch, nr) == libc.SECCOMP_RET_TRACE) == expected
    assert unpack(seccomp.build_filter(X86_64, None)) == [(0x06, 0, 0, libc.SECCOMP_RET_TRACE)]


def test_foreign_arch_x32_and_unknown_numbers_are_traced():
    insns = ours("getppid")
    trace, allow = libc.SECCOMP_RET_TRACE, libc.SECCOMP_RET_ALLOW
    assert run_bpf(insns, X86_64.audit_arch, X86_64.numbers["getppid"]) == trace
    assert run_bpf(insns, X86_64.audit_arch, X86_64.numbers["getpid"]) == allow
    assert run_bpf(insns, X86_64.audit_arch, X86_64.numbers["execve"]) == trace
    assert run_bpf(insns, X86_64.audit_arch, 0x40000000 + X86_64.numbers["getpid"]) == trace
    assert run_bpf(insns, X86_64.audit_arch, max(X86_64.names) + 1) == trace
    for nr in range(0, 460):
        assert run_bpf(insns, I386.audit_arch, nr) == trace


@needs_strace
@on_x86_64
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_same_decisions_as_strace_filter(expression):
    """On x86_64, for every known syscall number, our filter traces exactly what strace's
    filter traces. (Numbers above the table strace traces in some filters and not in others;
    ours always traces them, so that "!SET" shows them.)"""
    theirs, mine = strace_filter(expression), ours(expression)
    differ = [nr for nr in X86_64.names
              if run_bpf(theirs, X86_64.audit_arch, nr) != run_bpf(mine, X86_64.audit_arch, nr)]
    assert [X86_64.syscall_name(nr) for nr in differ] == []


@needs_strace
@on_x86_64
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_i386_numbers_as_strace_traces_them(expression):
    """Our filter traces all of i386; the numbers -e trace= selects there are the ones
    strace's i386 block traces (socketcall and ipc aside: strace always traces them, to
    decode their subcalls)."""
    theirs = strace_filter(expression)
    left_out = {I386.numbers[name] for name in ("socketcall", "ipc", "execve", "execveat")}
    strace_set = {nr for nr in I386.names if nr not in left_out and
                  run_bpf(theirs, I386.audit_arch, nr) == libc.SECCOMP_RET_TRACE}
    mine = filters.parse(["trace=" + expression]).traced_numbers(I386) - left_out
    assert sorted(I386.names[nr] for nr in mine ^ strace_set) == []


# --- installed in real processes ------------------------------------------------------------

def fork_child(body):
    """Run body() in a forked child; its return value (0..255) is the exit code."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        finally:
            os._exit(code)
    return pid


def call(name):
    """syscall(name) through libc: the result, or -errno."""
    try:
        return libc.syscall(NATIVE.numbers[name])
    except OSError as e:
        return -e.errno


@needs_ret_trace
def test_untraced_process_gets_enosys_for_traced_syscalls():
    program = seccomp.build_filter(NATIVE, {NATIVE.numbers["getppid"]})

    def body():
        seccomp.install_filter(program)
        if call("getppid") != -errno.ENOSYS:
            return 1
        if call("getpid") != os.getpid():
            return 2
        return 0

    pid = fork_child(body)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def seccomp_stops(body):
    """Fork a traced child that runs body() after its first stop; count the seccomp stops of
    the run: [(arch name, syscall name)]."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            libc.ptrace(libc.PTRACE_TRACEME)
            os.kill(os.getpid(), signal.SIGSTOP)
            code = body()
        finally:
            os._exit(code)
    stops = []
    try:
        _, status = os.waitpid(pid, 0)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
        libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0, libc.PTRACE_O_TRACESYSGOOD |
                    libc.PTRACE_O_TRACESECCOMP | libc.PTRACE_O_EXITKILL)
        libc.ptrace(libc.PTRACE_CONT, pid, 0, 0)
        while True:
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                return stops, status
            sig = os.WSTOPSIG(status)
            if status >> 8 == signal.SIGTRAP | libc.PTRACE_EVENT_SECCOMP << 8:
                info = probe.syscall_info(pid)
                abi = abis.by_arch_name(info["arch"])
                stops.append((info["arch"], abi.syscall_name(info["nr"])))
                sig = 0
            elif sig == signal.SIGTRAP:
                sig = 0               # the SIGTRAP after a successful execve
            libc.ptrace(libc.PTRACE_CONT, pid, 0, sig)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@needs_ret_trace
def test_tracer_sees_only_the_filtered_syscalls_and_execve():
    program = seccomp.build_filter(NATIVE, {NATIVE.numbers["getppid"]})

    def body():
        seccomp.install_filter(program)
        for _ in range(1000):
            call("getpid")
        for _ in range(3):
            call("getppid")
        os.execv("/bin/true", ["true"])

    stops, status = seccomp_stops(body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert stops == [(NATIVE.name, "getppid")] * 3 + [(NATIVE.name, "execve")]


# An i386 ELF executable (for a kernel with IA32 emulation): 3 x getppid, then exit(0).
I386_CODE = bytes.fromhex(
    "be03000000"      # mov esi, 3
    "b840000000"      # loop: mov eax, 64 (getppid)
    "cd80"            # int 0x80
    "4e"              # dec esi
    "75f6"            # jnz loop
    "b801000000"      # mov eax, 1 (exit)
    "31db"            # xor ebx, ebx
    "cd80")           # int 0x80


def i386_program(path):
    base, start = 0x08048000, 52 + 32
    size = start + len(I386_CODE)
    header = (b"\x7fELF\x01\x01\x01" + b"\0" * 9 +
              struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + start, 52, 0, 0, 52, 32, 1, 0, 0, 0))
    segment = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    with open(path, "wb") as f:
        f.write(header + segment + I386_CODE)
    os.chmod(path, 0o755)
    return path


@needs_ret_trace
@on_x86_64
def test_syscalls_of_another_arch_are_all_traced(tmp_path):
    exe = i386_program(str(tmp_path / "getppid32"))
    if subprocess.run([exe]).returncode != 0:
        pytest.skip("this kernel cannot run i386 programs (CONFIG_IA32_EMULATION)")
    program = seccomp.build_filter(X86_64, {X86_64.numbers["getppid"]})

    def body():
        seccomp.install_filter(program)
        os.execv(exe, [exe])

    stops, status = seccomp_stops(body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert stops == [("x86_64", "execve")] + [("i386", "getppid")] * 3 + [("i386", "exit")]


@needs_ret_trace
def test_install_retries_with_no_new_privs():
    """Without CAP_SYS_ADMIN, PR_SET_SECCOMP needs NO_NEW_PRIVS: install_filter sets it."""
    program = seccomp.build_filter(NATIVE, {NATIVE.numbers["getppid"]})

    def body():
        if os.getuid() == 0:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
        if open("/proc/self/status").read().find("NoNewPrivs:\t0") < 0:
            return 3
        seccomp.install_filter(program)
        if "NoNewPrivs:\t1" not in open("/proc/self/status").read():
            return 4
        return 0 if call("getppid") == -errno.ENOSYS else 5

    pid = fork_child(body)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@needs_ret_trace
def test_bad_program_raises_oserror():
    def body():
        try:
            seccomp.install_filter(seccomp.pack([(0x20, 0, 0, 4)]))   # no return at the end
        except OSError as e:
            return 0 if e.errno == errno.EINVAL else 1
        return 2

    pid = fork_child(body)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
