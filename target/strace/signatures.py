"""How each syscall's arguments and return value are printed, by syscall name.

An entry is (argument types, return kind). Types are names from decode.ARG_TYPES, with a
parameter after ":" (a consts table, or the index of the argument holding a length);
types starting with ">" are outputs, printed at exit with every argument after them.
Return kinds: "d" decimal, "u" unsigned, "x" hex, "o" octal, "fd" a descriptor (-y),
"?" never returns, or a function setting call.ret_value / call.ret_comment.
Syscalls whose printing depends on their own arguments have a class in CUSTOM.
"""

import struct

from target.arch.abi import ABIS
from target.strace import consts, structs
from target.strace.decode import (ARG_TYPES, Generic, RawArgs, const_value, cstring,
                                  fd_value, flags_value, int_ref, open_flags_value,
                                  path_value, read_int, signal_value)
from target.strace.values import (Array, Const, Flags, Hex, Int, NULL, Named, Ptr, Raw,
                                  Ref, Str, Struct)


def _ret_comment(fn):
    """A return kind: decimal value plus the comment fn(call) gives (or none)."""
    def ret(call):
        call.ret_value = Int(call.retval)
        call.ret_comment = fn(call)
    return ret


def _time_comment(call):
    return structs.time_comment(call.retval)


def _prctl_comment(call):
    if call.int(0) == 3:  # PR_GET_DUMPABLE
        return consts.DUMPABLE.get(call.retval)
    return None


def _personality_comment(call):
    return consts.PERSONALITY.get(call.retval & 0xFFFFFFFF)


def _poll_ret(call):
    call.ret_value = Int(call.retval)
    if call.retval == 0:
        call.ret_comment = "Timeout"
        if call.name == "ppoll" and call.args[2]:
            call.ret_comment = "Timeout"
        return
    revents = structs.poll_revents(call, call.args[0], call.uint(1))
    if revents is None:
        return
    comment = revents.text()
    if call.name in ("ppoll", "ppoll_time64") and call.args[2]:
        left = structs.timespec(call, call.args[2], call.name.endswith("64"))
        comment += ", left " + left.text()
    call.ret_comment = comment


def _select_ret(call):
    call.ret_value = Int(call.retval)
    if call.retval == 0:
        call.ret_comment = "Timeout"
        return
    nfds = call.int(0)
    parts = []
    for i, label in ((1, "in"), (2, "out"), (3, "except")):
        if call.args[i]:
            fds = structs.fd_set(call, call.args[i], nfds)
            if isinstance(fds, Array) and fds.items:
                parts.append("%s %s" % (label, fds.text()))
    tv = call.args[4]
    if tv:
        if call.name.startswith("pselect"):
            left = structs.timespec(call, tv, call.name.endswith("64"))
        else:
            left = structs.timeval(call, tv)
        parts.append("left " + left.text())
    call.ret_comment = ", ".join(parts) if parts else None


def _fcntl_ret(call):
    cmd = call.int(1)
    n = call.retval
    if cmd == 3:  # F_GETFL
        call.ret_value = Hex(n)
        call.ret_comment = "flags " + open_flags_value(call, n).text()
    elif cmd == 1:  # F_GETFD
        call.ret_value = Hex(n) if n else Int(0)
        call.ret_comment = "flags " + flags_value(consts.FD_FLAGS, n).text() if n else None
    elif cmd in (0, 1030):  # F_DUPFD, F_DUPFD_CLOEXEC
        call.ret_value = fd_value(call, n)
    elif cmd == 1025:  # F_GETLEASE
        call.ret_value = Const(consts.LEASES.get(n), n)
    elif cmd == 11:  # F_GETSIG
        call.ret_value = signal_value(n)
    elif cmd == 1034:  # F_GET_SEALS
        call.ret_value = Hex(n) if n else Int(0)
        call.ret_comment = "seals " + flags_value(consts.SEALS, n).text() if n else None
    else:
        call.ret_value = Int(n)


# Where uc_sigmask lies from the stack pointer at rt_sigreturn entry: a siginfo (128 bytes)
# then a ucontext; arm's sigreturn frame is the ucontext alone (uc_mcontext is 84 bytes).
RT_SIGRETURN_MASK = {"x86_64": 40 + 256, "aarch64": 128 + 40, "riscv64": 128 + 40,
                     "arm": 128 + 20 + 84}
SIGRETURN_MASK = {"arm": 20 + 84}


class RtSigreturn(object):
    ret = "d"

    def __init__(self, rt=True):
        self.offsets = RT_SIGRETURN_MASK if rt else SIGRETURN_MASK

    def entry(self, call):
        off = self.offsets.get(call.abi_name)
        if off is None or call.sp is None:
            return [], False
        data = call.mem.read(call.sp + off, 8)
        if data is None:
            return [Ptr(call.sp + off)], False
        return [Struct([("mask", structs.sigset_value(data))])], False

    def exit(self, call):
        return []


class Fcntl(object):
    ret = staticmethod(_fcntl_ret)

    def entry(self, call):
        cmd = call.int(1)
        table = consts.FCNTL_CMDS if call.word == 8 else consts.FCNTL_CMDS_32
        vals = [fd_value(call, call.int(0)), Const(table.get(cmd), cmd, "%#x")]
        if cmd in (1, 3, 9, 11, 16, 17, 1025, 1032, 1034, 1035, 1037):
            return vals, False
        if cmd in (0, 1030, 10, 8, 1031):
            if cmd == 10:
                vals.append(signal_value(call.int(2)))
            else:
                vals.append(Int(call.long(2)))
        elif cmd == 2:
            vals.append(flags_value(consts.FD_FLAGS, call.uint(2)))
        elif cmd == 4:
            vals.append(open_flags_value(call, call.uint(2)))
        elif cmd == 1024:
            vals.append(Const(consts.LEASES.get(call.int(2)), call.int(2)))
        elif cmd == 1026:
            vals.append(flags_value(consts.NOTIFY, call.uint(2)))
        elif cmd == 1033:
            vals.append(flags_value(consts.SEALS, call.uint(2)))
        elif cmd in (5, 6, 7, 12, 13, 14, 36, 37, 38):
            vals.append(self._flock(call, call.args[2], cmd))
        else:
            vals.append(Hex(call.args[2]) if call.args[2] else Int(0))
        return vals, False

    def _flock(self, call, addr, cmd):
        if not addr:
            return NULL
        long64 = call.word == 8 or cmd in (12, 13, 14, 36, 37, 38)
        fmt = "<hhqqi" if long64 else "<hhiii"
        size = 32 if call.word == 8 else (24 if long64 else 16)
        data = call.mem.read(addr, size)
        if data is None:
            return Ptr(addr)
        if long64 and call.word == 4:
            ltype, whence, start, length, pid = struct.unpack_from("<hhqqi", data)
        elif long64:
            ltype, whence, start, length, pid = struct.unpack_from("<hh4xqqi", data)
        else:
            ltype, whence, start, length, pid = struct.unpack_from(fmt, data)
        return Struct([("l_type", Const(consts.LOCK_TYPES.get(ltype), ltype)),
                       ("l_whence", Const(consts.SEEK.get(whence), whence)),
                       ("l_start", Int(start)), ("l_len", Int(length)), ("l_pid", Int(pid))])

    def exit(self, call):
        return []


def _ioc_text(code):
    direction = code >> 30
    names = {0: "_IOC_NONE", 1: "_IOC_WRITE", 2: "_IOC_READ", 3: "_IOC_READ|_IOC_WRITE"}
    size = (code >> 16) & 0x3FFF
    return "_IOC(%s, %#x, %#x, %s)" % (names[direction], (code >> 8) & 0xFF, code & 0xFF,
                                     "%#x" % size if size else "0")


# ioctls whose third argument points at an int (printed [n])
_IOCTL_INT_OUT = {0x541B, 0x5411, 0x540F, 0x5429, 0x80045430, 0x80045432, 0x80045439,
                  0x80045438, 0x80045440, 0x5424}
_IOCTL_INT_IN = {0x5421, 0x5452, 0x5410, 0x40045431, 0x5423}
_IOCTL_NOARG = {0x5451, 0x5450, 0x5422, 0x540C, 0x540D}


class Ioctl(object):
    ret = "d"

    def entry(self, call):
        code = call.uint(1)
        name = consts.IOCTLS.get(code)
        vals = [fd_value(call, call.int(0)), Raw(name or _ioc_text(code), name or code)]
        call.stash["code"] = code
        if code in _IOCTL_NOARG:
            return vals, False
        if code in _IOCTL_INT_IN:
            vals.append(int_ref(call, call.args[2]))
            return vals, False
        if code in (0x5402, 0x5403, 0x5404):  # TCSETS*
            vals.append(structs.termios(call, call.args[2]))
            return vals, False
        if code == 0x5414:  # TIOCSWINSZ
            vals.append(structs.winsize(call, call.args[2]))
            return vals, False
        if code in _IOCTL_INT_OUT or code in (0x5401, 0x5413):
            return vals, True
        arg = call.args[2]
        vals.append(Hex(arg) if arg else Int(0))
        return vals, False

    def exit(self, call):
        code = call.stash["code"]
        addr = call.args[2]
        if call.is_error:
            return [Ptr(addr)]
        if code == 0x5401:
            return [structs.termios(call, addr)]
        if code == 0x5413:
            return [structs.winsize(call, addr)]
        return [int_ref(call, addr)]


def _clone_args(abi_name):
    """Argument positions (flags, stack, parent_tid, child_tid, tls) per ABI: x86_64 swaps
    the last two compared with the generic order."""
    if abi_name == "x86_64":
        return 0, 1, 2, 3, 4
    return 0, 1, 2, 4, 3


class Clone(object):
    ret = "d"

    def entry(self, call):
        fi, si, pi, ci, ti = _clone_args(call.abi_name)
        flags = call.args[fi]
        sig = flags & 0xFF
        names, rest = consts.CLONE_FLAGS.split(flags & ~0xFF)
        if sig:
            names.append(signal_name_or_num(sig))
        value = Flags(names, rest, flags)
        call.stash["after"] = True
        vals = [Named("child_stack", Ptr(call.args[si])), Named("flags", value)]
        wanted = 0x100000 | 0x1000 | 0x1000000 | 0x200000 | 0x80000
        return vals, bool(flags & wanted)

    def exit(self, call):
        fi, si, pi, ci, ti = _clone_args(call.abi_name)
        flags = call.args[fi]
        vals = []
        if flags & (0x100000 | 0x1000):  # PARENT_SETTID, PIDFD
            name = "parent_tid" if flags & 0x100000 else "pidfd"
            addr = call.args[pi]
            if call.is_error or not addr:
                vals.append(Named(name, Ptr(addr)))
            else:
                vals.append(Named(name, int_ref(call, addr)
                                  if not (flags & 0x1000) else Ptr(addr)))
        # strace prints them in the ABI's argument order
        tail = []
        if flags & (0x1000000 | 0x200000):
            tail.append((ci, Named("child_tidptr", Ptr(call.args[ci]))))
        if flags & 0x80000:
            tail.append((ti, Named("tls", Ptr(call.args[ti]))))
        return vals + [value for _, value in sorted(tail, key=lambda t: t[0])]


def signal_name_or_num(n):
    from target.strace.signals import signal_name
    return signal_name(n)


class Clone3(object):
    ret = "d"

    FIELDS = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
              "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")

    def entry(self, call):
        addr, size = call.args[0], call.args[1]
        data = call.mem.read(addr, min(size, 88)) if addr and size >= 64 else None
        if data is None:
            call.stash["clone3"] = None
            return [Ptr(addr)], True
        v = dict(zip(self.FIELDS, struct.unpack_from("<%dQ" % (len(data) // 8), data)))
        call.stash["clone3"] = v
        names, rest = consts.CLONE_FLAGS.split(v["flags"])
        fields = [("flags", Flags(names, rest, v["flags"]))]
        if v["flags"] & 0x1000:
            fields.append(("pidfd", Ptr(v["pidfd"])))
        if v["flags"] & (0x1000000 | 0x200000):
            fields.append(("child_tid", Ptr(v["child_tid"])))
        if v["flags"] & 0x100000:
            fields.append(("parent_tid", Ptr(v["parent_tid"])))
        sig = v["exit_signal"]
        fields.append(("exit_signal", signal_value(sig) if sig else Int(0)))
        fields += [("stack", Ptr(v["stack"])), ("stack_size", Hex(v["stack_size"]))]
        if v["flags"] & 0x80000:
            fields.append(("tls", Ptr(v["tls"])))
        if v.get("set_tid_size"):
            fields += [("set_tid", Ptr(v["set_tid"])),
                       ("set_tid_size", Int(v["set_tid_size"]))]
        if v.get("cgroup"):
            fields.append(("cgroup", Int(v["cgroup"])))
        call.stash["after"] = True
        return [Struct(fields)], True

    def exit(self, call):
        v = call.stash.get("clone3")
        size = Int(call.args[1])
        if v is None or call.is_error:
            return [size]
        out = []
        if v["flags"] & 0x1000 and v["pidfd"]:
            n = read_int(call, v["pidfd"])
            if n is not None:
                out.append(("pidfd", Ref(fd_value(call, n))))
        if v["flags"] & 0x100000 and v["parent_tid"]:
            n = read_int(call, v["parent_tid"])
            if n is not None:
                out.append(("parent_tid", Ref(Int(n))))
        if not out:
            return [size]
        return [Raw(" => " + Struct(out).text(), dict((k, x.json()) for k, x in out)), size]


class Prctl(object):
    ret = staticmethod(_ret_comment(_prctl_comment))

    def entry(self, call):
        option = call.int(0)
        vals = [Const(consts.PRCTL.get(option), option)]
        if option in (15,):  # PR_SET_NAME
            vals.append(cstring(call, call.args[1]))
        elif option == 16:  # PR_GET_NAME
            return vals, True
        elif option in (1,):  # PR_SET_PDEATHSIG
            vals.append(signal_value(call.int(1)))
        elif option in (3, 7, 21, 27, 30, 37, 39, 42, 46, 51, 56, 58):
            pass
        elif option in (4, 8, 28, 29, 36, 38, 41, 57):
            vals.append(Int(call.args[1]))
        elif option == 22:  # PR_SET_SECCOMP
            vals.append(Const({1: "SECCOMP_MODE_STRICT", 2: "SECCOMP_MODE_FILTER"}
                              .get(call.args[1]), call.args[1]))
            if call.args[1] == 2:
                vals.append(Ptr(call.args[2]))
        elif option == 0x59616D61:  # PR_SET_PTRACER
            vals.append(Raw("PR_SET_PTRACER_ANY") if call.long(1) == -1 else Int(call.args[1]))
        elif option in (23, 24):  # PR_CAPBSET_*
            cap = call.args[1]
            name = consts.CAPABILITIES.get(cap)
            vals.append(Raw(name, name) if name else Raw("%#x /* CAP_??? */" % cap, cap))
        elif option == 2:  # PR_GET_PDEATHSIG
            return vals, True
        else:
            vals += [Hex(a) if a else Int(0) for a in call.args[1:5]]
        return vals, False

    def exit(self, call):
        option = call.int(0)
        if option == 16:
            if call.is_error:
                return [Ptr(call.args[1])]
            return [cstring(call, call.args[1])]
        if option == 2:
            if call.is_error:
                return [Ptr(call.args[1])]
            n = read_int(call, call.args[1])
            return [Ptr(call.args[1]) if n is None else Ref(signal_value(n))]
        return []


class ArchPrctl(object):
    ret = "d"

    def entry(self, call):
        code = call.int(0)
        vals = [Const(consts.ARCH_PRCTL.get(code), code, "%#x")]
        if code in (0x1003, 0x1004, 0x1011, 0x1021, 0x1022, 0x1024):
            return vals, True
        vals.append(Hex(call.args[1]) if call.args[1] else Int(0))
        return vals, False

    def exit(self, call):
        code = call.int(0)
        if code not in (0x1003, 0x1004, 0x1011, 0x1021, 0x1022, 0x1024):
            return []
        addr = call.args[1]
        if call.is_error or not addr:
            return [Ptr(addr)]
        fmt = "<Q"
        n = read_int(call, addr, fmt)
        return [Ptr(addr) if n is None else Ref(Hex(n))]


class Futex(object):
    ret = "d"

    def entry(self, call):
        op = call.int(1)
        cmd = op & 0x7F
        name = consts.FUTEX_OPS.get(cmd)
        if name is None:
            opv = Hex(op & 0xFFFFFFFF)
        else:
            text = name + ("_PRIVATE" if op & 128 else "")
            if op & 256:
                text += "|FUTEX_CLOCK_REALTIME"
            rest = op & ~(0x7F | 128 | 256)
            if rest:
                text += "|%#x" % rest
            opv = Raw(text, text)
        vals = [Ptr(call.args[0]), opv, Int(call.uint(2))]
        if cmd in (0, 9, 11):  # WAIT, WAIT_BITSET, WAIT_REQUEUE_PI
            vals.append(structs.timespec(call, call.args[3]))
            if cmd == 9:
                vals.append(_futex_bitset(call.uint(5)))
            elif cmd == 11:
                vals.append(Ptr(call.args[4]))
        elif cmd in (1, 7, 8):
            pass
        elif cmd in (6, 13):
            vals[2:] = [structs.timespec(call, call.args[3])]
        elif cmd == 10:  # WAKE_BITSET
            vals.append(_futex_bitset(call.uint(5)))
        elif cmd in (3, 4, 12):
            vals += [Int(call.uint(3)), Ptr(call.args[4])]
            if cmd != 3:
                vals.append(Int(call.uint(5)))
        elif cmd == 5:
            vals += [Int(call.uint(3)), Ptr(call.args[4]), Hex(call.uint(5))]
        return vals, False

    def exit(self, call):
        return []


def _futex_bitset(value):
    """strace names the all-ones bitset (what glibc always passes)."""
    return Const("FUTEX_BITSET_MATCH_ANY" if value == 0xFFFFFFFF else None, value, "%#x")


class Execve(object):
    ret = "d"

    def __init__(self, at=False):
        self.at = at

    def entry(self, call):
        a = 1 if self.at else 0
        vals = []
        if self.at:
            from target.strace.decode import dirfd_value
            vals.append(dirfd_value(call, call.int(0)))
        vals += [path_value(call, call.args[a]), ARG_TYPES["argv"](call, a + 1, ""),
                 ARG_TYPES["envp"](call, a + 2, "")]
        if self.at:
            vals.append(flags_value(consts.AT_FLAGS, call.uint(4)))
        return vals, False

    def exit(self, call):
        return []


class Socket(object):
    ret = "fd"

    def entry(self, call):
        family, stype, proto = call.int(0), call.uint(1), call.int(2)
        kind = consts.SOCK_TYPES.get(stype & 0xF)
        names, rest = consts.SOCK_FLAGS.split(stype & ~0xF)
        if kind:
            names.insert(0, kind)
        else:
            rest |= stype & 0xF
        typev = Flags(names, rest, stype)
        if family in (2, 10):
            protov = Const(consts.IPPROTOS.get(proto), proto)
        elif family == 16:
            protov = Const(consts.NETLINK_PROTOS.get(proto), proto)
        else:
            protov = Int(proto)
        return [const_value(consts.FAMILIES, family), typev, protov], False

    def exit(self, call):
        return []


class Socketpair(Socket):
    ret = "d"

    def entry(self, call):
        vals, _ = Socket.entry(self, call)
        return vals, True

    def exit(self, call):
        return [ARG_TYPES[">fds2"](call, 3, "")]


def _sockopt_value(call, addr, length, level, name):
    if not addr:
        return NULL
    if length == 4 or (length > 4 and level in (1, 6, 0, 41)):
        n = read_int(call, addr)
        if n is None:
            return Ptr(addr)
        if level == 1 and name == 13 and length >= 8:  # SO_LINGER
            data = call.mem.read(addr, 8)
            onoff, linger = struct.unpack("<ii", data)
            return Struct([("l_onoff", Int(onoff)), ("l_linger", Int(linger))])
        return Ref(Int(n))
    if length <= 0:
        return Ptr(addr) if length < 0 else Str(b"", False, call.hexmode)
    data = call.mem.read(addr, min(length, call.limit))
    if data is None:
        return Ptr(addr)
    return Str(data, length > call.limit, call.hexmode)


class Setsockopt(object):
    ret = "d"

    def entry(self, call):
        level, name = call.int(1), call.int(2)
        length = call.int(4)
        vals = [fd_value(call, call.int(0)), ARG_TYPES["level"](call, 1, ""),
                ARG_TYPES["optname"](call, 2, ""),
                _sockopt_value(call, call.args[3], length, level, name), Int(length)]
        return vals, False

    def exit(self, call):
        return []


class Getsockopt(object):
    ret = "d"

    def entry(self, call):
        call.stash[4] = read_int(call, call.args[4])
        return [fd_value(call, call.int(0)), ARG_TYPES["level"](call, 1, ""),
                ARG_TYPES["optname"](call, 2, "")], True

    def exit(self, call):
        if call.is_error:
            return [Ptr(call.args[3]), ARG_TYPES[">socklen"](call, 4, "")]
        length = read_int(call, call.args[4])
        value = _sockopt_value(call, call.args[3], length if length is not None else -1,
                               call.int(1), call.int(2))
        return [value, ARG_TYPES[">socklen"](call, 4, "")]


def _wait4_ret(call):
    call.ret_value = Int(call.retval)


# --- the table -----------------------------------------------------------------------------

FD, DIRFD, PATH = "fd", "dirfd", "path"

TABLE = {
    # files and descriptors
    "read": (("fd", ">rbuf", "lu"), "d"),
    "write": (("fd", "wbuf:2", "lu"), "d"),
    "pread64": (("fd", ">rbuf", "lu", "loff"), "d"),
    "pwrite64": (("fd", "wbuf:2", "lu", "loff"), "d"),
    "readv": (("fd", ">riov:2", "d"), "d"),
    "writev": (("fd", "iov:2", "d"), "d"),
    "preadv": (("fd", ">riov:2", "d", "pos"), "d"),
    "pwritev": (("fd", "iov:2", "d", "pos"), "d"),
    "preadv2": (("fd", ">riov:2", "d", "pos", "F:RWF_FLAGS"), "d"),
    "pwritev2": (("fd", "iov:2", "d", "pos", "F:RWF_FLAGS"), "d"),
    "open": (("path", "oflags", "omode:1"), "fd"),
    "openat": (("dirfd", "path", "oflags", "omode:2"), "fd"),
    "creat": (("path", "mode"), "fd"),
    "close": (("fd",), "d"),
    "close_range": (("u", "u", "F:CLOSE_RANGE_FLAGS"), "d"),
    "lseek": (("fd", "off", "C:SEEK"), "d"),
    "_llseek": (("fd", "hilo", ">loffp", "C:SEEK"), "d"),
    "dup": (("fd",), "fd"),
    "dup2": (("fd", "d"), "fd"),
    "dup3": (("fd", "d", "oflags0"), "fd"),
    "pipe": ((">fds2",), "d"),
    "pipe2": ((">fds2", "oflags0"), "d"),
    "flock": (("fd", "F:FLOCK_OPS"), "d"),
    "fsync": (("fd",), "d"),
    "fdatasync": (("fd",), "d"),
    "sync": ((), "d"),
    "syncfs": (("fd",), "d"),
    "truncate": (("path", "off"), "d"),
    "ftruncate": (("fd", "off"), "d"),
    "truncate64": (("path", "loff"), "d"),
    "ftruncate64": (("fd", "loff"), "d"),
    "fallocate": (("fd", "F:FALLOC_FLAGS", "loff", "loff"), "d"),
    "fadvise64": (("fd", "loff", "lu", "C:FADVISE"), "d"),
    "readahead": (("fd", "loff", "lu"), "d"),
    "stat": (("path", ">stat"), "d"),
    "lstat": (("path", ">stat"), "d"),
    "fstat": (("fd", ">stat"), "d"),
    "newfstatat": (("dirfd", "path", ">stat", "F:AT_FLAGS"), "d"),
    "fstatat64": (("dirfd", "path", ">stat:64", "F:AT_FLAGS"), "d"),
    "stat64": (("path", ">stat:64"), "d"),
    "lstat64": (("path", ">stat:64"), "d"),
    "fstat64": (("fd", ">stat:64"), "d"),
    "statfs": (("path", ">statfs"), "d"),
    "fstatfs": (("fd", ">statfs"), "d"),
    "access": (("path", "F:ACCESS_MODES"), "d"),
    "faccessat": (("dirfd", "path", "F:ACCESS_MODES"), "d"),
    "faccessat2": (("dirfd", "path", "F:ACCESS_MODES", "F:FACCESSAT_FLAGS"), "d"),
    "chmod": (("path", "mode"), "d"),
    "fchmod": (("fd", "mode"), "d"),
    "fchmodat": (("dirfd", "path", "mode"), "d"),
    "chown": (("path", "d", "d"), "d"),
    "lchown": (("path", "d", "d"), "d"),
    "fchown": (("fd", "d", "d"), "d"),
    "fchownat": (("dirfd", "path", "d", "d", "F:AT_FLAGS"), "d"),
    "mkdir": (("path", "mode"), "d"),
    "mkdirat": (("dirfd", "path", "mode"), "d"),
    "mknod": (("path", "umode", "x"), "d"),
    "mknodat": (("dirfd", "path", "umode", "x"), "d"),
    "rmdir": (("path",), "d"),
    "unlink": (("path",), "d"),
    "unlinkat": (("dirfd", "path", "F:UNLINKAT_FLAGS"), "d"),
    "rename": (("path", "path"), "d"),
    "renameat": (("dirfd", "path", "dirfd", "path"), "d"),
    "renameat2": (("dirfd", "path", "dirfd", "path", "F:RENAME_FLAGS"), "d"),
    "link": (("path", "path"), "d"),
    "linkat": (("dirfd", "path", "dirfd", "path", "F:AT_FLAGS"), "d"),
    "symlink": (("path", "path"), "d"),
    "symlinkat": (("path", "dirfd", "path"), "d"),
    "readlink": (("path", ">rpath", "lu"), "d"),
    "readlinkat": (("dirfd", "path", ">rpath", "lu"), "d"),
    "chdir": (("path",), "d"),
    "fchdir": (("fd",), "d"),
    "chroot": (("path",), "d"),
    "getcwd": ((">cwd", "lu"), "d"),
    "umask": (("mode",), "o"),
    "getdents64": (("fd", ">dents", "u"), "d"),
    "utimensat": (("dirfd", "path", "p", "F:AT_FLAGS"), "d"),
    "sendfile": (("fd", "fd", "p", "lu"), "d"),
    "splice": (("fd", "p", "fd", "p", "lu", "F:SPLICE_FLAGS"), "d"),
    "tee": (("fd", "fd", "lu", "F:SPLICE_FLAGS"), "d"),
    "copy_file_range": (("fd", "p", "fd", "p", "lu", "u"), "d"),
    "statx": (("dirfd", "path", "statxflags", "F:STATX_MASK", ">statx"), "d"),
    "inotify_init1": (("F:INOTIFY_INIT",), "fd"),
    "inotify_add_watch": (("fd", "path", "F:INOTIFY_MASK"), "d"),
    "inotify_rm_watch": (("fd", "d"), "d"),
    "mount": (("str", "path", "str", "F64:MOUNT_FLAGS", "p"), "d"),
    "umount2": (("path", "F:UMOUNT_FLAGS"), "d"),
    "getxattr": (("path", "str", "p", "lu"), "d"),
    "lgetxattr": (("path", "str", "p", "lu"), "d"),
    "fgetxattr": (("fd", "str", "p", "lu"), "d"),
    "setxattr": (("path", "str", "p", "lu", "F:XATTR_FLAGS"), "d"),
    "memfd_create": (("str", "F:MEMFD_FLAGS"), "fd"),
    "sync_file_range": (("fd", "loff", "loff", "u"), "d"),
    # memory
    "mmap": (("p", "lu", "prot", "mapflags", "fd", "x"), "x"),
    "mmap2": (("p", "lu", "prot", "mapflags", "fd", "pgoff"), "x"),
    "munmap": (("p", "lu"), "d"),
    "mprotect": (("p", "lu", "prot"), "d"),
    "brk": (("p",), "x"),
    "madvise": (("p", "lu", "C:MADVISE"), "d"),
    "msync": (("p", "lu", "F:MSYNC_FLAGS"), "d"),
    "mlock": (("p", "lu"), "d"),
    "munlock": (("p", "lu"), "d"),
    "mlock2": (("p", "lu", "F:MLOCK_FLAGS"), "d"),
    "mlockall": (("F:MLOCKALL_FLAGS",), "d"),
    "munlockall": ((), "d"),
    "mremap": (("p", "lu", "lu", "F:MREMAP_FLAGS", "newaddr"), "x"),
    "mincore": (("p", "lu", "p"), "d"),
    "membarrier": (("F:MEMBARRIER_CMDS", "u", "d"), "d"),
    # processes
    "getpid": ((), "d"), "getppid": ((), "d"), "gettid": ((), "d"), "getuid": ((), "d"),
    "geteuid": ((), "d"), "getgid": ((), "d"), "getegid": ((), "d"), "getpgrp": ((), "d"),
    "setsid": ((), "d"), "sched_yield": ((), "d"), "fork": ((), "d"), "vfork": ((), "d"),
    "pause": ((), "d"),
    "getpgid": (("d",), "d"),
    "getsid": (("d",), "d"),
    "setpgid": (("d", "d"), "d"),
    "setuid": (("d",), "d"), "setgid": (("d",), "d"),
    "setreuid": (("d", "d"), "d"), "setregid": (("d", "d"), "d"),
    "setresuid": (("d", "d", "d"), "d"), "setresgid": (("d", "d", "d"), "d"),
    "getresuid": ((">intp", ">intp", ">intp"), "d"),
    "getresgid": ((">intp", ">intp", ">intp"), "d"),
    "getgroups": (("d", ">gids"), "d"),
    "setgroups": (("d", "gids"), "d"),
    "exit": (("d",), "?"),
    "exit_group": (("d",), "?"),
    "wait4": (("d", ">wstatus", "F:WAIT_OPTIONS", "p"), "d"),
    "waitid": (("C:IDTYPES", "d", "p", "F:WAITID_OPTIONS", "p"), "d"),
    "kill": (("d", "sig"), "d"),
    "tkill": (("d", "sig"), "d"),
    "tgkill": (("d", "d", "sig"), "d"),
    "getrlimit": (("C:RLIMITS", ">rlim"), "d"),
    "ugetrlimit": (("C:RLIMITS", ">rlim"), "d"),
    "setrlimit": (("C:RLIMITS", "rlim"), "d"),
    "prlimit64": (("d", "C:RLIMITS", "rlim:64", ">rlim:64"), "d"),
    "getrusage": (("C:RUSAGE_WHO", ">rusage"), "d"),
    "uname": ((">uts",), "d"),
    "sysinfo": ((">sysinfo",), "d"),
    "getpriority": (("C:PRIO_WHICH", "d"), "d"),
    "setpriority": (("C:PRIO_WHICH", "d", "d"), "d"),
    "sched_getaffinity": (("d", "u", ">cpuset"), "d"),
    "sched_setaffinity": (("d", "u", "p"), "d"),
    "sched_getscheduler": (("d",), "d"),
    "getrandom": ((">hexstr", "lu", "F:GETRANDOM_FLAGS"), "d"),
    "getcpu": (("p", "p", "p"), "d"),
    "personality": (("x",), _ret_comment(_personality_comment)),
    "set_tid_address": (("p",), "d"),
    "set_robust_list": (("p", "lu"), "d"),
    "rseq": (("p", "x", "F:RSEQ_FLAGS", "x"), "d"),
    "capget": (("p", "p"), "d"),
    "capset": (("p", "p"), "d"),
    "seccomp": (("C:SECCOMP_OPS", "u", "p"), "d"),
    "ptrace": (("C:PTRACE_REQUESTS", "d", "p", "p"), "d"),
    "times": (("p",), "u"),
    "unshare": (("F:CLONE_FLAGS",), "d"),
    "setns": (("fd", "F:CLONE_FLAGS"), "d"),
    "pidfd_open": (("d", "u"), "fd"),
    "pidfd_send_signal": (("fd", "sig", "p", "u"), "d"),
    # signals
    "rt_sigaction": (("sig", "sigact:3", ">sigact:3", "lu"), "d"),
    "rt_sigprocmask": (("C:SIGPROCMASK_HOW", "sigset:3", ">sigset:3", "lu"), "d"),
    "rt_sigpending": ((">sigset:1", "lu"), "d"),
    "rt_sigsuspend": (("sigset:1", "lu"), "d"),
    "rt_sigtimedwait": (("sigset:3", "p", "ts", "lu"), "d"),
    "rt_sigqueueinfo": (("d", "sig", "siginfo"), "d"),
    "rt_tgsigqueueinfo": (("d", "d", "sig", "siginfo"), "d"),
    "sigaltstack": (("stack", ">stack"), "d"),
    "alarm": (("u",), "d"),
    "getitimer": (("C:ITIMERS", ">itv"), "d"),
    "setitimer": (("C:ITIMERS", "itv", ">itv"), "d"),
    "signalfd4": (("fd", "sigset:2", "lu", "F:SIGNALFD_FLAGS"), "fd"),
    # time
    "nanosleep": (("ts", ">rem"), "d"),
    "clock_nanosleep": (("clock", "F:TIMER_FLAGS", "ts", ">rem"), "d"),
    "clock_gettime": (("clock", ">ts"), "d"),
    "clock_settime": (("clock", "ts"), "d"),
    "clock_getres": (("clock", ">ts"), "d"),
    "clock_gettime64": (("clock", ">ts:64"), "d"),
    "clock_getres_time64": (("clock", ">ts:64"), "d"),
    "clock_nanosleep_time64": (("clock", "F:TIMER_FLAGS", "ts:64", ">rem:64"), "d"),
    "gettimeofday": ((">tv", "p"), "d"),
    "settimeofday": (("tv", "p"), "d"),
    "time": ((">ulongp",), _ret_comment(_time_comment)),
    "timerfd_create": (("clock", "F:TIMERFD_CREATE"), "fd"),
    "timerfd_settime": (("fd", "F:TIMERFD_SETTIME", "its", ">its"), "d"),
    "timerfd_gettime": (("fd", ">its"), "d"),
    "timer_create": (("clock", "p", "p"), "d"),
    "timer_delete": (("d",), "d"),
    # network
    "bind": (("fd", "sa:2", "d"), "d"),
    "connect": (("fd", "sa:2", "d"), "d"),
    "listen": (("fd", "d"), "d"),
    "accept": (("fd", ">sa:2", ">socklen"), "fd"),
    "accept4": (("fd", ">sa:2", ">socklen", "F:SOCK_FLAGS"), "fd"),
    "getsockname": (("fd", ">sa:2", ">socklen"), "d"),
    "getpeername": (("fd", ">sa:2", ">socklen"), "d"),
    "send": (("fd", "wbuf:2", "lu", "F:MSG_FLAGS"), "d"),
    "recv": (("fd", ">rbuf", "lu", "F:MSG_FLAGS"), "d"),
    "sendto": (("fd", "wbuf:2", "lu", "F:MSG_FLAGS", "sa:5", "d"), "d"),
    "recvfrom": (("fd", ">rbuf", "lu", "F:MSG_FLAGS", ">sa:5", ">socklen"), "d"),
    "sendmsg": (("fd", "msg", "F:MSG_FLAGS"), "d"),
    "recvmsg": (("fd", ">rmsg", "F:MSG_FLAGS"), "d"),
    "shutdown": (("fd", "C:SHUTDOWN"), "d"),
    # polling and events
    "poll": (("pollfd:1", "u", "d"), _poll_ret),
    "ppoll": (("pollfd:1", "u", "ts", "sigset:4", "lu"), _poll_ret),
    "select": (("d", "fdset", "fdset", "fdset", "tv"), _select_ret),
    "pselect6": (("d", "fdset", "fdset", "fdset", "ts", "p"), _select_ret),
    "epoll_create": (("d",), "fd"),
    "epoll_create1": (("F:EPOLL_CREATE",), "fd"),
    "epoll_ctl": (("fd", "C:EPOLL_CTL", "fd", "epev"), "d"),
    "epoll_wait": (("fd", ">epevs", "d", "d"), "d"),
    "epoll_pwait": (("fd", ">epevs", "d", "d", "sigset:5", "lu"), "d"),
    "eventfd": (("u",), "fd"),
    "eventfd2": (("u", "F:EVENTFD_FLAGS"), "fd"),
    # System V IPC
    "shmget": (("x", "lu", "shmflg"), "d"),
    "shmat": (("d", "p", "F:SHMAT_FLAGS"), "x"),
    "shmdt": (("p",), "d"),
    "shmctl": (("d", "C:IPC_CMDS", "p"), "d"),
    "semget": (("x", "d", "ipcflg"), "d"),
    "semctl": (("d", "d", "C:SEM_CMDS", "x"), "d"),
    "msgget": (("x", "ipcflg"), "d"),
    "msgctl": (("d", "C:MSG_CMDS", "p"), "d"),
}

CUSTOM = {
    "fcntl": Fcntl(), "fcntl64": Fcntl(), "ioctl": Ioctl(), "clone": Clone(),
    "clone3": Clone3(), "prctl": Prctl(), "arch_prctl": ArchPrctl(), "futex": Futex(),
    "execve": Execve(), "execveat": Execve(at=True), "rt_sigreturn": RtSigreturn(),
    "sigreturn": RtSigreturn(rt=False),
    "socket": Socket(), "socketpair": Socketpair(), "setsockopt": Setsockopt(),
    "getsockopt": Getsockopt(),
}


def _statx_flags(call, i, p):
    n = call.uint(i)
    sync = consts.STATX_SYNC.get(n & 0x6000)
    names, rest = consts.STATX_AT_FLAGS.split(n & ~0x6000)
    return Flags([sync] + names if sync else names, rest if sync else rest | (n & 0x6000), n)


def _ipc_flags(call, i, p, table=consts.IPC_FLAGS):
    n = call.uint(i)
    names, rest = table.split(n & ~0o777)
    return Raw("|".join(names + ["%#o" % (n & 0o777)]), {"flags": names, "mode": n & 0o777})


ARG_TYPES["statxflags"] = _statx_flags
ARG_TYPES["ipcflg"] = _ipc_flags
ARG_TYPES["shmflg"] = lambda call, i, p: _ipc_flags(call, i, p, consts.SHM_FLAGS)

# syscalls known to exist but printed with raw arguments: name -> number of arguments
RAW = {"set_tls": 1, "get_tls": 0, "cacheflush": 3, "breakpoint": 0, "io_setup": 2, "io_destroy": 1, "io_submit": 3, "io_cancel": 3, "io_getevents": 5,
       "io_uring_setup": 2, "io_uring_enter": 6, "io_uring_register": 4, "bpf": 3,
       "perf_event_open": 5, "keyctl": 5, "add_key": 5, "request_key": 4,
       "init_module": 3, "finit_module": 3, "delete_module": 2, "kexec_load": 4,
       "reboot": 4, "syslog": 3, "quotactl": 4, "fanotify_init": 2, "fanotify_mark": 5,
       "name_to_handle_at": 5, "open_by_handle_at": 3, "process_vm_readv": 6,
       "process_vm_writev": 6, "kcmp": 5, "userfaultfd": 1, "pkey_alloc": 2,
       "pkey_free": 1, "pkey_mprotect": 4, "open_tree": 3, "move_mount": 5, "fsopen": 2,
       "fsconfig": 5, "fsmount": 3, "fspick": 3, "landlock_create_ruleset": 3,
       "landlock_add_rule": 4, "landlock_restrict_self": 2, "sched_setattr": 3,
       "sched_getattr": 4, "sched_setparam": 2, "sched_getparam": 2,
       "sched_setscheduler": 3, "sched_get_priority_max": 1, "sched_get_priority_min": 1,
       "sched_rr_get_interval": 2, "get_robust_list": 3, "mq_open": 4, "mq_unlink": 1,
       "mq_timedsend": 5, "mq_timedreceive": 5, "mq_notify": 2, "mq_getsetattr": 3,
       "semop": 3, "semtimedop": 4, "msgsnd": 4, "msgrcv": 5, "acct": 1, "swapon": 2,
       "swapoff": 1, "sethostname": 2, "setdomainname": 2, "pivot_root": 2, "vhangup": 0,
       "adjtimex": 1, "clock_adjtime": 2, "timer_settime": 4, "timer_gettime": 2,
       "timer_getoverrun": 1, "migrate_pages": 4, "move_pages": 6, "mbind": 6,
       "set_mempolicy": 3, "get_mempolicy": 5, "remap_file_pages": 5, "vmsplice": 4,
       "lookup_dcookie": 3, "ioprio_set": 3, "ioprio_get": 2, "signalfd": 3,
       "epoll_pwait2": 6, "process_madvise": 5, "process_mrelease": 2,
       "futex_waitv": 5, "memfd_secret": 1, "set_mempolicy_home_node": 4,
       "cachestat": 4, "fchmodat2": 4, "map_shadow_stack": 3, "recvmmsg": 5,
       "sendmmsg": 4, "inotify_init": 0, "utime": 2, "utimes": 2,
       "futimesat": 3, "ustat": 2, "sysfs": 3, "modify_ldt": 3,
       "iopl": 1, "ioperm": 3, "uselib": 1, "setfsuid": 1, "setfsgid": 1,
       "lsetxattr": 5, "fsetxattr": 5, "listxattr": 3, "llistxattr": 3, "flistxattr": 3,
       "removexattr": 2, "lremovexattr": 2, "fremovexattr": 2, "getdents": 3,
       "restart_syscall": 0, "_sysctl": 1, "tuxcall": 3, "security": 3, "vserver": 5,
       "create_module": 2, "get_kernel_syms": 1, "query_module": 5, "nfsservctl": 3,
       "getpmsg": 5, "putpmsg": 5, "afs_syscall": 5, "epoll_ctl_old": 4,
       "epoll_wait_old": 4, "kexec_file_load": 5, "pidfd_getfd": 3, "openat2": 4,
       "mount_setattr": 5, "quotactl_fd": 4}


def lookup(name, abi_name):
    """The compiled signature for a syscall name."""
    if name in CUSTOM:
        return CUSTOM[name]
    entry = TABLE.get(name)
    if entry is not None:
        abi = ABIS.get(abi_name)
        return Generic(*entry, word=abi.word if abi else 8, abi_name=abi_name)
    if name in RAW:
        return RawArgs(RAW[name])
    return RawArgs(6)
