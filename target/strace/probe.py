"""Whether ptrace, PTRACE_GET_SYSCALL_INFO and seccomp filters work on this machine.

The ptrace probe forks a child that asks to be traced and stops itself; the parent takes
it to its next syscall-entry stop and asks for the syscall info. The child is always
killed and reaped before the probe returns.
"""

import ctypes
import errno
import os
import signal
import struct

from target import arch, libc

SYSCALL_INFO_SIZE = 88
OPS = {0: "none", 1: "entry", 2: "exit", 3: "seccomp"}
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
YAMA_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"
ACTIONS_AVAIL = "/proc/sys/kernel/seccomp/actions_avail"
STATUS = "/proc/self/status"


def errname(err):
    return errno.errorcode.get(err, "errno %s" % err)


def _error(e, what):
    return "%s: %s: %s" % (errname(e.errno), what, os.strerror(e.errno))


def read_int(path):
    """An integer from a /proc file, or None when the file does not exist."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        return None


# --- ptrace ---------------------------------------------------------------------------

def _child(parent):
    """In the forked child: os-level calls only, and never return."""
    code = 0
    try:
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            code = 254
        else:
            libc.ptrace(libc.PTRACE_TRACEME)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.getppid()
    except OSError as e:
        code = e.errno if e.errno and e.errno < 254 else 253
    except BaseException:
        code = 255
    finally:
        os._exit(code)


class _Child:
    """The probe child's pid and whether it has been reaped (after that its pid may
    belong to someone else and must never be signalled)."""

    def __init__(self, pid):
        self.pid = pid
        self.reaped = False

    def wait(self):
        _, status = os.waitpid(self.pid, 0)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.reaped = True
        return status

    def reap(self):
        if self.reaped:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while not self.reaped:
            try:
                self.wait()
            except ChildProcessError:
                self.reaped = True


def _stop_name(status):
    if os.WIFEXITED(status):
        return "exited with status %d" % os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    return "stopped by signal 0x%x" % os.WSTOPSIG(status)


def syscall_info(pid):
    """PTRACE_GET_SYSCALL_INFO at the current stop: {"size", "op", "arch", "nr"}."""
    buf = ctypes.create_string_buffer(SYSCALL_INFO_SIZE)
    size = libc.ptrace(libc.PTRACE_GET_SYSCALL_INFO, pid, SYSCALL_INFO_SIZE, buf)
    raw = buf.raw
    op = raw[0]
    (audit,) = struct.unpack_from("=I", raw, 4)
    info = {"size": size, "op": OPS.get(op, op), "arch": arch.audit_arch_name(audit)}
    if op in (1, 3) and size >= 32:
        info["nr"] = struct.unpack_from("=Q", raw, 24)[0]
    return info


def _set_options(pid, result):
    options = libc.PTRACE_O_TRACESYSGOOD | libc.PTRACE_O_EXITKILL
    try:
        libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0, options)
        result["exitkill"] = True
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: a kernel older than 3.8 lacks EXITKILL
            raise
        libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0, libc.PTRACE_O_TRACESYSGOOD)
        result["exitkill"] = False


def _trace(child, result):
    status = child.wait()
    if os.WIFEXITED(status) and 0 < os.WEXITSTATUS(status) < 253:
        code = os.WEXITSTATUS(status)
        result["error"] = "%s: PTRACE_TRACEME: %s" % (errname(code), os.strerror(code))
        return
    if not (os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP):
        result["error"] = "probe child %s before its first stop" % _stop_name(status)
        return
    _set_options(child.pid, result)
    libc.ptrace(libc.PTRACE_SYSCALL, child.pid, 0, 0)
    status = child.wait()
    if not (os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP | 0x80):
        result["error"] = "no syscall stop: probe child %s" % _stop_name(status)
        return
    result["allowed"] = True
    try:
        result["syscall_info"] = syscall_info(child.pid)
        result["get_syscall_info"] = True
    except OSError as e:
        if e.errno not in (errno.EIO, errno.EINVAL):
            raise
        result["syscall_info"] = {"error": _error(e, "PTRACE_GET_SYSCALL_INFO (Linux >= 5.3)")}


def ptrace_probe():
    """{"allowed", "error", "get_syscall_info", "syscall_info", "exitkill",
    "yama_ptrace_scope"}: whether this process may trace a child it forked."""
    result = {"allowed": False, "error": None, "get_syscall_info": False,
              "yama_ptrace_scope": read_int(YAMA_SCOPE)}
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(parent)
    child = _Child(pid)
    try:
        _trace(child, result)
    except OSError as e:
        result["error"] = _error(e, "ptrace")
    finally:
        child.reap()
    return result


# --- seccomp --------------------------------------------------------------------------

def proc_status(path=STATUS):
    """The Seccomp and Seccomp_filters lines of /proc/self/status (None when absent)."""
    fields = {"Seccomp": None, "Seccomp_filters": None}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] = int(value.strip())
    return fields


def actions_avail(path=ACTIONS_AVAIL):
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return None


def seccomp_probe(arch_name=None):
    """{"supported", "mode", "status", "actions_avail", "syscall_nr", "ret_trace", ...}"""
    result = {"supported": False, "mode": None}
    try:
        result["mode"] = SECCOMP_MODES.get(libc.prctl(libc.PR_GET_SECCOMP), "unknown")
        result["supported"] = True
    except OSError as e:  # EINVAL: kernel built without CONFIG_SECCOMP
        result["prctl_error"] = _error(e, "prctl(PR_GET_SECCOMP)")
    result["status"] = proc_status()
    result["actions_avail"] = actions_avail()
    result["syscall_nr"] = result["ret_trace"] = None
    try:
        arch_name = arch_name or arch.interpreter_arch()
    except (OSError, ValueError) as e:
        result["ret_trace_error"] = "architecture unknown: %s" % e
        return result
    nr = result["syscall_nr"] = arch.SECCOMP_SYSCALL.get(arch_name)
    if nr is None:
        result["ret_trace_error"] = "no seccomp syscall number known for %s" % arch_name
        return result
    try:
        libc.seccomp_action_avail(nr, libc.SECCOMP_RET_TRACE)
        result["ret_trace"] = True
    except OSError as e:
        # EOPNOTSUPP: action unknown; EINVAL: no GET_ACTION_AVAIL (< 4.14);
        # ENOSYS: no seccomp syscall (CONFIG_SECCOMP off, or < 3.17)
        result["ret_trace"] = False
        result["ret_trace_error"] = _error(e, "seccomp(SECCOMP_GET_ACTION_AVAIL, RET_TRACE)")
    return result
