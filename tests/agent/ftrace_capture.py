"""Test helper: make a capture directory (the recorder's layout, see docs/ftrace-json.md) from
a stopped tracefs instance, reading its own `trace` text first (non-consuming) and then every
per_cpu/cpuN/trace_pipe_raw page without blocking. Not the real recorder: just enough to feed
the decoder with the kernel's data and the kernel's text of the same buffer."""

import errno
import json
import os
import platform

from target.ftrace.recorder import copy

PAGE = 4096


def read_raw(path, page_size=PAGE):
    """Every page trace_pipe_raw hands out now, each padded to page_size."""
    pages = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                data = os.read(fd, page_size)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    break
                raise
            if not data:
                break
            pages.append(data.ljust(page_size, b"\0"))
    finally:
        os.close(fd)
    return b"".join(pages)


def capture(top, instance, out, events, clock="mono"):
    """top, instance: tracefs paths (tracing already stopped); events: "system:event" names.
    Writes out/ and returns it."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(instance, "trace")) as f:
        trace_text = f.read()
    with open(os.path.join(out, "trace.txt"), "w") as f:
        f.write(trace_text)
    cpus = sorted(int(name[3:]) for name in os.listdir(os.path.join(instance, "per_cpu"))
                  if name[3:].isdigit())
    page_size = PAGE
    subbuf = os.path.join(instance, "buffer_subbuf_size_kb")
    if os.path.exists(subbuf):
        with open(subbuf) as f:
            page_size = int(f.read()) * 1024
    for cpu in cpus:
        percpu = os.path.join(instance, "per_cpu", "cpu%d" % cpu)
        with open(os.path.join(out, "cpu%d.raw" % cpu), "wb") as f:
            f.write(read_raw(os.path.join(percpu, "trace_pipe_raw"), page_size))
        copy(os.path.join(percpu, "stats"), os.path.join(out, "stats", "cpu%d" % cpu))
    for name in ("header_page", "header_event"):
        copy(os.path.join(top, "events", name), os.path.join(out, name))
    for name in events:
        system, event = name.split(":")
        copy(os.path.join(top, "events", system, event, "format"),
             os.path.join(out, "formats", system, event, "format"))
    copy(os.path.join(top, "saved_cmdlines"), os.path.join(out, "saved_cmdlines"))
    if os.path.exists(os.path.join(top, "saved_tgids")):
        copy(os.path.join(top, "saved_tgids"), os.path.join(out, "saved_tgids"))
    copy("/proc/kallsyms", os.path.join(out, "kallsyms"))
    meta = {"format": "boardtrace-ftrace", "version": 1, "page_size": page_size,
            "cpus": cpus, "clock": clock, "tracer": "nop", "events": list(events),
            "kernel": platform.release(), "arch": platform.machine(), "long_size": 8,
            "big_endian": False, "lost": {str(c): 0 for c in cpus},
            "instance": os.path.basename(instance), "start_monotonic_ns": 0,
            "stop_monotonic_ns": 0}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    return out
