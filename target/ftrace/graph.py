"""The function_graph tracer's text, as the kernel's `trace` file prints it
(kernel/trace/trace_functions_graph.c, print_graph_function_flags and its helpers).

    CPU  DURATION                  FUNCTION CALLS
     0)               |  vfs_read() {
     0)   0.500 us    |    rw_verify_area();
     0) ! 262.000 us  |  }

A funcgraph_entry immediately followed, in its CPU's buffer, by the funcgraph_exit of the same
function and pid is a leaf: one `func();` line with the exit's duration (get_return_for_leaf);
any other entry opens `func() {` and its exit closes `}` (`} /* func */` when no entry at that
depth was seen, as at the start of the buffer). Other events print as `/* ... */` comments.
The options are the tracer's defaults unless given: funcgraph-cpu, -overhead, -duration and -irqs
on; -proc, -abstime, -tail and -overrun off. The `#` header is not printed (as in text_lines)."""

import heapq
import re

from target.ftrace import text

DEFAULT_OPTIONS = frozenset(("cpu", "overhead", "duration", "irqs"))
INDENT = 2  # TRACE_GRAPH_INDENT
RETFUNC_DEPTH = 50  # FTRACE_RETFUNC_DEPTH
PROCINFO_LENGTH = 14  # TRACE_GRAPH_PROCINFO_LENGTH
SEPARATOR = " ------------------------------------------"
# trace_output.c mark[]: the first threshold the duration (ns) is strictly above
MARKS = ((1000000000, "$"), (100000000, "@"), (10000000, "*"), (1000000, "#"), (100000, "!"),
         (10000, "+"))
FILL_FULL = "              |  "
ENTRY, EXIT = "funcgraph_entry", "funcgraph_exit"
# events the graph printer leaves to the normal line printer (TRACE_FN, TRACE_STACK)
NOT_COMMENTS = ("function", "kernel_stack")
IRQ_RE = re.compile(r"^([0-9a-fA-F]+)\s+\S+\s+__irqentry_text_(start|end)\s*$", re.M)


def find_mark(duration):
    """trace_find_mark: the overhead marker of a duration in ns."""
    for value, sym in MARKS:
        if duration > value:
            return sym
    return " "


def duration_text(duration, long_bits=64):
    """trace_print_graph_duration: `usecs.nsecs us ` padded to the column (at most 7 digits:
    the fraction shrinks as the microseconds grow)."""
    usecs, nsecs = divmod(duration, 1000)
    digits = str(usecs & ((1 << long_bits) - 1))
    length = len(digits)
    if length < 7:
        frac = ("%03d" % nsecs)[:min(5, 8 - length) - 1]
        digits += "." + frac
        length += len(frac) + 1
    return digits + " us " + " " * max(0, 8 - length)


def proc_text(comm, pid):
    """print_graph_proc: `comm-pid` (comm cut to 7 characters) centred in 14 columns."""
    label = "%s-%d" % (comm[:7], pid)
    spaces = max(0, PROCINFO_LENGTH - len(label))
    return " " * (spaces // 2) + label + " " * (spaces - spaces // 2)


def irq_range(kallsyms):
    """(__irqentry_text_start, __irqentry_text_end) from a kallsyms text, or None."""
    found = {}
    for addr, which in IRQ_RE.findall(kallsyms or ""):
        found.setdefault(which, int(addr, 16))
    if "start" in found and "end" in found and found["start"] < found["end"]:
        return found["start"], found["end"]
    return None


def cpu_width(cpus):
    """max_bytes_for_cpu: the digits of the highest CPU number (nr_cpu_ids - 1)."""
    return len(str(max(cpus))) if cpus else 1


class _Merge:
    """The CPUs' item streams merged by timestamp (the lower CPU on a tie), like the kernel's
    trace iterator, with a look at the next item of the current item's CPU (peek/take)."""

    def __init__(self, streams):
        self.iters = []
        self.heads = []
        self.heap = []
        for order, items in enumerate(streams):
            it = iter(items)
            self.iters.append(it)
            head = next(it, None)
            self.heads.append(head)
            if head is not None:
                self.heap.append((head[1], order))
        heapq.heapify(self.heap)
        self.cur = None

    def __iter__(self):
        heap = self.heap
        while heap:
            order = heap[0][1]
            item = self.heads[order]
            self.cur = order
            self.heads[order] = next(self.iters[order], None)
            yield item
            head = self.heads[order]
            if head is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (head[1], order))

    def peek(self):
        """The next item of the current CPU (None at its end)."""
        return self.heads[self.cur]

    def take(self):
        """Consume the peeked item (a leaf's exit)."""
        self.heads[self.cur] = next(self.iters[self.cur], None)


class _CpuState:
    __slots__ = ("last_pid", "depth", "depth_irq", "enter_funcs")

    def __init__(self):
        self.last_pid = -1
        self.depth = 0
        self.depth_irq = -1
        self.enter_funcs = {}


class GraphPrinter:
    """Items (kind, ts, cpu, format, fields) of a function_graph capture -> `trace` lines."""

    def __init__(self, renderer, width=1, irqs=None, options=DEFAULT_OPTIONS):
        self.renderer = renderer
        self.ksym = renderer.ksym
        self.width = width
        self.irqs = irqs
        self.opts = frozenset(options)
        self.cpus = {}

    def lines(self, streams):
        """streams: one iterable of items per CPU, in CPU order. Yields lines (without \\n)."""
        merge = _Merge(streams)
        for item in merge:
            kind, ts, cpu, fmt, rec = item
            if kind == "event":
                out = []
                if fmt.name == ENTRY:
                    self.entry(out, merge, ts, cpu, rec)
                elif fmt.name == EXIT:
                    self.exit(out, ts, cpu, rec)
                elif fmt.name in NOT_COMMENTS:
                    out.append(self.renderer.line(cpu, ts, fmt, rec))
                else:
                    self.comment(out, ts, cpu, fmt, rec)
                for line in out:
                    yield line
            elif kind == "lost":
                yield text.lost_line(cpu, fmt)
            elif kind == "corrupt":
                yield "CPU:%d [CORRUPT PAGE %d: %s]" % (cpu, fmt, rec)
            else:
                yield "CPU:%d [UNKNOWN EVENT TYPE %d]" % (cpu, fmt)

    # -- pieces ---------------------------------------------------------------------------------

    def state(self, cpu):
        st = self.cpus.get(cpu)
        if st is None:
            st = self.cpus[cpu] = _CpuState()
        return st

    def cpu_text(self, cpu):
        return " %*d) " % (self.width, cpu)

    def context(self, ts, cpu, pid):
        """The columns before the duration: abstime, CPU, proc."""
        head = ""
        if "abstime" in self.opts:
            head += "%5d.%06d |  " % (ts // 1000000000, ts % 1000000000 // 1000)
        if "cpu" in self.opts:
            head += self.cpu_text(cpu)
        if "proc" in self.opts:
            head += proc_text(self.renderer.comm(pid), pid) + " | "
        return head

    def duration(self, nsecs):
        if "duration" not in self.opts:
            return ""
        mark = find_mark(nsecs) if "overhead" in self.opts else " "
        return mark + " " + duration_text(nsecs, self.renderer.long_bits) + "|  "

    def fill(self):
        return FILL_FULL if "duration" in self.opts else ""

    def verif_pid(self, out, cpu, pid):
        """The task-switch separator when the pid on this CPU changes."""
        st = self.state(cpu)
        prev = st.last_pid
        if prev == pid:
            return
        st.last_pid = pid
        if prev == -1:
            return
        comm = self.renderer.comm
        out.append(SEPARATOR)
        out.append(self.cpu_text(cpu) + proc_text(comm(prev), prev) + " => " +
                   proc_text(comm(pid), pid))
        out.append(SEPARATOR)
        out.append("")

    def in_irq_text(self, addr):
        return self.irqs is not None and self.irqs[0] <= addr < self.irqs[1]

    def irq(self, out, ts, cpu, pid, addr, enter):
        """print_graph_irq: `==========>` / `<==========` around irq entry functions."""
        if not self.in_irq_text(addr):
            return
        arrow = "==========>" if enter else "<=========="
        if "duration" in self.opts:
            arrow = "  " + arrow + " |"
        out.append(self.context(ts, cpu, pid) + arrow)

    # -- the records ----------------------------------------------------------------------------

    def entry(self, out, merge, ts, cpu, rec):
        pid = rec.get("common_pid", 0)
        func, depth = rec["func"], rec["depth"]
        st = self.state(cpu)
        if "irqs" not in self.opts:  # check_irq_entry
            if st.depth_irq >= 0:
                return
            if self.in_irq_text(func):
                st.depth_irq = depth
                return
        self.verif_pid(out, cpu, pid)
        self.irq(out, ts, cpu, pid, func, True)
        head = self.context(ts, cpu, pid)
        indent = " " * (depth * INDENT) if depth > 0 else ""
        nxt = merge.peek()
        if (nxt is not None and nxt[0] == "event" and nxt[3].name == EXIT and
                nxt[4].get("common_pid", 0) == pid and nxt[4]["func"] == func):
            merge.take()
            ret = nxt[4]
            st.depth = depth - 1
            if 0 <= depth < RETFUNC_DEPTH:
                st.enter_funcs[depth] = 0
            out.append(head + self.duration(ret["rettime"] - ret["calltime"]) + indent +
                       self.ksym(ret["func"]) + "();")
            self.irq(out, ts, cpu, pid, ret["func"], False)
        else:
            st.depth = depth
            if 0 <= depth < RETFUNC_DEPTH:
                st.enter_funcs[depth] = func
            out.append(head + self.fill() + indent + self.ksym(func) + "() {")

    def exit(self, out, ts, cpu, rec):
        pid = rec.get("common_pid", 0)
        func, depth = rec["func"], rec["depth"]
        st = self.state(cpu)
        if "irqs" not in self.opts and st.depth_irq != -1:  # check_irq_return
            if st.depth_irq >= depth:
                st.depth_irq = -1
            return
        st.depth = depth - 1
        match = True
        if 0 <= depth < RETFUNC_DEPTH:
            match = st.enter_funcs.get(depth, 0) == func
            st.enter_funcs[depth] = 0
        self.verif_pid(out, cpu, pid)
        indent = " " * (depth * INDENT) if depth > 0 else ""
        close = "}" if match and "tail" not in self.opts else "} /* %s */" % self.ksym(func)
        out.append(self.context(ts, cpu, pid) +
                   self.duration(rec["rettime"] - rec["calltime"]) + indent + close)
        if "overrun" in self.opts:
            out.append(" (Overruns: %u)" % rec.get("overrun", 0))
        self.irq(out, ts, cpu, pid, func, False)

    def comment(self, out, ts, cpu, fmt, rec):
        """print_graph_comment: any other event as `/* event: fields */` at the current depth."""
        pid = rec.get("common_pid", 0)
        depth = self.state(cpu).depth
        self.verif_pid(out, cpu, pid)
        if fmt.system == "ftrace" and fmt.name == "print" and "buf" in rec:
            body = rec["buf"]  # trace_print_printk_msg_only: the message alone
        else:
            body = self.renderer.body(fmt, rec)
        if body.endswith("\n"):
            body = body[:-1]
        indent = " " * ((depth + 1) * INDENT) if depth > 0 else ""
        out.append(self.context(ts, cpu, pid) + self.fill() + indent + "/* " + body + " */")


def text_lines(capture, cpus=None):
    """A function_graph capture as the kernel's `trace` lines (without the `#` header)."""
    chosen = capture.cpus if not cpus else [c for c in capture.cpus if c in cpus]
    printer = GraphPrinter(capture.renderer(), cpu_width(capture.cpus),
                           irq_range(capture.read("kallsyms")))
    return printer.lines([capture.cpu_items(cpu) for cpu in chosen])
