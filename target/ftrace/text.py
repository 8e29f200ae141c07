"""Rendering decoded events as the kernel's own `trace` file shows them
(kernel/trace/trace_output.c: trace_print_context, trace_print_lat_fmt, the events' print fmt).

Line: `<comm:16>-<pid:-7> [<cpu:03>] <irqs-off><need-resched><hard/softirq><preempt><migrate>
<sec:5>.<usec:06>: <event>: <fields>`. Pointers (%p) print unhashed, as with the instance
option hash-ptr off; the kernel's default hash cannot be reproduced."""

import bisect
import operator
import re

from target.ftrace import formats, printfmt

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


def is_mapping_symbol(name):
    """ARM's $a/$d/$t and local labels: /proc/kallsyms lists them for modules, but the
    kernel's own look-up skips them (is_mapping_symbol in include/linux/module_symbol.h)."""
    return name.startswith(("$", ".L", "L0"))


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
            if not addr or is_mapping_symbol(parts[2]):
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
        self.bodies = {}   # format id -> body function
        self.lines = {}    # format id -> line function
        self.heads = {}    # (pid, flags, preempt count, cpu) -> line head

    def comm(self, pid):
        if pid == 0:
            return "<idle>"
        if pid < 0:
            return "<XXX>"
        return self.comms.get(pid, "<...>")

    def lat(self, flags, count):
        """The five latency columns, e.g. `dN.4.`."""
        return self.flags[flags & 0xff] + preempt_columns(count, self.migrate)

    def head(self, key):
        """`<comm>-<pid> [<cpu>] <lat> ` for key (pid, flags, preempt count, cpu)."""
        head = self.heads.get(key)
        if head is None:
            pid, flags, count, cpu = key
            head = self.heads[key] = "%16s-%-7d [%03d] %s " % (self.comm(pid), pid, cpu,
                                                               self.lat(flags, count))
        return head

    def prefix(self, cpu, ts, rec):
        head = self.head(common(rec) + (cpu,))
        if self.in_ns:
            usecs = (ts + 500) // 1000
            return "%s%5d.%06d: " % (head, usecs // 1000000, usecs % 1000000)
        return "%s%12d: " % (head, ts)

    def body(self, fmt, rec):
        """Everything after the prefix: usually `<event>: <fields>`."""
        render = self.body_function(fmt)
        try:
            return render(rec)
        except Exception:  # an unexpected record layout: print its fields plainly
            return generic(fmt, rec)

    def body_function(self, fmt):
        """The compiled body of fmt's events (it may raise on an unexpected record)."""
        render = self.bodies.get(fmt.id)
        if render is None:
            render = self.bodies[fmt.id] = self.compile(fmt)
        return render

    def line(self, cpu, ts, fmt, rec):
        write = self.lines.get(fmt.id)
        if write is None:
            write = self.lines[fmt.id] = self.line_function(fmt)
        return write(cpu, ts, rec)

    def line_function(self, fmt, decoder=None):
        """A function (cpu, ts, record) -> the `trace` line of an event of fmt: the head of
        the line comes from a cache, as a capture holds few (pid, flags, cpu) combinations.
        With the Decoder of a values_only format, it takes the Struct's values instead."""
        if decoder is not None:
            return self.values_line_function(fmt, decoder)
        body, heads, new_head, in_ns = self.body_function(fmt), self.heads, self.head, self.in_ns

        def line(cpu, ts, rec):
            try:
                key = COMMON(rec) + (cpu,)
            except KeyError:
                key = common(rec) + (cpu,)
            head = heads.get(key) or new_head(key)
            try:
                body_text = body(rec)
            except Exception:  # an unexpected record layout: print its fields plainly
                body_text = generic(fmt, rec)
            if in_ns:
                usecs = (ts + 500) // 1000
                return "%s%5d.%06d: %s" % (head, usecs // 1000000, usecs % 1000000, body_text)
            return "%s%12d: %s" % (head, ts, body_text)
        return line

    def values_line_function(self, fmt, decoder):
        """line_function on the Struct's values: no dict per event."""
        get_common = decoder.values_getter(COMMON_NAMES)
        if get_common is None:
            by_record, record = self.line_function(fmt), decoder.record
            return lambda cpu, ts, values: by_record(cpu, ts, record(values))
        body, heads, new_head = self.values_body(fmt, decoder), self.heads, self.head
        in_ns = self.in_ns

        def line(cpu, ts, values):
            key = get_common(values) + (cpu,)
            head = heads.get(key) or new_head(key)
            if in_ns:
                usecs = (ts + 500) // 1000
                return "%s%5d.%06d: %s" % (head, usecs // 1000000, usecs % 1000000,
                                           body(values))
            return "%s%12d: %s" % (head, ts, body(values))
        return line

    def values_body(self, fmt, decoder):
        """body as a function of the Struct's values of a values_only format (it does not
        raise: what the print fmt formats straight from the values cannot fail)."""
        render = None if self.special(fmt) else printfmt.compile_print(
            fmt, self.long_bits, self.ksym, fmt.name + ": ", decoder)
        if render:
            return render
        body, record = self.body, decoder.record
        return lambda values: body(fmt, record(values))

    def compile(self, fmt):
        return self.special(fmt) or printfmt.compile_print(
            fmt, self.long_bits, self.ksym, fmt.name + ": ") or generic_body(fmt)

    def special(self, fmt):
        """The hand-written printer of fmt's events, or None."""
        special = SPECIAL.get(fmt.name)
        render = special(fmt, self) if special else None
        if render is None and fmt.system == "syscalls" and fmt.name.startswith(
                ("sys_enter_", "sys_exit_")):
            render = syscall_body(fmt, self.long_bits)
        return render


COMMON_NAMES = ("common_pid", "common_flags", "common_preempt_count")
COMMON = operator.itemgetter(*COMMON_NAMES)


def common(rec):
    """(pid, flags, preempt count) of a record; 0 for those it lacks."""
    return (rec.get("common_pid", 0), rec.get("common_flags", 0),
            rec.get("common_preempt_count", 0))


def generic(fmt, rec):
    """`name: field=value ...` for events without a known print fmt."""
    parts = []
    for f in fmt.own:
        parts.append("%s=%s" % (f.name, generic_value(rec.get(f.name))))
    return fmt.name + ": " + " ".join(parts)


def generic_value(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def generic_body(fmt):
    """generic compiled for fmt: one template, numbers and strings put in as they are."""
    template = _literal(fmt.name) + ": " + " ".join(_literal(f.name) + "=%s" for f in fmt.own)
    refs = [f.name if f.kind in ("int", "str") else _generic_getter(f.name) for f in fmt.own]
    values = formats.fields_getter(refs)
    return lambda rec: template % values(rec)


def _generic_getter(name):
    return lambda rec: generic_value(rec.get(name))


def _literal(text):
    return text.replace("%", "%%")


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
