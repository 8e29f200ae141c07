"""The one ctypes boundary: every call into the C library goes through here.

Each wrapper raises OSError (with errno set) on failure, like the os module does.
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return result


# syslog(2) actions (linux/syslog.h)
SYSLOG_ACTION_READ_ALL = 3
SYSLOG_ACTION_READ_CLEAR = 4
SYSLOG_ACTION_CLEAR = 5
SYSLOG_ACTION_CONSOLE_OFF = 6
SYSLOG_ACTION_CONSOLE_ON = 7
SYSLOG_ACTION_CONSOLE_LEVEL = 8
SYSLOG_ACTION_SIZE_BUFFER = 10

_libc.klogctl.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_libc.klogctl.restype = ctypes.c_int


def klogctl(action, size=0):
    """Call syslog(2). Read actions return bytes; the others return the integer result."""
    if action in (SYSLOG_ACTION_READ_ALL, SYSLOG_ACTION_READ_CLEAR):
        buf = ctypes.create_string_buffer(size)
        n = _check(_libc.klogctl(action, buf, size), "syslog")
        return buf.raw[:n]
    return _check(_libc.klogctl(action, None, size), "syslog")


# ptrace(2) requests and options (linux/ptrace.h)
PTRACE_TRACEME = 0
PTRACE_PEEKDATA = 2
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACEVFORKDONE = 0x20
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128
NT_PRSTATUS = 1
WALL = 0x40000000  # __WALL for waitpid: threads (clone children) too; os does not export it
SIGINFO_SIZE = 128

_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_libc.ptrace.restype = ctypes.c_long


def ptrace(request, pid=0, addr=None, data=None):
    """Call ptrace(2); addr and data are ints, ctypes pointers or None."""
    ctypes.set_errno(0)
    result = _libc.ptrace(request, pid, addr, data)
    if result == -1 and ctypes.get_errno():
        _check(-1, "ptrace")
    return result


# The same call for the tracer's hot path: plain integers in, -1 and ctypes.get_errno() on
# failure (never for the requests it makes: only PEEK requests return -1 as data), no wrapper.
ptrace_call = ctypes.CDLL(None, use_errno=True).ptrace
ptrace_call.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
ptrace_call.restype = ctypes.c_long


def ptrace_geteventmsg(pid):
    """PTRACE_GETEVENTMSG: the new pid of a fork event, the former tid of an exec event..."""
    value = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, pid, None, ctypes.byref(value))
    return value.value


def ptrace_getsiginfo(pid):
    """PTRACE_GETSIGINFO: the raw 128-byte siginfo_t of the signal that stopped pid."""
    buf = ctypes.create_string_buffer(SIGINFO_SIZE)
    ptrace(PTRACE_GETSIGINFO, pid, None, buf)
    return buf.raw


# prctl(2) options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_SET_NO_NEW_PRIVS = 38

_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong)
_libc.prctl.restype = ctypes.c_int


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


_libc.syscall.restype = ctypes.c_long


def syscall(number, *args):
    """Call syscall(2) with integer or pointer arguments."""
    return _check(_libc.syscall(ctypes.c_long(number),
                                *[a if not isinstance(a, int) else ctypes.c_long(a)
                                  for a in args]), "syscall %d" % number)


# mount(2), umount2(2) and seccomp(2)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MNT_DETACH = 2

_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p)
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.umount2.restype = ctypes.c_int


def _fsencode(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype, flags=0, data=None):
    """Call mount(2); raises OSError with the target as filename."""
    if _libc.mount(_fsencode(source), _fsencode(target), _fsencode(fstype), flags,
                   _fsencode(data)) == -1:
        err = ctypes.get_errno()
        raise OSError(err, "mount %s: %s" % (fstype, os.strerror(err)), target)


def umount2(target, flags=0):
    """Call umount2(2); raises OSError with the target as filename."""
    if _libc.umount2(_fsencode(target), flags) == -1:
        err = ctypes.get_errno()
        raise OSError(err, "umount: %s" % os.strerror(err), target)


# seccomp(2) operations and return actions (linux/seccomp.h); the syscall number is
# per architecture: target.arch.SECCOMP_SYSCALL
SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000


def seccomp_action_avail(nr, action):
    """seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action) through syscall number nr."""
    value = ctypes.c_uint32(action)
    return syscall(nr, SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(value))


# wide-character classes in the current LC_CTYPE locale (dmesg escapes what is not printable)
_libc.iswprint.argtypes = (ctypes.c_uint,)
_libc.iswprint.restype = ctypes.c_int
_libc.iswspace.argtypes = (ctypes.c_uint,)
_libc.iswspace.restype = ctypes.c_int


def iswprint(code):
    return bool(_libc.iswprint(code))


def iswspace(code):
    return bool(_libc.iswspace(code))
