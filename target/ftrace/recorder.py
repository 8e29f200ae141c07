"""Copy an instance's per-CPU trace_pipe_raw pages into a capture directory, undecoded,
with the metadata a decoder needs (see the capture directory contract in DESIGN notes:
meta.json, cpuN.raw, stats/, header_page, header_event, formats/, saved_cmdlines, ...)."""

import json
import os
import re
import select
import sys
import time

from target.arch import interpreter_arch
from target.ftrace.text import UNKNOWN

FUNCTION_TRACERS = ("function", "function_graph")


def page_size(instance):
    """The ring-buffer sub-buffer size: buffer_subbuf_size_kb (6.8+) or the page size."""
    try:
        return int(instance.read("buffer_subbuf_size_kb").split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return os.sysconf("SC_PAGE_SIZE")


def cpus(instance):
    names = os.listdir(instance.file("per_cpu"))
    return sorted(int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdigit())


def long_size(top):
    """The kernel's long size, from the size of the commit field of header_page."""
    match = re.search(r"commit;\s*offset:\d+;\s*size:(\d+);", top.read("events/header_page"))
    return int(match.group(1)) if match else 8


def stats(instance, cpu):
    """per_cpu/cpuN/stats as {key: int} (non-numeric values are skipped)."""
    result = {}
    for line in instance.read("per_cpu/cpu%d/stats" % cpu).splitlines():
        key, _, value = line.partition(":")
        try:
            result[key.strip()] = int(value.split()[0])
        except (ValueError, IndexError):
            pass
    return result


def lost(instance, cpu):
    s = stats(instance, cpu)
    return s.get("overrun", 0) + s.get("dropped events", 0)


class Recorder:
    """One non-blocking reader per CPU, all driven by one select loop."""

    def __init__(self, instance, out):
        self.instance = instance
        self.out = out
        self.page_size = page_size(instance)
        self.cpus = cpus(instance)
        self.fds = {}
        self.files = {}
        self.pages = dict.fromkeys(self.cpus, 0)
        # Pages per CPU per wake-up, at most what the buffer holds: while tracing is on, our
        # own reads add events (raw_syscalls...) and partial pages come out, so reading
        # "until empty" would never end.
        try:
            self.per_wakeup = max(1, int(instance.read("buffer_size_kb").split()[0]) * 1024
                                  // self.page_size)
        except (OSError, ValueError, IndexError):
            self.per_wakeup = 256
        os.makedirs(out, exist_ok=True)
        for cpu in self.cpus:
            path = instance.file("per_cpu/cpu%d/trace_pipe_raw" % cpu)
            self.fds[os.open(path, os.O_RDONLY | os.O_NONBLOCK)] = cpu
            self.files[cpu] = open(os.path.join(out, "cpu%d.raw" % cpu), "wb")

    def read_cpu(self, fd, limit=None):
        """Copy every page this CPU has now (at most limit). Returns how many."""
        cpu = self.fds[fd]
        count = 0
        while limit is None or count < limit:
            try:
                page = os.read(fd, self.page_size)
            except BlockingIOError:
                break
            if not page:
                break
            if len(page) < self.page_size:
                page += bytes(self.page_size - len(page))
            self.files[cpu].write(page)
            count += 1
        self.pages[cpu] += count
        return count

    def poll(self, timeout):
        """Wait up to timeout for a CPU with data (the kernel wakes readers when the
        buffer reaches buffer_percent) and copy its pages."""
        try:
            ready, _, _ = select.select(list(self.fds), [], [], timeout)
        except InterruptedError:
            return 0
        return sum(self.read_cpu(fd, self.per_wakeup) for fd in ready)

    def drain(self, limit=None):
        """Copy everything left; partial pages come out too. limit: pages per CPU, so that
        a buffer still being written cannot keep us here forever."""
        return sum(self.read_cpu(fd, limit) for fd in list(self.fds))

    def close(self):
        for fd in self.fds:
            os.close(fd)
        for f in self.files.values():
            f.close()
        self.fds, self.files = {}, {}


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)


def copy_optional(src, dst):
    try:
        copy(src, dst)
        return True
    except OSError:
        return False


def prints_symbols(out, events):
    """Whether an enabled event prints kernel addresses as symbols (%ps, %pS: timer
    functions...): the decoder then needs kallsyms to print what the kernel prints."""
    for name in events:
        try:
            with open(os.path.join(out, "formats", *name.split(":", 1), "format")) as f:
                text = f.read()
        except OSError:
            continue
        if "%ps" in text or "%pS" in text or "%pf" in text:
            return True
    return False


def write_marker_symbol(dst):
    """A kallsyms of one function, tracing_mark_write (the ip of every trace_marker write),
    bounded by the symbol after it, named text.UNKNOWN: enough to print markers as the kernel
    does without copying megabytes of kallsyms."""
    found = None
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                if found is not None:
                    with open(dst, "w") as out:
                        out.write(found + line.split()[0] + " t " + UNKNOWN + "\n")
                    return
                if line.endswith(" tracing_mark_write\n"):
                    found = line
    except OSError:
        pass


def write_metadata(top, instance, out, info):
    """Everything but the pages: formats, headers, cmdlines, stats, meta.json.
    info: tracer, events, clock, cpus, page_size, start/stop times, needs_symbols."""
    copy(top.file("events/header_page"), os.path.join(out, "header_page"))
    copy(top.file("events/header_event"), os.path.join(out, "header_event"))
    events = list(info["events"])
    ftrace_dir = top.file("events/ftrace")
    ftrace = ["ftrace:" + e for e in sorted(os.listdir(ftrace_dir))] \
        if os.path.isdir(ftrace_dir) else []
    for name in events + ftrace:
        system, event = name.split(":", 1)
        rel = os.path.join(system, event, "format")
        copy_optional(top.file(os.path.join("events", rel)), os.path.join(out, "formats", rel))
    copy(top.file("saved_cmdlines"), os.path.join(out, "saved_cmdlines"))
    copy_optional(top.file("saved_tgids"), os.path.join(out, "saved_tgids"))
    if info.get("needs_symbols") or prints_symbols(out, events):
        copy_optional("/proc/kallsyms", os.path.join(out, "kallsyms"))
        copy_optional(top.file("printk_formats"), os.path.join(out, "printk_formats"))
    else:
        write_marker_symbol(os.path.join(out, "kallsyms"))
    losses = {}
    for cpu in info["cpus"]:
        copy_optional(instance.file("per_cpu/cpu%d/stats" % cpu),
                      os.path.join(out, "stats", "cpu%d" % cpu))
        losses[str(cpu)] = lost(instance, cpu)
    meta = {
        "format": "boardtrace-ftrace", "version": 1, "page_size": info["page_size"],
        "cpus": info["cpus"], "clock": info["clock"], "tracer": info["tracer"],
        "events": events, "kernel": os.uname().release, "arch": interpreter_arch(),
        "long_size": long_size(top), "big_endian": sys.byteorder == "big",
        "lost": losses,
        "instance": None if instance.path == top.path else os.path.basename(instance.path),
        "start_monotonic_ns": info["start_monotonic_ns"],
        "stop_monotonic_ns": info["stop_monotonic_ns"],
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return meta


def report_lost(meta, stream=sys.stderr):
    """One line on stderr per CPU that lost events; returns the total."""
    total = 0
    for cpu, count in sorted(meta["lost"].items(), key=lambda kv: int(kv[0])):
        if count:
            print("ftrace: cpu%s lost %d events (buffer overrun; try a larger -b)"
                  % (cpu, count), file=stream)
            total += count
    return total


def record(top, instance, out, info, should_stop, started=None, interval=0.5):
    """Turn tracing on in the instance, call started(), copy pages until should_stop(),
    turn it off, drain, write the metadata. Returns meta (with "pages": per-CPU counts)."""
    rec = Recorder(instance, out)
    try:
        info = dict(info, cpus=rec.cpus, page_size=rec.page_size,
                    start_monotonic_ns=time.monotonic_ns())
        instance.write("tracing_on", "1")
        if started:
            started()
        while not should_stop():
            rec.poll(interval)
        instance.write("tracing_on", "0")
        info["stop_monotonic_ns"] = time.monotonic_ns()
        rec.drain()
    finally:
        rec.close()
    meta = write_metadata(top, instance, out, info)
    return dict(meta, pages=rec.pages)


def extract(top, instance, out, info):
    """Copy what a (flight-recorder) instance holds now, without changing tracing_on."""
    rec = Recorder(instance, out)
    try:
        info = dict(info, cpus=rec.cpus, page_size=rec.page_size,
                    start_monotonic_ns=None, stop_monotonic_ns=time.monotonic_ns())
        kb = int(instance.read("buffer_size_kb").split()[0])
        rec.drain(limit=kb * 1024 // rec.page_size + 2)
    finally:
        rec.close()
    meta = write_metadata(top, instance, out, info)
    return dict(meta, pages=rec.pages)
