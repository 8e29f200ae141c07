"""Decoders for structures in tracee memory (stat, timespec, sockaddr, iovec, ...).

Each function takes the Call being decoded (for its memory, word size, ABI name and
options) and an address, and returns a Value; an unreadable address prints as the address,
like strace does. Layouts are from the kernel UAPI headers for each ABI.
"""

import socket
import struct
import time

from target.strace import consts
from target.strace.quote import quote
from target.strace.signals import sigset_names, sigset_text, signal_name
from target.strace.values import (Array, Comment, Const, Flags, Int, NULL, Ptr, Raw, Str,
                                  Struct, octal)


def flags(table, n):
    names, rest = table.split(n)
    return Flags(names, rest, n, table.zero)


def const(table, n, fmt="%d"):
    return Const(table.get(n), n, fmt)


def read(call, addr, size):
    """size bytes at addr, or None (NULL, unreadable)."""
    return call.mem.read(addr, size) if addr else None


# --- numbers and times ----------------------------------------------------------------------

def word_fmt(call, signed=True):
    if call.word == 8:
        return "<q" if signed else "<Q"
    return "<i" if signed else "<I"


def time_comment(sec, nsec=None, width=9):
    """strace's ISO 8601 comment for a time in seconds: 2026-11-27T11:01:16.658051679+0000;
    None when the time is zero or not representable."""
    if sec == 0 and not nsec:
        return None
    try:
        tm = time.localtime(sec)
    except (OverflowError, OSError, ValueError):
        return None
    text = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    if nsec is not None:
        text += ".%0*d" % (width, nsec)
    return text + time.strftime("%z", tm)


def timespec_value(sec, nsec):
    return Struct([("tv_sec", Int(sec)), ("tv_nsec", Int(nsec))])


def timespec(call, addr, time64=False):
    """{tv_sec=0, tv_nsec=1000}; time64 for the *_time64 syscalls of 32-bit ABIs."""
    if not addr:
        return NULL
    fmt = "<qq" if call.word == 8 or time64 else "<ii"
    data = read(call, addr, struct.calcsize(fmt))
    if data is None:
        return Ptr(addr)
    return timespec_value(*struct.unpack(fmt, data))


def timeval(call, addr):
    if not addr:
        return NULL
    fmt = "<qq" if call.word == 8 else "<ii"
    data = read(call, addr, struct.calcsize(fmt))
    if data is None:
        return Ptr(addr)
    sec, usec = struct.unpack(fmt, data)
    return Struct([("tv_sec", Int(sec)), ("tv_usec", Int(usec))])


def _pair(call, addr, one, size):
    if not addr:
        return NULL
    if read(call, addr, 2 * size) is None:
        return Ptr(addr)
    return Struct([("it_interval", one(call, addr)), ("it_value", one(call, addr + size))])


def itimerval(call, addr):
    return _pair(call, addr, timeval, 2 * call.word)


def itimerspec(call, addr, time64=False):
    size = 16 if call.word == 8 or time64 else 8
    return _pair(call, addr, lambda c, a: timespec(c, a, time64), size)


# --- stat -----------------------------------------------------------------------------------

# field offsets and formats per layout: name -> (offset, format)
STAT_LAYOUTS = {
    "x86_64": (144, {"dev": (0, "Q"), "ino": (8, "Q"), "nlink": (16, "Q"), "mode": (24, "I"),
                     "uid": (28, "I"), "gid": (32, "I"), "rdev": (40, "Q"), "size": (48, "q"),
                     "blksize": (56, "q"), "blocks": (64, "q"), "atime": (72, "q"),
                     "atime_nsec": (80, "Q"), "mtime": (88, "q"), "mtime_nsec": (96, "Q"),
                     "ctime": (104, "q"), "ctime_nsec": (112, "Q")}),
    # asm-generic/stat.h: aarch64, riscv64
    "generic": (128, {"dev": (0, "Q"), "ino": (8, "Q"), "mode": (16, "I"), "nlink": (20, "I"),
                      "uid": (24, "I"), "gid": (28, "I"), "rdev": (32, "Q"), "size": (48, "q"),
                      "blksize": (56, "i"), "blocks": (64, "q"), "atime": (72, "q"),
                      "atime_nsec": (80, "Q"), "mtime": (88, "q"), "mtime_nsec": (96, "Q"),
                      "ctime": (104, "q"), "ctime_nsec": (112, "Q")}),
    # arm asm/stat.h struct stat64 (long long aligned to 8)
    "arm64_of_arm": (104, {"dev": (0, "Q"), "ino": (96, "Q"), "mode": (16, "I"),
                           "nlink": (20, "I"), "uid": (24, "I"), "gid": (28, "I"),
                           "rdev": (32, "Q"), "size": (48, "q"), "blksize": (56, "I"),
                           "blocks": (64, "Q"), "atime": (72, "I"), "atime_nsec": (76, "I"),
                           "mtime": (80, "I"), "mtime_nsec": (84, "I"), "ctime": (88, "I"),
                           "ctime_nsec": (92, "I")}),
    # i386 asm/stat.h struct stat64 (long long aligned to 4)
    "i386_64": (96, {"dev": (0, "Q"), "ino": (88, "Q"), "mode": (16, "I"), "nlink": (20, "I"),
                     "uid": (24, "I"), "gid": (28, "I"), "rdev": (32, "Q"), "size": (44, "q"),
                     "blksize": (52, "I"), "blocks": (56, "Q"), "atime": (64, "I"),
                     "atime_nsec": (68, "I"), "mtime": (72, "I"), "mtime_nsec": (76, "I"),
                     "ctime": (80, "I"), "ctime_nsec": (84, "I")}),
}


def _compile(fields):
    """One struct.Struct reading every field of a layout (pad bytes between them)."""
    fmt, pos, names = "<", 0, []
    for name, (off, f) in sorted(fields.items(), key=lambda item: item[1][0]):
        fmt += "%dx%s" % (off - pos, f) if off > pos else f
        pos = off + struct.calcsize("<" + f)
        names.append(name)
    return struct.Struct(fmt), names


_STAT_STRUCTS = dict((key, (size,) + _compile(fields))
                     for key, (size, fields) in STAT_LAYOUTS.items())
_STAT_OF_ABI = {"x86_64": "x86_64", "arm": "arm64_of_arm", "i386": "i386_64"}


def stat_layout(abi_name):
    """(size, compiled struct, field names) of the stat the ABI's stat syscalls fill: struct
    stat on 64-bit ABIs, struct stat64 on 32-bit ones (stat64, fstat64, fstatat64)."""
    return _STAT_STRUCTS[_STAT_OF_ABI.get(abi_name, "generic")]


def unpack_stat(data, layout):
    return dict(zip(layout[2], layout[1].unpack_from(data)))


def _hex0(n):
    return "%#x" % n if n else "0"


def makedev_raw(major, minor):
    return Raw("makedev(%s, %s)" % (_hex0(major), _hex0(minor)), {"major": major, "minor": minor})


def dev_value(dev):
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF & 0xFFFFFFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF & 0xFFFFFFFF)
    return makedev_raw(major, minor)


def mode_value(mode):
    """S_IFREG|0644, with S_ISUID etc.; the file type alone when there are no bits."""
    kind = consts.FILE_TYPES.get(mode & 0o170000)
    parts = []
    rest = mode
    if kind:
        parts.append(kind)
        rest &= ~0o170000
    elif mode & 0o170000:
        parts.append("%#o" % (mode & 0o170000))
        rest &= ~0o170000
    special, _ = consts.MODE_SPECIAL.split(rest)
    parts += special
    rest &= 0o777 if parts else ~0
    if rest or not parts:
        parts.append(octal(rest))
    return Raw("|".join(parts), mode)


def stat_time_fields(values, verbose):
    out = []
    for which in ("atime", "mtime", "ctime"):
        sec, nsec = values[which], values[which + "_nsec"]
        comment = time_comment(sec, nsec)
        out.append(("st_" + which, Comment(Int(sec), comment) if comment else Int(sec)))
        out.append(("st_%s_nsec" % which, Int(nsec)))
    return out


def stat(call, addr, stat64=False):
    """struct stat as strace prints it: abbreviated unless -v."""
    layout = stat_layout(call.abi_name)
    data = read(call, addr, layout[0])
    if data is None:
        return Ptr(addr)
    v = unpack_stat(data, layout)
    mode = v["mode"]
    special = mode & 0o170000 in (0o20000, 0o60000)
    if not call.verbose:
        fields = [("st_mode", mode_value(mode))]
        if special:
            fields.append(("st_rdev", dev_value(v["rdev"])))
        else:
            fields.append(("st_size", Int(v["size"])))
        return Struct(fields, more=True)
    fields = [("st_dev", dev_value(v["dev"])), ("st_ino", Int(v["ino"])),
              ("st_mode", mode_value(mode)), ("st_nlink", Int(v["nlink"])),
              ("st_uid", Int(v["uid"])), ("st_gid", Int(v["gid"])),
              ("st_blksize", Int(v["blksize"])), ("st_blocks", Int(v["blocks"]))]
    if special:
        fields.append(("st_rdev", dev_value(v["rdev"])))
    else:
        fields.append(("st_size", Int(v["size"])))
    return Struct(fields + stat_time_fields(v, True))


def statx(call, addr):
    data = read(call, addr, 0x100)
    if data is None:
        return Ptr(addr)
    (mask, blksize, attrs, nlink, uid, gid, mode) = struct.unpack_from("<IIQIIIH", data, 0)
    ino, size, blocks, attrs_mask = struct.unpack_from("<QQQQ", data, 0x20)
    times = [struct.unpack_from("<qI", data, off) for off in (0x40, 0x50, 0x60, 0x70)]
    rdev_major, rdev_minor, dev_major, dev_minor = struct.unpack_from("<IIII", data, 0x80)
    fields = [("stx_mask", flags(consts.STATX_MASK, mask))]
    if not call.verbose:
        fields += [("stx_attributes", flags(consts.STATX_ATTRS, attrs)),
                   ("stx_mode", mode_value(mode)), ("stx_size", Int(size))]
        return Struct(fields, more=True)
    fields += [("stx_blksize", Int(blksize)), ("stx_attributes", flags(consts.STATX_ATTRS, attrs)),
               ("stx_nlink", Int(nlink)), ("stx_uid", Int(uid)), ("stx_gid", Int(gid)),
               ("stx_mode", mode_value(mode)), ("stx_ino", Int(ino)), ("stx_size", Int(size)),
               ("stx_blocks", Int(blocks)),
               ("stx_attributes_mask", flags(consts.STATX_ATTRS, attrs_mask))]
    for name, (sec, nsec) in zip(("stx_atime", "stx_btime", "stx_ctime", "stx_mtime"), times):
        comment = time_comment(sec, nsec)
        value = timespec_value(sec, nsec)
        fields.append((name, Comment(value, comment) if comment else value))
    fields += [("stx_rdev_major", Int(rdev_major)), ("stx_rdev_minor", Int(rdev_minor)),
               ("stx_dev_major", Int(dev_major)), ("stx_dev_minor", Int(dev_minor))]
    return Struct(fields)


def statfs(call, addr, statfs64=False):
    if call.word == 8:
        fmt, size = "<qqQQQQQiiqqq4q", 120
    elif statfs64:
        fmt, size = "<iiQQQQQiiii4i", 84
    else:
        fmt, size = "<iiIIIIIiiii5i", 64
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    v = struct.unpack_from(fmt, data)
    ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize, flags_ = v[:12]
    ftype &= 0xFFFFFFFF
    return Struct([("f_type", const(consts.FS_MAGICS, ftype, "%#x")), ("f_bsize", Int(bsize)), ("f_blocks", Int(blocks)),
                   ("f_bfree", Int(bfree)), ("f_bavail", Int(bavail)), ("f_files", Int(files)),
                   ("f_ffree", Int(ffree)),
                   ("f_fsid", Raw("{val=[%s, %s]}" % (_hex0(fsid0 & 0xFFFFFFFF), _hex0(fsid1 & 0xFFFFFFFF)),
                                  [fsid0, fsid1])),
                   ("f_namelen", Int(namelen)), ("f_frsize", Int(frsize)),
                   ("f_flags", flags(consts.STATFS_FLAGS, flags_))])


# --- process --------------------------------------------------------------------------------

def rlimit_text(n, word):
    if n == (1 << 64) - 1 or (word == 8 and n == (1 << 64) - 1):
        return Raw("RLIM64_INFINITY", "RLIM64_INFINITY")
    if word == 4 and n == 0xFFFFFFFF:
        return Raw("RLIM_INFINITY", "RLIM_INFINITY")
    if n > 1024 and n % 1024 == 0:
        return Raw("%d*1024" % (n // 1024), n)
    return Int(n)


def rlimit(call, addr, rlim64=False):
    word = 8 if rlim64 else call.word
    fmt = "<QQ" if word == 8 else "<II"
    data = read(call, addr, 2 * word)
    if data is None:
        return Ptr(addr)
    cur, max_ = struct.unpack(fmt, data)
    return Struct([("rlim_cur", rlimit_text(cur, word)), ("rlim_max", rlimit_text(max_, word))])


RUSAGE_LONGS = ("ru_maxrss", "ru_ixrss", "ru_idrss", "ru_isrss", "ru_minflt", "ru_majflt",
                "ru_nswap", "ru_inblock", "ru_oublock", "ru_msgsnd", "ru_msgrcv", "ru_nsignals",
                "ru_nvcsw", "ru_nivcsw")


def rusage(call, addr):
    w = call.word
    data = read(call, addr, 18 * w)
    if data is None:
        return Ptr(addr)
    v = struct.unpack("<18" + ("q" if w == 8 else "i"), data)
    fields = [("ru_utime", Struct([("tv_sec", Int(v[0])), ("tv_usec", Int(v[1]))])),
              ("ru_stime", Struct([("tv_sec", Int(v[2])), ("tv_usec", Int(v[3]))]))]
    if not call.verbose:
        return Struct(fields, more=True)
    return Struct(fields + [(name, Int(n)) for name, n in zip(RUSAGE_LONGS, v[4:])])


UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")


def utsname(call, addr):
    data = read(call, addr, 6 * 65)
    if data is None:
        return Ptr(addr)
    values = []
    for i, name in enumerate(UTS_FIELDS):
        raw = data[i * 65:(i + 1) * 65]
        end = raw.find(b"\0")
        values.append((name, Str(raw[:end] if end >= 0 else raw, end < 0, call.hexmode)))
    if not call.verbose:
        return Struct(values[:2], more=True)
    return Struct(values)


def sysinfo(call, addr):
    w = call.word
    wf = "q" if w == 8 else "i"
    fmt = "<" + wf + "3" + wf.upper() + "6" + wf.upper() + "HH" + ("I" if w == 8 else "") + \
        "2" + wf.upper() + "I"
    size = struct.calcsize(fmt)
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    v = struct.unpack_from(fmt, data)
    uptime, loads = v[0], v[1:4]
    rest = v[4:]
    names = ("totalram", "freeram", "sharedram", "bufferram", "totalswap", "freeswap")
    fields = [("uptime", Int(uptime)), ("loads", Array([Int(n) for n in loads]))]
    fields += [(n, Int(x)) for n, x in zip(names, rest[:6])]
    procs = rest[6]
    tail = rest[9:] if w == 8 else rest[8:]
    fields += [("procs", Int(procs)), ("totalhigh", Int(tail[0])), ("freehigh", Int(tail[1])),
               ("mem_unit", Int(tail[2]))]
    return Struct(fields)


def wait_status(status):
    """[{WIFEXITED(s) && WEXITSTATUS(s) == 0}] body, as strace prints a wait status."""
    sig = status & 0x7F
    if sig == 0:
        text = "WIFEXITED(s) && WEXITSTATUS(s) == %d" % ((status >> 8) & 0xFF)
    elif sig == 0x7F:
        text = "WIFSTOPPED(s) && WSTOPSIG(s) == %s" % signal_name((status >> 8) & 0xFF)
        event = status >> 16
        if event:
            text += " | %s << 16" % EVENTS.get(event, str(event))
        return "{%s}" % text
    elif status == 0xFFFF:
        return "{WIFCONTINUED(s)}"
    else:
        text = "WIFSIGNALED(s) && WTERMSIG(s) == %s" % signal_name(sig)
        if status & 0x80:
            text += " && WCOREDUMP(s)"
    rest = status & ~0xFFFF
    if rest:
        text += " | %#x" % rest
    return "{%s}" % text


EVENTS = {1: "PTRACE_EVENT_FORK", 2: "PTRACE_EVENT_VFORK", 3: "PTRACE_EVENT_CLONE",
          4: "PTRACE_EVENT_EXEC", 5: "PTRACE_EVENT_VFORK_DONE", 6: "PTRACE_EVENT_EXIT",
          7: "PTRACE_EVENT_SECCOMP", 128: "PTRACE_EVENT_STOP"}


def wait_status_at(call, addr):
    data = read(call, addr, 4)
    if data is None:
        return Ptr(addr)
    status = struct.unpack("<i", data)[0]
    return Raw("[%s]" % wait_status(status), status)


# --- signals --------------------------------------------------------------------------------

def sigset_at(call, addr, size):
    if not addr:
        return NULL
    if size <= 0 or size > 128:
        return Ptr(addr)
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    return sigset_value(data)


def sigset_value(data):
    return Raw(sigset_text(data), sigset_names(data))


def sa_handler(n):
    name = consts.SA_HANDLERS.get(n)
    return Const(name, n) if name else Ptr(n)


def sigaction(call, addr, sigsetsize):
    if not addr:
        return NULL
    w = call.word
    has_restorer = not call.abi_name.startswith("riscv")
    size = (3 if has_restorer else 2) * w + min(max(sigsetsize, 0), 128)
    data = read(call, addr, size)
    if data is None or sigsetsize > 128:
        return Ptr(addr)
    fmt = "<Q" if w == 8 else "<I"
    handler = struct.unpack_from(fmt, data, 0)[0]
    fl = struct.unpack_from(fmt, data, w)[0]
    restorer = struct.unpack_from(fmt, data, 2 * w)[0] if has_restorer else 0
    mask = data[(3 if has_restorer else 2) * w:]
    table = consts.sa_flags(call.abi_name)
    fields = [("sa_handler", sa_handler(handler)), ("sa_mask", sigset_value(mask)),
              ("sa_flags", flags(table, fl))]
    if has_restorer and fl & 0x4000000:
        fields.append(("sa_restorer", Ptr(restorer)))
    return Struct(fields)


def stack_t(call, addr):
    if not addr:
        return NULL
    w = call.word
    data = read(call, addr, 3 * w)
    if data is None:
        return Ptr(addr)
    if w == 8:
        sp, fl, size = struct.unpack("<Qi4xQ", data)
    else:
        sp, fl, size = struct.unpack("<IiI", data)
    return Struct([("ss_sp", Ptr(sp)), ("ss_flags", flags(consts.SS_FLAGS, fl & 0xFFFFFFFF)),
                   ("ss_size", Int(size))])


# --- sockets --------------------------------------------------------------------------------

def sockaddr(call, addr, length):
    """A socket address of length bytes."""
    if not addr:
        return NULL
    if length <= 0:
        return Ptr(addr)
    data = read(call, addr, min(length, 128))
    if data is None:
        return Ptr(addr)
    return sockaddr_value(data, call.hexmode)


def _family(fam):
    return Const(consts.FAMILIES.get(fam), fam)


def sockaddr_value(data, hexmode=0):
    if len(data) < 2:
        return Raw("{sa_family=???}" if not data else "{sa_family=%d}" % data[0])
    fam = struct.unpack_from("<H", data)[0]
    fields = [("sa_family", _family(fam))]
    if fam == socket.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        ip = socket.inet_ntop(socket.AF_INET, data[4:8])
        fields += [("sin_port", Raw("htons(%d)" % port, port)),
                   ("sin_addr", Raw("inet_addr(%s)" % quote(ip.encode(), hexmode), ip))]
    elif fam == socket.AF_INET6 and len(data) >= 24:
        port, flowinfo = struct.unpack_from(">HI", data, 2)
        ip = socket.inet_ntop(socket.AF_INET6, data[8:24])
        fields += [("sin6_port", Raw("htons(%d)" % port, port)),
                   ("sin6_flowinfo", Raw("htonl(%d)" % flowinfo, flowinfo)),
                   (None, Raw("inet_pton(AF_INET6, %s, &sin6_addr)" % quote(ip.encode(), hexmode),
                               ip))]
        if len(data) >= 28:
            fields.append(("sin6_scope_id", Int(struct.unpack_from("<I", data, 24)[0])))
    elif fam == socket.AF_UNIX:
        path = data[2:]
        if path:
            if path[:1] == b"\0":
                end = len(path)
                fields.append(("sun_path", Raw("@" + Str(path[1:end], False, hexmode).text(),
                                               "@" + path[1:].decode("utf-8", "replace"))))
            else:
                end = path.find(b"\0")
                path = path[:end] if end >= 0 else path
                fields.append(("sun_path", Str(path, False, hexmode)))
    elif fam == 16 and len(data) >= 12:
        pid, groups = struct.unpack_from("<II", data, 4)
        fields += [("nl_pid", Int(pid)), ("nl_groups", Raw("%08x" % groups, groups))]
    else:
        fields.append(("sa_data", Str(data[2:], False, hexmode)))
    return Struct(fields)


def iovec_array(call, addr, count, data_limit=None, out=False):
    """[{iov_base="...", iov_len=N}, ...]; data_limit caps the bytes shown in total (the
    return value of readv); out=True prints the buffers of a read."""
    if not addr:
        return NULL
    w = call.word
    if count < 0 or count > 1024:
        return Ptr(addr)
    shown = min(count, call.limit)
    data = read(call, addr, shown * 2 * w)
    if data is None:
        return Ptr(addr)
    fmt = "<QQ" if w == 8 else "<II"
    items = []
    left = data_limit
    for i in range(shown):
        base, length = struct.unpack_from(fmt, data, i * 2 * w)
        n = length if left is None else min(length, left)
        if left is not None:
            left -= n
        items.append(Struct([("iov_base", buffer(call, base, n)), ("iov_len", Int(length))]))
    return Array(items, more=shown < count)


def buffer(call, addr, length):
    """length bytes at addr as a string, cut at -s with "..."."""
    if not addr:
        return NULL
    shown = min(length, call.limit)
    data = read(call, addr, shown)
    if data is None:
        return Ptr(addr)
    return Str(data, length > call.limit, call.hexmode)


def msghdr(call, addr, data_limit=None):
    w = call.word
    size = 56 if w == 8 else 28
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    if w == 8:
        name, namelen, iov, iovlen, control, controllen, fl = struct.unpack("<QI4xQQQQi4x", data)
    else:
        name, namelen, iov, iovlen, control, controllen, fl = struct.unpack("<IIIIIIi", data)
    fields = [("msg_name", sockaddr(call, name, namelen) if name else NULL),
              ("msg_namelen", Int(namelen)),
              ("msg_iov", iovec_array(call, iov, iovlen, data_limit)),
              ("msg_iovlen", Int(iovlen))]
    if controllen:
        fields.append(("msg_control", Ptr(control)))
    fields += [("msg_controllen", Int(controllen)), ("msg_flags", flags(consts.MSG_FLAGS, fl))]
    return Struct(fields)


# --- polling --------------------------------------------------------------------------------

def pollfds(call, addr, count, fd_value):
    if not addr:
        return NULL
    shown = min(count, call.limit)
    data = read(call, addr, 8 * shown)
    if data is None:
        return Ptr(addr)
    items = []
    for i in range(shown):
        fd, events, _ = struct.unpack_from("<ihh", data, 8 * i)
        items.append(Struct([("fd", fd_value(fd)),
                             ("events", flags(consts.POLL_EVENTS, events & 0xFFFF))]))
    return Array(items, more=shown < count)


def poll_revents(call, addr, count):
    """The entries with revents set, as strace prints them after the return value."""
    data = read(call, addr, 8 * count) if count > 0 else None
    if data is None:
        return None
    items = []
    for i in range(count):
        fd, _, revents = struct.unpack_from("<ihh", data, 8 * i)
        if revents:
            items.append(Struct([("fd", Int(fd)),
                                 ("revents", flags(consts.POLL_EVENTS, revents & 0xFFFF))]))
    return Array(items)


def epoll_layout(call):
    """(size, data offset): packed on x86, 8-aligned elsewhere."""
    return (12, 4) if call.abi_name in ("x86_64", "i386") else (16, 8)


def epoll_event_value(data, off, data_off):
    events = struct.unpack_from("<I", data, off)[0]
    u64 = struct.unpack_from("<Q", data, off + data_off)[0]
    return Struct([("events", flags(consts.EPOLL_EVENTS, events)),
                   ("data", Struct([("u32", Int(u64 & 0xFFFFFFFF)), ("u64", Int(u64))]))])


def epoll_event(call, addr):
    if not addr:
        return NULL
    size, data_off = epoll_layout(call)
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    return epoll_event_value(data, 0, data_off)


def epoll_events(call, addr, count):
    if not addr:
        return NULL
    size, data_off = epoll_layout(call)
    shown = min(max(count, 0), call.limit)
    data = read(call, addr, size * shown)
    if data is None:
        return Ptr(addr)
    return Array([epoll_event_value(data, i * size, data_off) for i in range(shown)],
                 more=shown < count)


def fd_set(call, addr, nfds, fd_value=Int):
    """[3 4] for an fd_set of nfds bits; fd_value makes each item (with -y paths)."""
    if not addr:
        return NULL
    if nfds < 0 or nfds > 1 << 20:
        return Ptr(addr)
    size = ((nfds + 8 * call.word - 1) // (8 * call.word)) * call.word
    data = read(call, addr, size)
    if data is None:
        return Ptr(addr)
    bits = int.from_bytes(data, "little")
    fds = [n for n in range(nfds) if bits >> n & 1]
    return Array([fd_value(n) for n in fds], sep=" ")


# --- directories ----------------------------------------------------------------------------

def dirents64(call, addr, length):
    """getdents64's buffer: /* N entries */ without -v, the entries with -v."""
    data = read(call, addr, length) if length > 0 else b""
    if data is None:
        return Ptr(addr)
    entries = []
    off = 0
    while off + 19 <= len(data):
        ino, doff, reclen, dtype = struct.unpack_from("<QqHB", data, off)
        if reclen < 19:
            break
        name = data[off + 19:off + reclen]
        end = name.find(b"\0")
        entries.append((ino, doff, reclen, dtype, name[:end] if end >= 0 else name))
        off += reclen
    if not call.verbose:
        return Comment(Ptr(addr), "%d entries" % len(entries))
    items = [Struct([("d_ino", Int(ino)), ("d_off", Int(doff)), ("d_reclen", Int(reclen)),
                     ("d_type", const(consts.DIRENT_TYPES, dtype)),
                     ("d_name", Str(name, False, call.hexmode))])
             for ino, doff, reclen, dtype, name in entries[:call.limit]]
    return Array(items, more=len(entries) > call.limit)


# --- terminals ------------------------------------------------------------------------------

BAUDS = {0: "B0", 1: "B50", 2: "B75", 3: "B110", 4: "B134", 5: "B150", 6: "B200", 7: "B300",
         8: "B600", 9: "B1200", 10: "B1800", 11: "B2400", 12: "B4800", 13: "B9600",
         14: "B19200", 15: "B38400", 0o10001: "B57600", 0o10002: "B115200",
         0o10003: "B230400", 0o10004: "B460800", 0o10005: "B500000", 0o10006: "B576000",
         0o10007: "B921600", 0o10010: "B1000000", 0o10011: "B1152000", 0o10012: "B1500000",
         0o10013: "B2000000", 0o10014: "B2500000", 0o10015: "B3000000",
         0o10016: "B3500000", 0o10017: "B4000000"}


def _term_flags(table, n):
    names, rest = table.split(n)
    if rest:
        names.append("%#o" % rest)
    return "|".join(names) if names else "0"


def termios(call, addr):
    """{c_iflag=ICRNL|IXON, c_oflag=NL0|CR0|...|OPOST|ONLCR, c_cflag=B38400|CS8|CREAD,
    c_lflag=ISIG|..., ...} as strace prints struct termios (TCGETS)."""
    data = read(call, addr, 17 + 19)
    if data is None:
        return Ptr(addr)
    iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", data)
    oparts = []
    rest = oflag
    for mask, names in consts.TERM_ODELAYS:
        oparts.append(names[oflag & mask])
        rest &= ~mask
    bits = _term_flags(consts.TERM_OFLAGS, rest)
    if bits != "0":
        oparts.append(bits)
    cparts = [BAUDS.get(cflag & 0o10017, "%#o" % (cflag & 0o10017)),
              consts.TERM_CSIZE[cflag & 0o60]]
    crest = cflag & ~(0o10017 | 0o60)
    ibaud = (cflag >> 16) & 0o10017
    crest &= ~(0o10017 << 16)
    if ibaud:
        cparts.append("%s<<IBSHIFT" % BAUDS.get(ibaud, "%#o" % ibaud))
    bits = _term_flags(consts.TERM_CFLAGS, crest)
    if bits != "0":
        cparts.append(bits)
    fields = [("c_iflag", Raw(_term_flags(consts.TERM_IFLAGS, iflag), iflag)),
              ("c_oflag", Raw("|".join(oparts), oflag)),
              ("c_cflag", Raw("|".join(cparts), cflag)),
              ("c_lflag", Raw(_term_flags(consts.TERM_LFLAGS, lflag), lflag))]
    if not call.verbose:
        return Struct(fields, more=True)
    line = data[16]
    cc = data[17:36]
    fields += [("c_line", Int(line)), ("c_cc", Str(cc, False, 0))]
    return Struct(fields)


def winsize(call, addr):
    data = read(call, addr, 8)
    if data is None:
        return Ptr(addr)
    row, col, xpixel, ypixel = struct.unpack("<HHHH", data)
    return Struct([("ws_row", Int(row)), ("ws_col", Int(col)), ("ws_xpixel", Int(xpixel)),
                   ("ws_ypixel", Int(ypixel))])
