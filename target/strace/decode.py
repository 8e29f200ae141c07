"""Decoding one syscall's arguments and return value, as strace 6.1 prints them.

The engine makes a Call at syscall entry, calls decode_entry() there and decode_exit() at
the exit stop; entry_text(), exit_text() and return_text() give the three pieces of the
strace line (the split is where strace splits an <unfinished ...> call), and call_json()
gives the same call as typed JSON (docs/strace-json.md). For -P, path_args() gives the
file names and descriptors a call names, at entry and without decoding it.

Arguments are decoded by the type names in target.strace.signatures; the decoders for
those types are the functions in ARG_TYPES below, and syscalls whose printing depends on
their own arguments (fcntl, ioctl, clone, ...) have a custom decoder class.
"""

import os
import struct

from target.strace import classes, consts, structs
from target.strace.quote import hexmode_of, quote_body
from target.strace.signals import (RESTART_TEXTS, errno_name, errno_text,  # noqa: F401
                                   signal_name, siginfo_json, siginfo_text)
from target.strace.values import (Addr, Array, Changed, Comment, Const, Fd, Flags, Hex, Int,
                                  NULL, Oct, Ptr, Raw, Ref, Str)

PATH_MAX = 4096


class DecodeOptions(object):
    """What changes the printing: -s, -x/-xx, -v, -y."""

    def __init__(self, string_limit=32, strings_in_hex=None, verbose=False, decode_fds=False):
        self.string_limit = string_limit
        self.strings_in_hex = strings_in_hex
        self.verbose = verbose
        self.decode_fds = decode_fds


class Call(object):
    """One syscall of one thread, from its entry to its exit."""

    __slots__ = ("pid", "abi", "abi_name", "word", "nr", "args", "name", "sig", "mem",
                 "limit", "hexmode", "verbose", "yfds", "entry_vals", "exit_vals",
                 "stash", "exited", "retval", "is_error", "ret_value", "ret_comment",
                 "sp", "opts")

    def __init__(self, pid, abi, nr, args):
        self.pid = pid
        self.abi = abi
        self.abi_name = abi.name
        self.word = abi.word
        self.nr = nr
        self.args = tuple(args)
        self.name = syscall_name(abi, nr)
        self.sig = None
        self.entry_vals = []
        self.exit_vals = []
        self.stash = {}
        self.exited = False
        self.retval = None
        self.is_error = False
        self.ret_value = None
        self.ret_comment = None
        self.sp = None  # the stack pointer at entry, when the engine knows it (rt_sigreturn)

    # argument access by C type
    def int(self, i):
        v = self.args[i] & 0xFFFFFFFF
        return v - (1 << 32) if v & 0x80000000 else v

    def uint(self, i):
        return self.args[i] & 0xFFFFFFFF

    def long(self, i):
        v = self.args[i]
        bits = 8 * self.word
        return v - (1 << bits) if v >> (bits - 1) & 1 else v


def syscall_name(abi, nr):
    try:
        name = abi.syscall_name(nr)
    except (KeyError, IndexError, ValueError):
        name = None
    return name or "syscall_%#x" % nr


# --- fds and strings -----------------------------------------------------------------------

def _escape_path(path):
    """A /proc readlink result as strace -y prints it inside <...>."""
    raw = os.fsencode(path)
    body = quote_body(raw)
    if "<" in body or ">" in body:
        body = body.replace("<", "\\74").replace(">", "\\76")
    return body


def fd_path(call, n):
    """What strace -y prints between < and > for fd n of the tracee (None if unknown)."""
    try:
        target = os.readlink("/proc/%d/fd/%d" % (call.pid, n))
    except OSError:
        return None
    return target


def fd_value(call, n):
    if not call.yfds or n < 0:
        return Fd(n)
    path = fd_path(call, n)
    if path is None:
        return Fd(n)
    return FdPath(n, path)


class FdPath(Fd):
    """An fd with its path; a deleted file prints as 3</tmp/x>(deleted)."""
    __slots__ = ()

    def text(self):
        path = self.path
        if path.endswith(" (deleted)"):
            return "%d<%s>(deleted)" % (self.n, _escape_path(path[:-10]))
        return "%d<%s>" % (self.n, _escape_path(path))


def dirfd_value(call, n):
    if n == -100:
        if call.yfds:
            try:
                cwd = os.readlink("/proc/%d/cwd" % call.pid)
            except OSError:
                return Const("AT_FDCWD", -100)
            return Raw("AT_FDCWD<%s>" % _escape_path(cwd), {"fd": "AT_FDCWD", "path": cwd})
        return Const("AT_FDCWD", -100)
    return fd_value(call, n)


def path_value(call, addr, limit=PATH_MAX):
    """A file name: never cut by -s; "..." only past PATH_MAX."""
    if not addr:
        return NULL
    got = call.mem.read_string(addr, limit)
    if got is None:
        return Ptr(addr)
    data, terminated = got
    return Str(data, not terminated, call.hexmode)


def cstring(call, addr):
    """A NUL-terminated string cut at -s."""
    if not addr:
        return NULL
    got = call.mem.read_string(addr, call.limit + 1)
    if got is None:
        return Ptr(addr)
    data, terminated = got
    if len(data) > call.limit:
        return Str(data[:call.limit], True, call.hexmode)
    return Str(data, not terminated and len(data) >= call.limit, call.hexmode)


def flags_value(table, n):
    names, rest = table.split(n)
    return Flags(names, rest, n, table.zero)


def const_value(table, n, fmt="%d"):
    return Const(table.get(n), n, fmt)


def open_flags_value(call, n):
    access = consts.OPEN_ACCESS.get(n & 3)
    names, rest = consts.open_flags(call.abi_name).split(n & ~3)
    return Flags([access] + names, rest, n)


def read_int(call, addr, fmt="<i"):
    data = call.mem.read(addr, struct.calcsize(fmt)) if addr else None
    return None if data is None else struct.unpack(fmt, data)[0]


def int_ref(call, addr, fmt="<i"):
    if not addr:
        return NULL
    n = read_int(call, addr, fmt)
    return Ptr(addr) if n is None else Ref(Int(n))


def signal_value(n):
    name = signal_name(n) if n else None
    return Const(name, n)


# --- argument types ----------------------------------------------------------------------
# Each decoder is f(call, i, param) -> Value for argument i. Types whose name starts with
# ">" are outputs: they and every argument after them are printed at exit.

def _fd(call, i, p):
    return fd_value(call, call.int(i))


def _dirfd(call, i, p):
    return dirfd_value(call, call.int(i))


def _path(call, i, p):
    return path_value(call, call.args[i])


def _str(call, i, p):
    return cstring(call, call.args[i])


def _int(call, i, p):
    return Int(call.int(i))


def _uint(call, i, p):
    return Int(call.uint(i))


def _long(call, i, p):
    return Int(call.long(i))


def _ulong(call, i, p):
    return Int(call.args[i])


def _hex(call, i, p):
    return Hex(call.args[i])


def _ptr(call, i, p):
    return Ptr(call.args[i])


def _pgoff(call, i, p):
    """mmap2's offset, in 4096-byte units: strace prints it in bytes."""
    return Hex(call.args[i] * 4096)


def _mode(call, i, p):
    return Oct(call.uint(i) & 0o7777 if p != "full" else call.uint(i))


def _umode(call, i, p):
    return structs.mode_value(call.uint(i))


def _flags(call, i, p):
    return flags_value(getattr(consts, p), call.uint(i))


def _flags64(call, i, p):
    return flags_value(getattr(consts, p), call.args[i])


def _const(call, i, p):
    return const_value(getattr(consts, p), call.int(i))


def _oflags(call, i, p):
    return open_flags_value(call, call.uint(i))


def _omode(call, i, p):
    """open's mode, printed only when the flags in argument p create a file."""
    if call.uint(int(p)) & (0o100 | 0o20000000):
        return Oct(call.uint(i) & 0o7777)
    return None


def _oflags_only(call, i, p):
    """Open flags without an access mode (pipe2, dup3, inotify_init1)."""
    return flags_value(consts.open_flags(call.abi_name), call.uint(i))


def _mremap_addr(call, i, p):
    """mremap's new address, printed only with MREMAP_FIXED."""
    return Ptr(call.args[i]) if call.uint(3) & 2 else None


def _prot(call, i, p):
    return flags_value(consts.prot_flags(call.abi_name), call.uint(i))


def _mapflags(call, i, p):
    n = call.uint(i)
    kind = consts.MAP_TYPES.get(n & 0xF)
    names, rest = consts.map_flags(call.abi_name).split(n & ~0xF)
    if kind is None:
        names, rest = consts.map_flags(call.abi_name).split(n)
        return Flags(names, rest, n)
    return Flags([kind] + names, rest, n)


def _sig(call, i, p):
    return signal_value(call.int(i))


def _off(call, i, p):
    return Int(call.long(i))


def _signed64(v):
    return v - (1 << 64) if v >> 63 else v


def _loff(call, i, p):
    """A 64-bit offset (loff_t): on 32-bit ABIs two registers, the low word first."""
    if call.word == 8:
        return Int(call.long(i))
    return Int(_signed64(call.uint(i) | call.uint(i + 1) << 32))


def _hilo(call, i, p):
    """_llseek's offset: offset_high, then offset_low."""
    return Int(_signed64(call.uint(i) << 32 | call.uint(i + 1)))


def _loffp(call, i, p):
    return int_ref(call, call.args[i], "<q")


def _wbuf(call, i, p):
    return structs.buffer(call, call.args[i], call.args[int(p)])


def _filled(fn):
    """An output of retval bytes or items: fn(call, addr, retval), or the address alone
    when the call failed."""
    def decode(call, i, p):
        if call.is_error:
            return Ptr(call.args[i])
        return fn(call, call.args[i], call.retval)
    return decode


_rbuf = _filled(structs.buffer)   # readlink's name too: strace cuts it at -s
_dents = _filled(structs.dirents64)
_epevs = _filled(structs.epoll_events)
_rmsg = _filled(structs.msghdr)


def _cwd(call, i, p):
    addr = call.args[i]
    if call.is_error or not addr:
        return Ptr(addr)
    got = call.mem.read_string(addr, min(call.retval, PATH_MAX))
    return Ptr(addr) if got is None else Str(got[0], False, call.hexmode)


def _iov(call, i, p):
    return structs.iovec_array(call, call.args[i], call.args[int(p)])


def _riov(call, i, p):
    if call.is_error:
        return Ptr(call.args[i])
    return structs.iovec_array(call, call.args[i], call.args[int(p)], call.retval)


def _ts(call, i, p):
    return structs.timespec(call, call.args[i], p == "64")


def _tv(call, i, p):
    return structs.timeval(call, call.args[i])


def _itv(call, i, p):
    return structs.itimerval(call, call.args[i])


def _its(call, i, p):
    return structs.itimerspec(call, call.args[i], p == "64")


def _out(fn):
    """An output decoder: the address alone when the call failed."""
    def decode(call, i, p):
        if call.is_error:
            return Ptr(call.args[i])
        return fn(call, i, p)
    return decode


def _rem(call, i, p):
    """nanosleep's remaining time: only meaningful when interrupted."""
    if call.is_error and -call.retval in RESTART_TEXTS:
        return structs.timespec(call, call.args[i], p == "64")
    return Ptr(call.args[i])


def _sockaddr(call, i, p):
    return structs.sockaddr(call, call.args[i], call.int(int(p)))


def _stash_socklen(call, i, p):
    call.stash[i] = read_int(call, call.args[i])


def _osockaddr(call, i, p):
    """An output sockaddr whose length is behind the pointer in argument p."""
    addr = call.args[i]
    if call.is_error or not addr:
        return Ptr(addr)
    length = read_int(call, call.args[int(p)])
    if length is None:
        return Ptr(addr)
    before = call.stash.get(int(p))
    if before is not None:
        length = min(length, before)
    return structs.sockaddr(call, addr, length)


def _socklen(call, i, p):
    addr = call.args[i]
    if not addr:
        return NULL
    after = read_int(call, addr)
    before = call.stash.get(i)
    if after is None or call.is_error:
        return Ptr(addr) if before is None else Ref(Int(before))
    if before is not None and before != after:
        return Changed(Int(before), Int(after))
    return Ref(Int(after))


def _pollfd(call, i, p):
    return structs.pollfds(call, call.args[i], call.uint(int(p)), lambda n: fd_value(call, n))


def _sigset(call, i, p):
    return structs.sigset_at(call, call.args[i], call.args[int(p)])


def _sigact(call, i, p):
    return structs.sigaction(call, call.args[i], call.args[int(p)])


def _rlim(call, i, p):
    return structs.rlimit(call, call.args[i], p == "64")


def _intp(call, i, p):
    return int_ref(call, call.args[i])


def _ulongp(call, i, p):
    addr = call.args[i]
    n = read_int(call, addr, "<Q" if call.word == 8 else "<I") if addr else None
    if n is None:
        return Ptr(addr)
    return Ref(Hex(n))


def _fds2(call, i, p):
    addr = call.args[i]
    data = call.mem.read(addr, 8) if addr and not call.is_error else None
    if data is None:
        return Ptr(addr)
    a, b = struct.unpack("<ii", data)
    return Array([fd_value(call, a), fd_value(call, b)])


def _stat(call, i, p):
    return structs.stat(call, call.args[i], p == "64")


def _statx(call, i, p):
    return structs.statx(call, call.args[i])


def _statfs(call, i, p):
    return structs.statfs(call, call.args[i], p == "64")


def _uts(call, i, p):
    return structs.utsname(call, call.args[i])


def _rusage(call, i, p):
    return structs.rusage(call, call.args[i])


def _sysinfo(call, i, p):
    return structs.sysinfo(call, call.args[i])


def _wstatus(call, i, p):
    addr = call.args[i]
    if not addr or call.is_error or call.retval == 0:
        return Ptr(addr)
    return structs.wait_status_at(call, addr)


def _stack(call, i, p):
    return structs.stack_t(call, call.args[i])


def _epev(call, i, p):
    return structs.epoll_event(call, call.args[i])


def _msg(call, i, p):
    return structs.msghdr(call, call.args[i])


def _cpuset(call, i, p):
    addr = call.args[i]
    if call.is_error or not addr:
        return Ptr(addr)
    data = call.mem.read(addr, call.retval)
    if data is None:
        return Ptr(addr)
    mask = int.from_bytes(data, "little")
    return Array([Int(b) for b in range(len(data) * 8) if mask >> b & 1], sep=" ")


def _hexstr(call, i, p):
    """Random bytes: always printed in hex (getrandom)."""
    if call.is_error:
        return Ptr(call.args[i])
    value = structs.buffer(call, call.args[i], call.retval)
    if isinstance(value, Str):
        value.hexmode = 2
    return value


def _argv(call, i, p):
    return string_array(call, call.args[i])


def _envp(call, i, p):
    addr = call.args[i]
    if call.verbose or not addr:
        return string_array(call, addr)
    count = count_pointers(call, addr)
    if count is None:
        return Ptr(addr)
    return Comment(Ptr(addr), "%d var%s" % (count, "" if count == 1 else "s"))


def _siginfo(call, i, p):
    addr = call.args[i]
    data = call.mem.read(addr, 128) if addr else None
    if data is None:
        return Ptr(addr)
    text = siginfo_text(data, call.abi)
    return Raw(text[text.index("{"):], siginfo_json(data, call.abi))


def _gids(call, i, p):
    """A gid_t array: size in argument 0, or the return value for getgroups."""
    addr = call.args[i]
    if not addr or call.is_error:
        return Ptr(addr)
    count = call.int(0)
    if call.exited and count:
        count = call.retval
    count = max(count, 0)
    shown = min(count, call.limit)
    data = call.mem.read(addr, 4 * shown)
    if data is None:
        return Ptr(addr)
    return Array([Int(g) for g in struct.unpack("<%dI" % shown, data)], more=shown < count)


def _fdset(call, i, p):
    return structs.fd_set(call, call.args[i], call.int(0), lambda n: fd_value(call, n))


def _sockopt_level(call, i, p):
    return const_value(consts.SOCK_LEVELS, call.int(i))


def _sockopt_name(call, i, p):
    table = consts.SOCKOPT_NAMES.get(call.int(i - 1))
    n = call.int(i)
    return Const(table.get(n) if table else None, n)


def _itimer(call, i, p):
    return const_value(consts.ITIMERS, call.int(i))


def _clockid(call, i, p):
    return const_value(consts.CLOCKS, call.int(i))


ARG_TYPES = {
    "fd": _fd, "dirfd": _dirfd, "path": _path, "str": _str, "d": _int, "u": _uint,
    "ld": _long, "lu": _ulong, "x": _hex, "pgoff": _pgoff, "p": _ptr, "mode": _mode, "umode": _umode,
    "F": _flags, "F64": _flags64, "omode": _omode, "newaddr": _mremap_addr, "oflags0": _oflags_only, "C": _const, "oflags": _oflags, "prot": _prot,
    "mapflags": _mapflags, "sig": _sig, "off": _off, "loff": _loff, "pos": _loff,
    "hilo": _hilo, "wbuf": _wbuf, "iov": _iov, "ts": _ts,
    "tv": _tv, "itv": _itv, "its": _its, "sa": _sockaddr, "pollfd": _pollfd,
    "sigset": _sigset, "sigact": _sigact, "rlim": _rlim, "intp": _intp, "epev": _epev,
    "msg": _msg, "argv": _argv, "envp": _envp, "stack": _stack, "fdset": _fdset, "siginfo": _siginfo, "gids": _gids, ">gids": _gids,
    "level": _sockopt_level, "optname": _sockopt_name, "clock": _clockid,
    # outputs
    ">rbuf": _rbuf, ">rpath": _rbuf, ">cwd": _cwd, ">riov": _riov, ">ts": _out(_ts),
    ">tv": _out(_tv), ">itv": _out(_itv), ">its": _out(_its), ">rem": _rem,
    ">sa": _osockaddr, ">socklen": _socklen, ">sigset": _out(_sigset),
    ">sigact": _out(_sigact), ">rlim": _out(_rlim), ">intp": _out(_intp),
    ">ulongp": _out(_ulongp), ">fds2": _fds2, ">stat": _out(_stat), ">statx": _out(_statx),
    ">statfs": _out(_statfs), ">uts": _out(_uts), ">rusage": _out(_rusage),
    ">sysinfo": _out(_sysinfo), ">wstatus": _wstatus, ">stack": _out(_stack),
    ">dents": _dents, ">epevs": _epevs, ">rmsg": _rmsg, ">cpuset": _cpuset,
    ">hexstr": _hexstr, ">loffp": _out(_loffp),
}

# 64-bit values that take two registers: loff (loff_t) and hilo only on 32-bit ABIs, where
# arm EABI starts a pair at an even register; pos (preadv's pos_l, pos_h) on every ABI.
PAIRS_ON_32 = ("loff", "hilo")
PAIR_ALIGNED_ABIS = ("arm",)


def registers(types, word, abi_name):
    """The register index of each argument type."""
    regs, reg = [], 0
    for t in types:
        name = t.partition(":")[0]
        wide = name == "pos" or word == 4 and name in PAIRS_ON_32
        if wide and name == "loff" and abi_name in PAIR_ALIGNED_ABIS and reg % 2:
            reg += 1
        regs.append(reg)
        reg += 2 if wide else 1
    return regs

# types that look at memory at entry, before the kernel changes it
ENTRY_PEEK = {">socklen": _stash_socklen}


def count_pointers(call, addr, limit=1 << 16):
    """How many pointers come before the NULL in the array at addr."""
    w = call.word
    count = 0
    while count < limit:
        data = call.mem.read_upto(addr + count * w, 64 * w)
        if len(data) < w:
            return None if count == 0 else count
        n = len(data) // w
        words = struct.unpack("<%d%s" % (n, "Q" if w == 8 else "I"), data[:n * w])
        for p in words:
            if not p:
                return count
            count += 1
    return count


def string_array(call, addr):
    """["a", "b", ...] for a NULL-terminated array of strings (argv)."""
    if not addr:
        return NULL
    w = call.word
    items = []
    fmt = "<Q" if w == 8 else "<I"
    i = 0
    while True:
        data = call.mem.read(addr + i * w, w)
        if data is None:
            return Ptr(addr) if i == 0 else Array(items, more=True)
        p = struct.unpack(fmt, data)[0]
        if not p:
            return Array(items)
        if i >= call.limit:
            return Array(items, more=True)
        items.append(cstring(call, p))
        i += 1


# --- signatures ----------------------------------------------------------------------------

class Generic(object):
    """A signature from the type list: inputs at entry, the rest at exit."""

    def __init__(self, types, ret, word=8, abi_name=None):
        self.args = []
        for t, reg in zip(types, registers(types, word, abi_name)):
            name, _, param = t.partition(":")
            self.args.append((ARG_TYPES[name], param, ENTRY_PEEK.get(name), reg))
        self.split = len(types)
        for n, t in enumerate(types):
            if t.startswith(">"):
                self.split = n
                break
        self.ret = ret

    def entry(self, call):
        vals = [f(call, reg, p) for f, p, _, reg in self.args[:self.split]]
        if None in vals:  # an argument strace leaves out (open's mode without O_CREAT)
            vals = [v for v in vals if v is not None]
        for _, p, peek, reg in self.args[self.split:]:
            if peek:
                peek(call, reg, p)
        return vals, self.split < len(self.args)

    def exit(self, call):
        vals = [f(call, reg, p) for f, p, _, reg in self.args[self.split:]]
        return [v for v in vals if v is not None]


class RawArgs(object):
    """A known syscall without a decoder, or an unknown one: n arguments in hex."""

    def __init__(self, nargs, ret="d"):
        self.nargs = nargs
        self.ret = ret

    def entry(self, call):
        return [Hex(a) if a else Int(0) for a in call.args[:self.nargs]], False

    def exit(self, call):
        return []


_COMPILED = {}


def signature(call):
    from target.strace import signatures
    sig = _COMPILED.get((call.name, call.abi_name))
    if sig is None:
        sig = signatures.lookup(call.name, call.abi_name)
        _COMPILED[(call.name, call.abi_name)] = sig
    return sig


# --- the interface the engine uses ---------------------------------------------------------

def decode_entry(call, mem, opts):
    call.mem = mem
    call.opts = opts
    call.limit = opts.string_limit
    call.hexmode = hexmode_of(opts.strings_in_hex)
    call.verbose = opts.verbose
    call.yfds = opts.decode_fds
    call.sig = signature(call)
    try:
        call.entry_vals, more = call.sig.entry(call)
    except (struct.error, ValueError, OverflowError, IndexError):
        call.sig = RawArgs(6)
        call.entry_vals, more = call.sig.entry(call)
    call.stash["more"] = more


def decode_exit(call, mem, opts, retval, is_error):
    call.exited = True
    call.retval = retval
    call.is_error = bool(is_error)
    if call.sig is None:
        decode_entry(call, mem, opts)
    try:
        call.exit_vals = call.sig.exit(call)
    except (struct.error, ValueError, OverflowError, IndexError):
        call.exit_vals = []
    if not call.is_error:
        decode_return(call)


def entry_text(call):
    text = call.name + "(" + ", ".join([v.text() for v in call.entry_vals])
    if call.stash.get("more") and call.entry_vals and not call.stash.get("after"):
        return text + ", "
    return text


def exit_text(call):
    """The arguments printed at exit and the closing parenthesis. Most calls continue the
    list after "read(3, "; clone-like ones append ", name=value" or " => {...}" pieces."""
    if call.stash.get("after"):
        return "".join([v.text() if isinstance(v, Raw) else ", " + v.text()
                        for v in call.exit_vals]) + ")"
    return ", ".join([v.text() for v in call.exit_vals]) + ")"


def return_text(call):
    if not call.exited:
        return "= ?"
    n = call.retval
    if call.is_error:
        err = -n
        if err in RESTART_TEXTS:
            return "= ? %s (%s)" % (errno_name(err), RESTART_TEXTS[err])
        name = errno_name(err) or "E???"
        return "= -1 %s (%s)" % (name, errno_text(err))
    text = "= " + call.ret_value.text()
    if call.ret_comment:
        text += " (" + call.ret_comment + ")"
    return text


def call_json(call):
    out = {"syscall": call.name,
           "args": [v.json() for v in call.entry_vals + call.exit_vals]}
    if not call.exited:
        out.update(retval=None, error=None)
        return out
    if call.is_error:
        err = -call.retval
        out.update(retval=-1 if err not in RESTART_TEXTS else None,
                   error=errno_name(err) or str(err), errno=err)
        return out
    out["retval"] = call.retval
    out["error"] = None
    if call.ret_value is not None and type(call.ret_value) is not Int:
        out["return"] = call.ret_value.json()
    if call.ret_comment:
        out["return_comment"] = call.ret_comment
    return out


# --- return values -------------------------------------------------------------------------

def _ret_unsigned(call):
    n = call.retval
    return n & ((1 << (8 * call.word)) - 1)


def decode_return(call):
    kind = call.sig.ret
    n = call.retval
    if callable(kind):
        kind(call)
        return
    if kind == "x":
        call.ret_value = Addr(_ret_unsigned(call))
    elif kind == "o":
        call.ret_value = Oct(n)
    elif kind == "fd":
        call.ret_value = fd_value(call, n)
    elif kind == "u":
        call.ret_value = Int(_ret_unsigned(call))
    else:
        call.ret_value = Int(n)


# --- -P: the files a syscall names ---------------------------------------------------------

def _by_name(groups):
    return {name: spec.split() for spec, names in groups for name in names.split()}


# Which arguments strace 6.1's -P looks at (its pathtrace.c): "fdN" is a descriptor and
# "pathN" a file name in argument N. Other syscalls of %file name a path in argument 0,
# other ones of %desc and %net a descriptor in argument 0; the rest name no file.
PATH_SPECS = _by_name((
    ("fd0 fd1", "dup2 dup3 kexec_file_load sendfile sendfile64 tee"),
    ("fd0 path1", "execveat faccessat faccessat2 fchmodat fchownat fspick fstatat64 "
                  "futimesat inotify_add_watch mkdirat mknodat mount_setattr "
                  "name_to_handle_at newfstatat open_tree openat openat2 readlinkat "
                  "statx unlinkat utimensat utimensat_time64"),
    ("path0 path1", "link mount pivot_root"),
    ("path1", "quotactl symlink"),
    ("fd0 fd2 path1 path3", "linkat move_mount renameat renameat2"),
    ("fd4", "mmap mmap2"),
    ("fd1 path2", "symlinkat"),
    ("fd0 fd2", "copy_file_range splice"),
    ("fd2", "epoll_ctl"),
    ("", "bpf epoll_create epoll_create1 eventfd eventfd2 fanotify_init fsopen "
         "inotify_init inotify_init1 io_uring_setup landlock_create_ruleset memfd_create "
         "memfd_secret mq_open perf_event_open pidfd_open pipe pipe2 socket socketpair "
         "timerfd_create userfaultfd")))

POLLS = ("poll", "ppoll", "ppoll_time64")
SELECTS = ("select", "_newselect", "pselect6", "pselect6_time64")
# ABIs whose "select" and "mmap" take a pointer to their arguments (old_select, old_mmap)
INDIRECT_ABIS = ("i386", "arm")
MAX_FDS = 1 << 20                 # strace looks at no more pollfds or fd_set bits


def path_args(call, mem):
    """strace -P: the file names (bytes) and descriptors (ints) that call names, found at
    entry from its arguments and the memory they point to: (paths, fds). A name that cannot
    be read, or has no NUL within PATH_MAX + 1 bytes, is left out; descriptors are given as
    passed (AT_FDCWD and -1 included)."""
    name = call.name
    if name not in classes.FILE and name not in classes.DESC and name not in classes.NETWORK:
        return [], []
    if call.abi_name in INDIRECT_ABIS and name in ("select", "mmap"):
        return [], _indirect_fds(call, mem)
    if name in POLLS:
        return [], _poll_fds(mem, call.args[0], call.uint(1))
    if name in SELECTS:
        return [], _select_fds(call, mem, call.args[:4])
    spec = _path_spec(call)
    paths = [_path_at(mem, call.args[int(item[4:])]) for item in spec if item[:4] == "path"]
    fds = [call.int(int(item[2:])) for item in spec if item[:2] == "fd"]
    return [path for path in paths if path is not None], fds


def _path_spec(call):
    name = call.name
    if name == "fanotify_mark":   # the 64-bit mask takes two arguments on 32-bit ABIs
        return ["fd3", "path4"] if call.word == 8 else ["fd4", "path5"]
    if name == "fsconfig":
        return {3: ["fd4", "path3"], 4: ["fd4", "path3"], 5: ["fd4"]}.get(call.uint(1), [])
    spec = PATH_SPECS.get(name)
    if spec is not None:
        return spec
    return ["path0"] if name in classes.FILE else ["fd0"]


def _path_at(mem, addr):
    got = mem.read_string(addr, PATH_MAX + 1) if addr else None
    return got[0] if got is not None and got[1] else None


def _indirect_fds(call, mem):
    """old_mmap's descriptor or old_select's fd_set members, from the argument block that
    argument 0 points to."""
    count = 5 if call.name == "select" else 6
    data = mem.read(call.args[0], count * call.word)
    if data is None:
        return []
    args = struct.unpack("<%d%s" % (count, "Q" if call.word == 8 else "I"), data)
    if call.name == "select":
        return _select_fds(call, mem, args)
    fd = args[4] & 0xFFFFFFFF
    return [fd - (1 << 32) if fd & 0x80000000 else fd]


def _poll_fds(mem, addr, count):
    data = mem.read_upto(addr, 8 * min(count, MAX_FDS))
    return [fd for fd, in struct.iter_unpack("<i4x", data[:len(data) // 8 * 8])]


def _select_fds(call, mem, args):
    """The members of select's three fd_sets: args are nfds and the three set addresses."""
    nfds = args[0] & 0xFFFFFFFF
    nfds = min(nfds - (1 << 32) if nfds & 0x80000000 else nfds, MAX_FDS)
    if nfds <= 0:
        return []
    size = ((nfds + 7) // 8 + call.word - 1) // call.word * call.word
    fds = []
    for addr in args[1:4]:
        data = mem.read(addr, size) if addr else None
        if data is not None:
            fds.extend(_bits(int.from_bytes(data, "little") & ((1 << nfds) - 1)))
    return fds


def _bits(n):
    """The numbers of the bits set in n, lowest first."""
    found = []
    while n:
        low = n & -n
        found.append(low.bit_length() - 1)
        n ^= low
    return found
