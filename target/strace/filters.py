"""strace's filtering expressions: -e trace=, status=, signal=, inject=, fault=, the stored
qualifiers (abbrev=, verbose=, raw=, read=, write=, quiet=, decode-fds=, decode-pids=, kvm=),
-P PATH, -z and -Z, with strace 6.1's syntax and error messages.

    filters = parse(["trace=%file,close", "status=failed"], paths=["/etc/passwd"])
    filters.traced("openat")                # -e trace=
    filters.status_shown(is_error=True)     # -e status=, -z, -Z
    filters.injection("openat", count)      # -e inject=, -e fault=

Syscalls are named as target.arch.abi names them. A name counts as known when one of the
personalities of the native architecture has it (x86_64 with i386, aarch64 with arm), as in
strace.
"""

import functools
import os
import re

from target.arch import abi as abis
from target.cli import AgentError
from target.strace import classes, signals

QUALIFIERS = {
    "trace": "trace", "t": "trace",
    "abbrev": "abbrev", "a": "abbrev",
    "verbose": "verbose", "v": "verbose",
    "raw": "raw", "x": "raw",
    "signal": "signal", "signals": "signal", "s": "signal",
    "status": "status",
    "read": "read", "reads": "read", "r": "read",
    "write": "write", "writes": "write", "w": "write",
    "fault": "fault",
    "inject": "inject",
    "kvm": "kvm",
    "quiet": "quiet", "silent": "quiet", "silence": "quiet", "q": "quiet",
    "decode-fds": "decode-fds", "decode-fd": "decode-fds",
    "decode-pids": "decode-pids", "decode-pid": "decode-pids",
    "secontext": "secontext",
}
STATUSES = ("successful", "failed", "unfinished", "unavailable", "detached")
QUIET = ("attach", "exit", "path-resolution", "personality", "thread-execve", "superseded")
DECODE_FDS = ("path", "socket", "dev", "pidfd")
DECODE_PIDS = ("comm", "pidns")
# the personalities of each native architecture, as strace's -e trace=NAME@DESIGNATOR names them
PERSONALITIES = {"x86_64": (("x86_64", "64"), ("i386", "32"), (None, "x32")),
                 "aarch64": (("aarch64", "64"), ("arm", "32")),
                 "riscv64": (("riscv64", "64"),),
                 "arm": (("arm", "32"),),
                 "i386": (("i386", "32"),)}
MAX_ERRNO = 4095
NOT_IN_STRACE = ("ENOPARAM", "ENOGRACE")    # kernel errnos strace 6.1 has no name for
INJECT_MAX = 0xFFFF        # when=: first and step are 1..65535, last 1..65534
INFINITY = float("inf")


def parse(expressions, paths=(), successful_only=False, failed_only=False):
    """Filters from the -e values as given ("trace=open", "t=open", "open", "inject=...")
    in command-line order, the -P paths, -z and -Z. -z and -Z replace any status= set, as
    they do in strace; given both, strace's warning is added and -Z wins (strace takes the
    later one: a CLI that knows the order should pass only that one)."""
    filters = Filters()
    for expression in expressions:
        filters.qualify(expression)
    if successful_only and failed_only:
        filters.warnings.append("Only the last of -z/--successful-only/-Z/--failed-only "
                                "options will take effect. See status qualifier for more "
                                "complex filters.")
    if successful_only:
        filters.status = TokenSet({"successful"})
    if failed_only:
        filters.status = TokenSet({"failed"})
    for path in paths:
        filters.select_path(path)
    return filters


class Filters(object):
    """What to trace and show. warnings: lines strace prints (after "strace: ") but goes on."""

    def __init__(self):
        self.trace = Selection(everything=True)
        self.abbrev = Selection(everything=True)
        self.verbose = Selection(everything=True)
        self.raw = Selection()
        self.signals = TokenSet(everything=True)
        self.status = TokenSet(everything=True)
        self.read_fds = TokenSet()
        self.write_fds = TokenSet()
        self.quiet = TokenSet()
        self.decode_fds = TokenSet()
        self.decode_pids = TokenSet()
        self.kvm_vcpu = False
        self.injections = []      # (Selection, Injection), later ones win
        self.paths = []           # -P paths, and what they resolve into
        self.resolved = []        # (given, resolved) for strace's "Requested path" notice
        self.warnings = []

    # --- asking -------------------------------------------------------------------------

    def traced(self, name, nr=None):
        """Whether -e trace= selects syscall name (nr: its number, for numeric tokens; by
        default the native number of name)."""
        return self.trace.matches(name, nr)

    def traced_numbers(self, abi):
        """The syscall numbers of abi that -e trace= selects, for a seccomp filter; None when
        every syscall is traced."""
        if self.trace.selects_everything():
            return None
        return {nr for nr, name in abi.names.items() if self.trace.matches(name, nr)}

    def status_shown(self, is_error, unfinished=False, unavailable=False, detached=False):
        """-e status=: whether a syscall that ended this way is shown. unfinished: it did not
        return (exit, exit_group: strace prints "= ?"; or the process died in it);
        unavailable: its return value could not be fetched; detached: we detached while it
        ran."""
        if detached:
            status = "detached"
        elif unfinished:
            status = "unfinished"
        elif unavailable:
            status = "unavailable"
        else:
            status = "failed" if is_error else "successful"
        return self.status.matches(status)

    def signal_shown(self, signo):
        """-e signal=: whether a delivery of signal number signo is shown."""
        return self.signals.matches(signo)

    @property
    def tracing_paths(self):
        return bool(self.paths)

    def path_matches(self, pid, paths=(), fds=()):
        """-P: whether a syscall of process pid that names these paths (str or bytes, as the
        tracee passed them) and uses these file descriptors touches a selected path. Like
        strace, paths are compared as given (no resolution of relative names), descriptors by
        what /proc/PID/fd/N points to; negative descriptors (AT_FDCWD) never match. True
        when no -P was given."""
        if not self.paths:
            return True
        if any(os.fsdecode(path) in self.paths for path in paths):
            return True
        for fd in fds:
            if fd >= 0 and fd_path(pid, fd) in self.paths:
                return True
        return False

    def notices(self):
        """strace's "Requested path ... resolved into ..." lines, unless quiet=path-resolution."""
        if self.quiet.matches("path-resolution"):
            return []
        from target.strace.quote import quote
        return ["Requested path %s resolved into %s" % (quote(os.fsencode(asked)), quote(os.fsencode(real)))
                for asked, real in self.resolved]

    def injection(self, name, count, nr=None):
        """The Injection for the count-th call (1-based) of syscall name by one tracee, or None.
        Count, like strace, only the calls that pass -e trace= and -P."""
        for selection, injection in reversed(self.injections):
            if selection.matches(name, nr):
                return injection if injection.applies(count) else None
        return None

    # --- parsing ------------------------------------------------------------------------

    def qualify(self, expression):
        """One -e value. An unknown qualifier makes the whole value a trace= set, as in strace."""
        kind, value = "trace", expression
        if "=" in expression:
            head, rest = expression.split("=", 1)
            if head in QUALIFIERS:
                kind, value = QUALIFIERS[head], rest
        if kind in ("trace", "abbrev", "verbose", "raw"):
            setattr(self, kind, parse_syscalls(value))
        elif kind == "signal":
            self.signals = TokenSet.parse(value, signal_number, "signal")
        elif kind == "status":
            self.status = TokenSet.parse(value, choice(STATUSES, fold=True), "status")
        elif kind in ("read", "write"):
            setattr(self, kind + "_fds", TokenSet.parse(value, descriptor, "descriptor"))
        elif kind == "quiet":
            self.quiet = TokenSet.parse(value, choice(QUIET), "quiet")
        elif kind == "decode-fds":
            self.decode_fds = TokenSet.parse(value, choice(DECODE_FDS), "decode-fds")
        elif kind == "decode-pids":
            self.decode_pids = TokenSet.parse(value, choice(DECODE_PIDS), "decode-pids")
        elif kind == "kvm":
            if value != "vcpu":
                raise AgentError("invalid -e kvm= argument: '%s'" % value)
            self.kvm_vcpu = True
        elif kind == "secontext":
            raise AgentError("SELinux context printing (--secontext option) is not supported")
        else:
            self.injections.append(parse_injection(value, kind, self.warnings))

    def select_path(self, path):
        """-P path: the path as given and, when different, what it resolves into now."""
        self.paths.append(path)
        resolved = os.path.realpath(path) if os.path.exists(path) else None
        if resolved and resolved != path:
            self.paths.append(resolved)
            self.resolved.append((path, resolved))


DELETED = " (deleted)"


def fd_path(pid, fd):
    """The path an fd refers to. /proc appends " (deleted)" to an unlinked or replaced file;
    like strace, that is dropped unless a file of exactly that name is the same file."""
    link = "/proc/%d/fd/%d" % (pid, fd)
    try:
        path = os.readlink(link)
    except OSError:
        return None
    if path.endswith(DELETED):
        try:
            mine, named = os.stat(link), os.lstat(path)
            if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino):
                return path
        except OSError:
            pass
        return path[:-len(DELETED)]
    return path


# --- syscall sets ---------------------------------------------------------------------------

class Selection(object):
    """A set of syscalls as -e trace= gives it: names, numbers and regexes, possibly inverted
    ("!..."). everything=True is the set of all syscalls."""

    def __init__(self, everything=False):
        self.names = set()
        self.numbers = set()
        self.regexes = []
        self.all = False          # the token "all" inside a list
        self.inverted = everything
        self._cache = {}

    def selects_everything(self):
        if self.all:
            return not self.inverted
        return self.inverted and not (self.names or self.numbers or self.regexes)

    def matches(self, name, nr=None):
        key = (name, nr)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._matches(name, nr)
        return hit

    def _matches(self, name, nr):
        if nr is None:
            native = native_abi()
            nr = native.numbers.get(name) if native else None
        hit = (self.all or name in self.names or nr in self.numbers or
               (bool(self.regexes) and name in known_names() and
                any(regex.search(name) for regex in self.regexes)))
        return hit != self.inverted


def parse_syscalls(value):
    """A Selection from a trace= value: [!]...none|all|TOKEN[,TOKEN...] where a token is
    [?]NAME, [?]NUMBER, [?]/REGEX or [?]%CLASS."""
    selection = Selection()
    for token in set_tokens(value, selection, "system call"):
        if not add_syscall_token(selection, token):
            raise AgentError("invalid system call '%s'" % token)
    return selection


def set_tokens(value, target, what):
    """strace's set syntax: each leading "!" inverts target; "none" and "all" stand alone
    (no tokens); otherwise the comma-separated tokens, at least one."""
    rest = value
    while rest.startswith("!"):
        target.inverted = not target.inverted
        rest = rest[1:]
    if rest in ("none", "all"):
        target.inverted ^= rest == "all"
        return []
    tokens = [token for token in rest.split(",") if token]
    if not tokens:
        raise AgentError("invalid %s '%s'" % (what, value))
    return tokens


def add_syscall_token(selection, token):
    """Add one token to selection; False when it names nothing (and has no "?")."""
    optional = token.startswith("?")
    token = token.lstrip("?")
    if "@" in token:
        return reject_personality(token, optional)
    if token[:1].isdigit():
        found = add_number(selection, token)
    elif token.startswith("/"):
        found = add_regex(selection, token[1:])
    elif token == "all":
        selection.all = found = True
    else:
        members = classes.members(token)
        if members is not None:
            selection.names.update(members)
            found = True
        else:
            found = token in known_names()
            if found:
                selection.names.add(token)
    return found or optional


def add_number(selection, token):
    number = to_uint(token, 0x7FFFFFFF)
    if number is None or number > max(max(abi.names) for abi in personalities()):
        return False
    selection.numbers.add(number)
    return True


def add_regex(selection, text):
    try:
        regex = re.compile(text)
    except re.error as e:
        raise AgentError("regcomp: %s: %s" % (text, e))
    selection.regexes.append(regex)
    return any(regex.search(name) for name in known_names())


def reject_personality(token, optional):
    """NAME@64 and the like: strace's error for a designator it does not know; ours for the
    ones it knows, unless "?" makes an unknown NAME no error."""
    base, designator = token.rsplit("@", 1)
    native = native_abi()
    known = [d for _, d in PERSONALITIES.get(native.name if native else "", ())]
    if designator not in known:
        raise AgentError("incorrect personality designator '%s' in qualification '%s'"
                         % (designator, token))
    if optional and not add_syscall_token(Selection(), base):
        return True
    raise AgentError("personality designators are not supported: '%s'" % token)


@functools.lru_cache(maxsize=None)
def native_abi():
    return abis.native()


@functools.lru_cache(maxsize=None)
def personalities():
    """The Abis of the native architecture's personalities (all Abis when it has none)."""
    native = native_abi()
    if native is None:
        return tuple(abis.ABIS.values())
    return tuple(abis.ABIS[name] for name, _ in PERSONALITIES.get(native.name, ((native.name, ""),))
                 if name in abis.ABIS)


@functools.lru_cache(maxsize=None)
def known_names():
    """Every syscall name of the native personalities."""
    return frozenset(name for abi in personalities() for name in abi.names.values())


# --- sets of other things -------------------------------------------------------------------

class TokenSet(object):
    """A set as signal=, status=, quiet=, read= take it: [!]...none|all|TOKEN[,TOKEN...]."""

    def __init__(self, items=(), everything=False):
        self.items = set(items)
        self.inverted = everything

    def matches(self, item):
        return (item in self.items) != self.inverted

    @classmethod
    def parse(cls, value, convert, what):
        """convert(token) -> item or None; errors read "invalid WHAT 'TOKEN'"."""
        result = cls()
        for token in set_tokens(value, result, what):
            item = convert(token)
            if item is None:
                raise AgentError("invalid %s '%s'" % (what, token))
            result.items.add(item)
        return result


def choice(names, fold=False):
    def convert(token):
        token = token.lower() if fold else token
        return token if token in names else None
    return convert


def descriptor(token):
    return to_uint(token, 0x7FFFFFFF)


def signal_number(token, limit=255):
    """strace's sigstr_to_uint: a number up to limit, or a name with or without SIG in any
    case (SIGRTMIN, SIGRT_1 ... SIGRT_32 included)."""
    if token[:1].isdigit():
        return to_uint(token, limit)
    name = token.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = signals.SIGNUMS.get(name)
    return number if number is not None and number <= limit else None


def to_uint(text, limit):
    """strtol(text, 10) as strace's string_to_uint_upto takes it: leading blanks and a sign
    allowed, nothing after the digits; None when not a number in 0..limit."""
    number, rest = leading_uint(text, limit, "")
    return None if rest else number


def leading_uint(text, limit, endings):
    """(number, rest) for a number at the start of text that may be followed by one of the
    characters in endings; number is None when there is none or it is out of 0..limit."""
    match = re.match(r"\s*([+-]?\d+)", text)
    if not match:
        return None, text
    number, rest = int(match.group(1)), text[match.end():]
    if number < 0 or number > limit or (rest and rest[0] not in endings):
        return None, rest
    return number, rest


# --- inject= and fault= ---------------------------------------------------------------------

class Injection(object):
    """What to do to a syscall (-e inject=, -e fault=). error: errno number to fail with;
    retval: value to return (a signed 64-bit int) -- either way the syscall is not run: its
    number is replaced by -1, or by the number of the %pure syscall named by syscall;
    signal: signal number to deliver at entry; delay_enter/delay_exit: seconds to hold the
    tracee before/after the syscall. when: first, last (inf) and step of the calls hit."""

    def __init__(self):
        self.error = None
        self.retval = None
        self.signal = None
        self.syscall = None
        self.delay_enter = None
        self.delay_exit = None
        self.first, self.last, self.step = 1, INFINITY, 1

    def applies(self, count):
        return (self.first <= count <= self.last and
                (count - self.first) % self.step == 0)

    def has_action(self):
        return (self.error is not None or self.retval is not None or self.signal is not None
                or self.delay_enter is not None or self.delay_exit is not None)


def parse_injection(value, kind, warnings):
    """(Selection, Injection) from SET[:error=E|:retval=V][:signal=S][:syscall=NAME]
    [:delay_enter=T][:delay_exit=T][:when=EXPR]; fault= takes only error, syscall and when
    and defaults to ENOSYS."""
    fail = AgentError("invalid %s argument '%s'" % (kind, value))
    if value[:1] in ("", ":"):
        set_text, options = "", []
    else:
        parts = [part for part in value.split(":") if part]
        set_text, options = parts[0], parts[1:]
    injection = Injection()
    for option in options:
        if not inject_option(injection, option, kind == "fault", warnings):
            raise fail
    selection = parse_syscalls(set_text)
    if not injection.has_action():
        if kind != "fault":
            raise fail
        injection.error = errno_by_name("ENOSYS")
    return selection, injection


def inject_option(injection, option, fault, warnings):
    """Apply one KEY=VALUE; False when strace would reject it."""
    key, _, value = option.partition("=")
    if not _ or (fault and key not in ("error", "when", "syscall")):
        return False
    if key == "when":
        return parse_when(injection, value)
    if key == "error":
        if injection.error is not None or injection.retval is not None:
            return False
        injection.error = errno_number(value)
        return injection.error is not None
    if key == "retval":
        if injection.error is not None or injection.retval is not None:
            return False
        injection.retval = retval_number(value, warnings)
        return injection.retval is not None
    if key == "signal":
        if injection.signal is not None:
            return False
        number = signal_number(value)
        injection.signal = number if number is not None and 1 <= number <= signals.NSIG else None
        return injection.signal is not None
    if key == "syscall":
        if injection.syscall is not None or not substitute_ok(value):
            return False
        injection.syscall = value
        return True
    if key in ("delay_enter", "delay_exit"):
        if getattr(injection, key) is not None:
            return False
        setattr(injection, key, duration(value))
        return getattr(injection, key) is not None
    if key in ("poke_enter", "poke_exit"):
        raise AgentError("inject: %s= is not supported" % key)
    return False


def parse_when(injection, text):
    """first[..last][+[step]]: first and step 1..65535, last first..65534. "F" is the F-th
    call only, "F..L" calls F to L, "F+" every call from F on, "+S" every S-th."""
    first, rest = leading_uint(text, INJECT_MAX, "+.")
    if not first:
        return False
    last = None
    if rest.startswith("."):
        if not rest.startswith(".."):
            return False
        last, rest = leading_uint(rest[2:], INJECT_MAX - 1, "+")
        if last is None or last < first:
            return False
    step = 1
    if rest:
        step = 1 if rest == "+" else to_uint(rest[1:], INJECT_MAX)
        if not step:
            return False
        last = INFINITY if last is None else last
    injection.first, injection.last, injection.step = first, first if last is None else last, step
    return True


def errno_number(text):
    """1..4095, or an errno name in any case (strace's names: EAGAIN, not EWOULDBLOCK)."""
    number = to_uint(text, MAX_ERRNO)
    if number is None:
        number = errno_by_name(text.upper())
    return number if number else None


def errno_by_name(name):
    """The number of an errno name as strace 6.1 knows it, or None."""
    for number, (known, _) in signals.ERRNOS.items():
        if known == name:
            return number
    for number, known in signals.KERNEL_ERRNOS.items():
        if known == name and known not in NOT_IN_STRACE:
            return number
    return None


def retval_number(text, warnings):
    """strtoull(text, 0): decimal, 0x hex or 0 octal, a minus sign wraps around; returned as a
    signed 64-bit value. Warns like strace where the value can be taken for an error or
    does not fit a compat personality."""
    match = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$", text)
    if not match:
        return None
    sign, digits = match.groups()
    base = 16 if digits[:2] in ("0x", "0X") else 8 if digits[:1] == "0" else 10
    value = int(digits, base)
    if value >= 1 << 64:
        return None
    unsigned = -value % (1 << 64) if sign == "-" else value
    low = unsigned & 0xFFFFFFFF
    compat = len(personalities()) > 1
    if unsigned >= (1 << 64) - MAX_ERRNO:
        warnings.append("Inadvertent injection of error %d is possible for retval=%d"
                        % ((1 << 64) - unsigned, unsigned))
    elif compat and low >= (1 << 32) - MAX_ERRNO:
        warnings.append("Inadvertent injection of error %d is possible in compat personality "
                        "for retval=%d" % ((1 << 32) - low, unsigned))
    elif compat and unsigned != low:
        warnings.append("Injected return value %d will be clipped to %d in compat personality"
                        % (unsigned, low))
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


def substitute_ok(name):
    """syscall=NAME: a %pure syscall that every personality has."""
    return name in classes.PURE and all(name in abi.numbers for abi in personalities())


def duration(text):
    """strace's time specification: a number with s, ms, us or ns (default us), in seconds."""
    match = re.match(r"(\d+(?:\.\d*)?|\.\d+)(s|ms|us|ns)?$", text)
    if not match:
        return None
    scale = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, None: 1e-6}[match.group(2)]
    return float(match.group(1)) * scale
