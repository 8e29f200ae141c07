"""Test helper: make a capture directory from a stopped tracefs instance, with the kernel's own
`trace` text of the same buffer next to it (trace.txt): the text is read first (it does not
consume), then the recorder's own drain and metadata copy the pages and the rest."""

import os

from target.ftrace import recorder
from target.ftrace.tracefs import Tracefs


def capture(top, instance, out, events, clock="mono"):
    """top, instance: tracefs paths (tracing already stopped); events: "system:event" names.
    Writes out/ and returns it."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(instance, "trace")) as f:
        trace_text = f.read()
    with open(os.path.join(out, "trace.txt"), "w") as f:
        f.write(trace_text)
    top_fs, inst_fs = Tracefs(top), Tracefs(instance)
    pages = recorder.Recorder(inst_fs, out)
    try:
        pages.drain()
    finally:
        pages.close()
    recorder.write_metadata(top_fs, inst_fs, out, {
        "tracer": "nop", "events": list(events), "clock": clock, "cpus": pages.cpus,
        "page_size": pages.page_size, "start_monotonic_ns": 0, "stop_monotonic_ns": 0,
        "needs_symbols": True})
    return out
