"""Signal names, signal sets, siginfo and errno names as strace prints them.

The numbering of signals and errnos is the same on x86, arm and riscv (asm-generic), so
these tables serve every ABI this agent traces. Errno texts are glibc's strerror() texts,
which is what strace prints on glibc systems, embedded so the output does not depend on
the board's C library.
"""

import struct

SIGNALS = ["0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
           "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
           "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
           "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
           "SIGIO", "SIGPWR", "SIGSYS", "SIGRTMIN"] + ["SIGRT_%d" % i for i in range(1, 33)]
NSIG = 64

SIGNUMS = dict((name, n) for n, name in enumerate(SIGNALS) if n)


def signal_name(signo):
    """SIGCHLD; SIGRTMIN and SIGRT_n for 32..64 (the kernel's numbering, as strace);
    the number itself when unknown."""
    if 0 < signo <= NSIG:
        return SIGNALS[signo]
    return str(signo)


def sigset_text(data):
    """A sigset_t in bytes as strace prints it: [HUP USR2], or ~[...] when at least half of
    the bits are set."""
    return sigset_text_bits(int.from_bytes(data, "little"), len(data) * 8)


def sigset_text_bits(mask, nbits):
    prefix = ""
    if bin(mask).count("1") >= nbits // 2:
        prefix = "~"
        mask = ~mask & ((1 << nbits) - 1)
    names = []
    bit = 0
    while mask:
        if mask & 1:
            signo = bit + 1
            names.append(SIGNALS[signo][3:] if signo <= NSIG else str(signo))
        mask >>= 1
        bit += 1
    return prefix + "[" + " ".join(names) + "]"


def sigset_names(data):
    mask = int.from_bytes(data, "little")
    return [signal_name(b + 1) for b in range(len(data) * 8) if mask >> b & 1]


# --- errno --------------------------------------------------------------------------------

ERRNOS = {
    1: ("EPERM", "Operation not permitted"),
    2: ("ENOENT", "No such file or directory"),
    3: ("ESRCH", "No such process"),
    4: ("EINTR", "Interrupted system call"),
    5: ("EIO", "Input/output error"),
    6: ("ENXIO", "No such device or address"),
    7: ("E2BIG", "Argument list too long"),
    8: ("ENOEXEC", "Exec format error"),
    9: ("EBADF", "Bad file descriptor"),
    10: ("ECHILD", "No child processes"),
    11: ("EAGAIN", "Resource temporarily unavailable"),
    12: ("ENOMEM", "Cannot allocate memory"),
    13: ("EACCES", "Permission denied"),
    14: ("EFAULT", "Bad address"),
    15: ("ENOTBLK", "Block device required"),
    16: ("EBUSY", "Device or resource busy"),
    17: ("EEXIST", "File exists"),
    18: ("EXDEV", "Invalid cross-device link"),
    19: ("ENODEV", "No such device"),
    20: ("ENOTDIR", "Not a directory"),
    21: ("EISDIR", "Is a directory"),
    22: ("EINVAL", "Invalid argument"),
    23: ("ENFILE", "Too many open files in system"),
    24: ("EMFILE", "Too many open files"),
    25: ("ENOTTY", "Inappropriate ioctl for device"),
    26: ("ETXTBSY", "Text file busy"),
    27: ("EFBIG", "File too large"),
    28: ("ENOSPC", "No space left on device"),
    29: ("ESPIPE", "Illegal seek"),
    30: ("EROFS", "Read-only file system"),
    31: ("EMLINK", "Too many links"),
    32: ("EPIPE", "Broken pipe"),
    33: ("EDOM", "Numerical argument out of domain"),
    34: ("ERANGE", "Numerical result out of range"),
    35: ("EDEADLK", "Resource deadlock avoided"),
    36: ("ENAMETOOLONG", "File name too long"),
    37: ("ENOLCK", "No locks available"),
    38: ("ENOSYS", "Function not implemented"),
    39: ("ENOTEMPTY", "Directory not empty"),
    40: ("ELOOP", "Too many levels of symbolic links"),
    42: ("ENOMSG", "No message of desired type"),
    43: ("EIDRM", "Identifier removed"),
    44: ("ECHRNG", "Channel number out of range"),
    45: ("EL2NSYNC", "Level 2 not synchronized"),
    46: ("EL3HLT", "Level 3 halted"),
    47: ("EL3RST", "Level 3 reset"),
    48: ("ELNRNG", "Link number out of range"),
    49: ("EUNATCH", "Protocol driver not attached"),
    50: ("ENOCSI", "No CSI structure available"),
    51: ("EL2HLT", "Level 2 halted"),
    52: ("EBADE", "Invalid exchange"),
    53: ("EBADR", "Invalid request descriptor"),
    54: ("EXFULL", "Exchange full"),
    55: ("ENOANO", "No anode"),
    56: ("EBADRQC", "Invalid request code"),
    57: ("EBADSLT", "Invalid slot"),
    59: ("EBFONT", "Bad font file format"),
    60: ("ENOSTR", "Device not a stream"),
    61: ("ENODATA", "No data available"),
    62: ("ETIME", "Timer expired"),
    63: ("ENOSR", "Out of streams resources"),
    64: ("ENONET", "Machine is not on the network"),
    65: ("ENOPKG", "Package not installed"),
    66: ("EREMOTE", "Object is remote"),
    67: ("ENOLINK", "Link has been severed"),
    68: ("EADV", "Advertise error"),
    69: ("ESRMNT", "Srmount error"),
    70: ("ECOMM", "Communication error on send"),
    71: ("EPROTO", "Protocol error"),
    72: ("EMULTIHOP", "Multihop attempted"),
    73: ("EDOTDOT", "RFS specific error"),
    74: ("EBADMSG", "Bad message"),
    75: ("EOVERFLOW", "Value too large for defined data type"),
    76: ("ENOTUNIQ", "Name not unique on network"),
    77: ("EBADFD", "File descriptor in bad state"),
    78: ("EREMCHG", "Remote address changed"),
    79: ("ELIBACC", "Can not access a needed shared library"),
    80: ("ELIBBAD", "Accessing a corrupted shared library"),
    81: ("ELIBSCN", ".lib section in a.out corrupted"),
    82: ("ELIBMAX", "Attempting to link in too many shared libraries"),
    83: ("ELIBEXEC", "Cannot exec a shared library directly"),
    84: ("EILSEQ", "Invalid or incomplete multibyte or wide character"),
    85: ("ERESTART", "Interrupted system call should be restarted"),
    86: ("ESTRPIPE", "Streams pipe error"),
    87: ("EUSERS", "Too many users"),
    88: ("ENOTSOCK", "Socket operation on non-socket"),
    89: ("EDESTADDRREQ", "Destination address required"),
    90: ("EMSGSIZE", "Message too long"),
    91: ("EPROTOTYPE", "Protocol wrong type for socket"),
    92: ("ENOPROTOOPT", "Protocol not available"),
    93: ("EPROTONOSUPPORT", "Protocol not supported"),
    94: ("ESOCKTNOSUPPORT", "Socket type not supported"),
    95: ("EOPNOTSUPP", "Operation not supported"),
    96: ("EPFNOSUPPORT", "Protocol family not supported"),
    97: ("EAFNOSUPPORT", "Address family not supported by protocol"),
    98: ("EADDRINUSE", "Address already in use"),
    99: ("EADDRNOTAVAIL", "Cannot assign requested address"),
    100: ("ENETDOWN", "Network is down"),
    101: ("ENETUNREACH", "Network is unreachable"),
    102: ("ENETRESET", "Network dropped connection on reset"),
    103: ("ECONNABORTED", "Software caused connection abort"),
    104: ("ECONNRESET", "Connection reset by peer"),
    105: ("ENOBUFS", "No buffer space available"),
    106: ("EISCONN", "Transport endpoint is already connected"),
    107: ("ENOTCONN", "Transport endpoint is not connected"),
    108: ("ESHUTDOWN", "Cannot send after transport endpoint shutdown"),
    109: ("ETOOMANYREFS", "Too many references: cannot splice"),
    110: ("ETIMEDOUT", "Connection timed out"),
    111: ("ECONNREFUSED", "Connection refused"),
    112: ("EHOSTDOWN", "Host is down"),
    113: ("EHOSTUNREACH", "No route to host"),
    114: ("EALREADY", "Operation already in progress"),
    115: ("EINPROGRESS", "Operation now in progress"),
    116: ("ESTALE", "Stale file handle"),
    117: ("EUCLEAN", "Structure needs cleaning"),
    118: ("ENOTNAM", "Not a XENIX named type file"),
    119: ("ENAVAIL", "No XENIX semaphores available"),
    120: ("EISNAM", "Is a named type file"),
    121: ("EREMOTEIO", "Remote I/O error"),
    122: ("EDQUOT", "Disk quota exceeded"),
    123: ("ENOMEDIUM", "No medium found"),
    124: ("EMEDIUMTYPE", "Wrong medium type"),
    125: ("ECANCELED", "Operation canceled"),
    126: ("ENOKEY", "Required key not available"),
    127: ("EKEYEXPIRED", "Key has expired"),
    128: ("EKEYREVOKED", "Key has been revoked"),
    129: ("EKEYREJECTED", "Key was rejected by service"),
    130: ("EOWNERDEAD", "Owner died"),
    131: ("ENOTRECOVERABLE", "State not recoverable"),
    132: ("ERFKILL", "Operation not possible due to RF-kill"),
    133: ("EHWPOISON", "Memory page has hardware error"),
}

# kernel-internal errnos that reach a tracer (include/linux/errno.h)
KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                 515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER",
                 518: "EOPENSTALE", 519: "ENOPARAM", 521: "EBADHANDLE", 522: "ENOTSYNC",
                 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL", 526: "ESERVERFAULT",
                 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED", 530: "ERECALLCONFLICT",
                 531: "ENOGRACE"}

# strace prints these as "= ? NAME (text)": the call is restarted or interrupted
RESTART_TEXTS = {512: "To be restarted if SA_RESTART is set", 513: "To be restarted",
                 514: "To be restarted if no handler", 516: "Interrupted by signal"}


def errno_name(n):
    """ENOENT; the kernel-internal names for 512..531; None when unknown."""
    if n in ERRNOS:
        return ERRNOS[n][0]
    return KERNEL_ERRNOS.get(n)


def errno_text(n):
    """strerror(n) as glibc words it, or strace's own words for the restart errnos."""
    if n in ERRNOS:
        return ERRNOS[n][1]
    if n in RESTART_TEXTS:
        return RESTART_TEXTS[n]
    return "Unknown error %d" % n


# --- siginfo ------------------------------------------------------------------------------

SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
            -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL", -7: "SI_DETHREAD",
            -60: "SI_ASYNCNL"}
SIGNAL_CODES = {
    5: ["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"],
    17: ["CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED",
         "CLD_CONTINUED"],
    29: ["POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP"],
    27: ["PROF_SIG"],
    4: ["ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG",
        "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"],
    8: ["FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES",
        "FPE_FLTINV", "FPE_FLTSUB", None, None, None, None, None, "FPE_FLTUNK",
        "FPE_CONDTRAP"],
    11: ["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
         "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"],
    7: ["BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"],
    31: ["SYS_SECCOMP", "SYS_USER_DISPATCH"],
}
AUDIT_ARCHES = {0xC000003E: "AUDIT_ARCH_X86_64", 0x40000003: "AUDIT_ARCH_I386",
                0xC00000B7: "AUDIT_ARCH_AARCH64", 0x40000028: "AUDIT_ARCH_ARM",
                0xC00000F3: "AUDIT_ARCH_RISCV64", 0x400000F3: "AUDIT_ARCH_RISCV32"}


def si_code_name(code, signo):
    if code in SI_CODES:
        return SI_CODES[code]
    names = SIGNAL_CODES.get(signo)
    if names and 0 < code <= len(names) and names[code - 1]:
        return names[code - 1]
    return str(code)


class _Siginfo(object):
    """The fields of a raw siginfo_t for one word size (the union starts at 16 on 64-bit
    ABIs and at 12 on 32-bit ones)."""

    def __init__(self, raw, word):
        self.raw = bytes(raw).ljust(128, b"\0")
        self.word = word
        self.signo, self.errno, self.code = struct.unpack_from("<iii", self.raw, 0)
        self.base = 16 if word == 8 else 12

    def int(self, off):
        return struct.unpack_from("<i", self.raw, self.base + off)[0]

    def uint(self, off):
        return struct.unpack_from("<I", self.raw, self.base + off)[0]

    def word_at(self, off, signed=False):
        fmt = ("<q" if signed else "<Q") if self.word == 8 else ("<i" if signed else "<I")
        return struct.unpack_from(fmt, self.raw, self.base + off)[0]

    def fields(self, syscall_name=None):
        """[(name, text, json)] in strace's order."""
        out = [("si_signo", signal_name(self.signo), signal_name(self.signo)),
               ("si_code", si_code_name(self.code, self.signo), self.code)]
        if self.errno:
            name = errno_name(self.errno) or str(self.errno)
            out.append(("si_errno", name, self.errno))
        w = self.word
        if self.code <= 0:
            out += self._user_fields()
        elif self.signo == 17:
            status = self.int(8)
            utime = self.word_at(16 if w == 8 else 12, True)
            stime = self.word_at(24 if w == 8 else 16, True)
            out += self._source()
            if self.code == 1:
                out.append(("si_status", str(status), status))
            else:
                out.append(("si_status", signal_name(status), status))
            out += [("si_utime", str(utime), utime), ("si_stime", str(stime), stime)]
        elif self.signo in (4, 8, 7, 11, 5):
            out.append(self._ptr("si_addr", 0))
            if self.signo == 7 and self.code in (4, 5):
                lsb = struct.unpack_from("<h", self.raw, self.base + w)[0]
                out.append(("si_addr_lsb", "%#x" % lsb, lsb))
            elif self.signo == 11 and self.code == 4:
                pkey = self.uint(w + 2 * w if w == 8 else w + 8)
                out.append(("si_pkey", str(pkey), pkey))
        elif self.signo == 29:
            if self.code in (1, 2, 3):
                band = self.word_at(0, True)
                fd = self.int(w)
                out += [("si_band", str(band), band), ("si_fd", str(fd), fd)]
        elif self.signo == 31:
            nr = self.int(w)
            arch = self.uint(w + 4)
            name = syscall_name(nr, arch) if syscall_name else None
            out.append(self._ptr("si_call_addr", 0))
            out.append(("si_syscall", "__NR_" + name if name else str(nr), nr))
            arch_name = AUDIT_ARCHES.get(arch, "%#x /* AUDIT_ARCH_??? */" % arch)
            out.append(("si_arch", arch_name, arch_name))
        else:
            if self.int(0) or self.uint(4):
                out += self._source()
            if self.word_at(8):
                out += self._sigval()
        return out

    def _user_fields(self):
        w = self.word
        if self.code in (0, -6):
            return self._source()
        if self.code == -2:
            timerid = self.int(0)
            overrun = self.int(4)
            return [("si_timerid", "%#x" % timerid, timerid),
                    ("si_overrun", str(overrun), overrun)] + self._sigval()
        if self.code == -5:
            band = self.word_at(0, True)
            fd = self.int(w)
            return [("si_band", str(band), band), ("si_fd", str(fd), fd)]
        out = self._source()
        if self.word_at(8):
            out += self._sigval()
        return out

    def _source(self):
        pid, uid = self.int(0), self.uint(4)
        return [("si_pid", str(pid), pid), ("si_uid", str(uid), uid)]

    def _sigval(self):
        value = self.int(8)
        return [("si_int", str(value), value), self._ptr("si_ptr", 8)]

    def _ptr(self, name, off):
        n = self.word_at(off)
        text = "%#x" % n if n else "NULL"
        return (name, text, text if n else None)


def siginfo_text(raw128, abi):
    """'SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, ...}': what strace prints between
    '--- ' and ' ---' for a signal-delivery stop."""
    info = _Siginfo(raw128, getattr(abi, "word", 8))
    if not info.signo:
        return "0 {}"
    body = ", ".join("%s=%s" % (name, text) for name, text, _ in info.fields(_namer(abi)))
    return "%s {%s}" % (signal_name(info.signo), body)


def siginfo_json(raw128, abi):
    """{"signal": "SIGCHLD", "si_signo": 17, "si_code": "CLD_EXITED", ...}."""
    info = _Siginfo(raw128, getattr(abi, "word", 8))
    out = {"signal": signal_name(info.signo)}
    if not info.signo:
        return out
    for name, text, value in info.fields(_namer(abi)):
        out[name] = value
    out["si_signo"] = info.signo
    out["si_code"] = si_code_name(info.code, info.signo)
    return out


def _namer(abi):
    def name(nr, arch):
        try:
            return abi.syscall_name(nr)
        except Exception:  # an ABI without a table for this number: print the number
            return None
    return name
