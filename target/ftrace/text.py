"""Rendering decoded events as the kernel's own `trace` file shows them
(kernel/trace/trace_output.c: trace_print_context, trace_print_lat_fmt, the events' print fmt).

Line: `<comm:16>-<pid:-7> [<cpu:03>] <irqs-off><need-resched><hard/softirq><preempt><migrate>
<sec:5>.<usec:06>: <event>: <fields>`. Pointers (%p) print unhashed, as with the instance
option hash-ptr off; the kernel's default hash cannot be reproduced."""

import bisect
import re

from target.ftrace import printfmt

NS_CLOCKS = ("local", "global", "perf", "mono", "mono_raw", "boot", "tai")
PAIR_RE = re.compile(r'\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*"([^"]*)"\s*\}')


def kernel_version(release):
    """'6.18.44-foo' -> (6, 18); (0, 0) when unknown."""
    match = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def flag_table(version):
    """256 strings: the irqs-off, need-resched and hardirq/softirq columns per common_flags.
    Bits: 0x01 irqs off, 0x04 need-resched, 0x08 hardirq, 0x10 softirq, 0x20 preempt-resched,
    0x40 NMI, 0x80 BH off; 0x02 is NEED_RESCHED_LAZY since 6.13, IRQS_NOSUPPORT before
    (checked against this machine's 6.18 `trace`)."""
    lazy = version >= (6, 13)
    table = []
    for f in range(256):
        bh_off = f & 0x80
        if f & 0x01:
            irqs = "D" if bh_off else "d"
        elif bh_off:
            irqs = "b"
        elif not lazy and f & 0x02:
            irqs = "X"
        else:
            irqs = "."
        table.append(irqs + _resched(f, lazy) + _hardsoft(f))
    return table


def _resched(f, lazy):
    need = f & 0x04
    need_lazy = lazy and f & 0x02
    preempt = f & 0x20
    if need and need_lazy and preempt:
        return "B"
    if need and preempt:
        return "N"
    if need_lazy and preempt:
        return "L"
    if need and need_lazy:
        return "b"
    if need:
        return "n"
    if preempt:
        return "p"
    if need_lazy:
        return "l"
    return "."


def _hardsoft(f):
    nmi, hard, soft = f & 0x40, f & 0x08, f & 0x10
    if nmi:
        return "Z" if hard else "z"
    if hard and soft:
        return "H"
    return "h" if hard else "s" if soft else "."


def preempt_columns(count, migrate=True):
    """The preempt-depth (and, since 5.13, migrate-disable) columns."""
    text = "%x" % (count & 0xf) if count & 0xf else "."
    if migrate:
        text += "%x" % (count >> 4) if count & 0xf0 else "."
    return text


UNKNOWN = "__boardtrace_unknown"  # a kallsyms name that says "no symbol known from here on"


class Symbols:
    """Addresses -> names from a kallsyms text, as %ps prints them (no offset; ` [mod]`).
    The text is parsed at the first look-up (most traces never need it)."""

    def __init__(self, text=""):
        self.text = text
        self.addrs = None

    def _load(self, text):
        entries = []
        for order, line in enumerate(text.splitlines()):
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            if not addr:
                continue
            name = parts[2] + (" " + parts[3] if len(parts) > 3 else "")
            entries.append((addr, order, name))
        entries.sort()
        self.addrs = [e[0] for e in entries]
        self.names = [e[2] for e in entries]

    def __call__(self, addr):
        if self.addrs is None:
            self._load(self.text)
            self.text = None
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or not addr or self.names[i] == UNKNOWN:
            return "0x%x" % addr
        first = bisect.bisect_left(self.addrs, self.addrs[i])
        return self.names[first]


class Renderer:
    """Turns (cpu, ts, format, record) into `trace` lines."""

    def __init__(self, comms=None, symbols=None, clock="mono", kernel="", long_size=8):
        self.comms = comms or {}
        self.ksym = symbols or Symbols()
        self.in_ns = clock in NS_CLOCKS
        version = kernel_version(kernel)
        self.flags = flag_table(version)
        self.migrate = version >= (5, 13) or version == (0, 0)
        self.long_bits = long_size * 8
        self.bodies = {}

    def comm(self, pid):
        if pid == 0:
            return "<idle>"
        if pid < 0:
            return "<XXX>"
        return self.comms.get(pid, "<...>")

    def prefix(self, cpu, ts, rec):
        pid = rec.get("common_pid", 0)
        flags = rec.get("common_flags", 0)
        lat = self.flags[flags & 0xff] + preempt_columns(rec.get("common_preempt_count", 0),
                                                         self.migrate)
        if self.in_ns:
            usecs = (ts + 500) // 1000
            return "%16s-%-7d [%03d] %s %5d.%06d: " % (self.comm(pid), pid, cpu, lat,
                                                      usecs // 1000000, usecs % 1000000)
        return "%16s-%-7d [%03d] %s %12d: " % (self.comm(pid), pid, cpu, lat, ts)

    def body(self, fmt, rec):
        """Everything after the prefix: usually `<event>: <fields>`."""
        render = self.bodies.get(fmt.id)
        if render is None:
            render = self.bodies[fmt.id] = self.compile(fmt)
        try:
            return render(rec)
        except Exception:  # an unexpected record layout: print its fields plainly
            return generic(fmt, rec)

    def line(self, cpu, ts, fmt, rec):
        return self.prefix(cpu, ts, rec) + self.body(fmt, rec)

    def compile(self, fmt):
        special = SPECIAL.get(fmt.name)
        if special:
            render = special(fmt, self)
            if render:
                return render
        if fmt.system == "syscalls" and fmt.name.startswith(("sys_enter_", "sys_exit_")):
            return syscall_body(fmt, self.long_bits)
        render = printfmt.compile_print(fmt, self.long_bits, self.ksym)
        if render is None:
            return lambda rec: generic(fmt, rec)
        head = fmt.name + ": "
        return lambda rec: head + render(rec)


def generic(fmt, rec):
    """`name: field=value ...` for events without a known print fmt."""
    parts = []
    for f in fmt.own:
        value = rec.get(f.name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append("%s=%s" % (f.name, value))
    return fmt.name + ": " + " ".join(parts)


def syscall_body(fmt, long_bits):
    """The syscalls:sys_enter_* / sys_exit_* events print like print_syscall_enter/exit
    (arguments below 10 in decimal, others 0x%lx; the return value always 0x%lx)."""
    mask = (1 << long_bits) - 1
    if fmt.name.startswith("sys_exit_"):
        head = "sys_" + fmt.name[len("sys_exit_"):] + " -> 0x%x"
        return lambda rec: head % (rec["ret"] & mask)
    name = "sys_" + fmt.name[len("sys_enter_"):]
    args = [f.name for f in fmt.own if f.name != "__syscall_nr"]
    pattern = name + "(" + ", ".join(a + ": %s" for a in args) + ")"
    return lambda rec: pattern % tuple([_syscall_arg(rec[a] & mask) for a in args])


def _syscall_arg(value):
    return str(value) if value < 10 else "0x%x" % value


def print_body(fmt, renderer):
    """ftrace:print (trace_marker): `<ip symbol>: <text>`, no event name."""
    if "ip" not in fmt.by_name or "buf" not in fmt.by_name:
        return None
    ksym = renderer.ksym

    def render(rec):
        text = rec["buf"]
        if text.endswith("\n"):
            text = text[:-1]
        return "%s: %s" % (ksym(rec["ip"]) if rec["ip"] else "0", text)
    return render


def sched_switch_body(fmt, renderer):
    """sched_switch: prev_state through the task-state table in its print fmt."""
    needed = ("prev_comm", "prev_pid", "prev_prio", "prev_state", "next_comm", "next_pid",
              "next_prio")
    pairs = [(int(k, 0), v) for k, v in PAIR_RE.findall(fmt.print_fmt)]
    if not pairs or not all(n in fmt.by_name for n in needed):
        return None
    report_max = max(bit for bit, _ in pairs) << 1
    mask = report_max - 1

    def render(rec):
        state = rec["prev_state"]
        text = printfmt.flags(state & mask, "|", pairs) if state & mask else "R"
        if state & report_max:
            text += "+"
        return ("sched_switch: prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s ==> "
                "next_comm=%s next_pid=%d next_prio=%d" % (
                    rec["prev_comm"], rec["prev_pid"], rec["prev_prio"], text,
                    rec["next_comm"], rec["next_pid"], rec["next_prio"]))
    return render


def timer_start_body(fmt, renderer):
    """timer_start: its print fmt computes [timeout=expires-now] and splits flags."""
    needed = ("timer", "function", "expires", "bucket_expiry", "now", "flags")
    if not all(n in fmt.by_name for n in needed):
        return None
    pairs = [(int(k, 0), v) for k, v in PAIR_RE.findall(fmt.print_fmt)]
    flag_mask = 0
    for bit, _ in pairs:
        flag_mask |= bit
    bits = renderer.long_bits
    mask, top, ksym = (1 << bits) - 1, 1 << (bits - 1), renderer.ksym
    pointer = "%0" + str(bits // 4) + "x"

    def render(rec):
        timeout = (((rec["expires"] - rec["now"]) & mask) ^ top) - top
        flags = rec["flags"]
        return ("timer_start: timer=" + pointer + " function=%s expires=%d [timeout=%d] "
                "bucket_expiry=%d cpu=%d idx=%d flags=%s") % (
                    rec["timer"], ksym(rec["function"]), rec["expires"], timeout,
                    rec["bucket_expiry"], flags & 0x3ffff, flags >> 22,
                    printfmt.flags(flags & flag_mask, "|", pairs))
    return render


def function_body(fmt, renderer):
    """The function tracer: `func <-parent` (trace_output.c print_fn_trace), no event name."""
    if "ip" not in fmt.by_name or "parent_ip" not in fmt.by_name:
        return None
    ksym = renderer.ksym

    def render(rec):
        if not rec["parent_ip"]:
            return ksym(rec["ip"])
        return "%s <-%s" % (ksym(rec["ip"]), ksym(rec["parent_ip"]))
    return render


SPECIAL = {
    "function": function_body,
    "print": print_body,
    "sched_switch": sched_switch_body,
    "timer_start": timer_start_body,
}


def lost_line(cpu, count):
    """The kernel's line for events lost before a page."""
    if count is None or count < 0:
        return "CPU:%d [LOST EVENTS]" % cpu
    return "CPU:%d [LOST %d EVENTS]" % (cpu, count)
