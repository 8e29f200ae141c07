"""A capture directory (see docs/ftrace-json.md for its layout) -> events in time order.

Each CPU's pages are walked in file order; the CPUs are merged by timestamp the way the
kernel's `trace` iterator does it (the smallest head timestamp first, the lower CPU on a tie).
Items are tuples (kind, ts, cpu, a, b):
  ("event", ts, cpu, Format, fields)       a decoded record
  ("lost", ts, cpu, count, None)           events lost before this point (count -1: unknown)
  ("corrupt", ts, cpu, page_index, reason) the rest of that page could not be parsed
  ("unknown", ts, cpu, type_id, raw)       a record whose event id has no format here"""

import heapq
import json
import os
import struct

from target.cli import AgentError
from target.ftrace import formats, ringbuf, text


class Capture:
    """A loaded capture directory: meta, formats by id, page layout, comms, symbols."""

    def __init__(self, path):
        self.path = path
        try:
            with open(os.path.join(path, "meta.json")) as f:
                self.meta = json.load(f)
        except (OSError, ValueError) as e:
            raise AgentError("%s: not a capture directory (meta.json: %s)" % (path, e))
        if self.meta.get("format") != "boardtrace-ftrace":
            raise AgentError("%s: meta.json is not a boardtrace-ftrace capture" % path)
        self.page_size = int(self.meta.get("page_size", 4096))
        self.long_size = int(self.meta.get("long_size", 8))
        self.big_endian = bool(self.meta.get("big_endian", False))
        self.cpus = [int(c) for c in self.meta.get("cpus", [])]
        self.layout = ringbuf.Layout(
            self.page_size, self.long_size, self.big_endian,
            formats.parse_header_page(self.read("header_page")) if self.has("header_page")
            else None,
            formats.parse_header_event(self.read("header_event")) if self.has("header_event")
            else None)
        self.formats = load_formats(os.path.join(path, "formats"))
        self.decoders = {i: formats.Decoder(f, self.big_endian) for i, f in self.formats.items()}
        self.type_struct = struct.Struct(">H" if self.big_endian else "<H")

    def has(self, name):
        return os.path.exists(os.path.join(self.path, name))

    def read(self, name, default=""):
        try:
            with open(os.path.join(self.path, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return default

    def comms(self):
        return parse_cmdlines(self.read("saved_cmdlines"))

    def renderer(self):
        return text.Renderer(self.comms(), text.Symbols(self.read("kallsyms")),
                             self.meta.get("clock", "mono"), self.meta.get("kernel", ""),
                             self.long_size)

    def cpu_items(self, cpu):
        """The items of one CPU in buffer order."""
        path = os.path.join(self.path, "cpu%d.raw" % cpu)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        with f:
            index = 0
            while True:
                page = f.read(self.page_size)
                if not page:
                    break
                yield from self.page_items(cpu, index, page)
                index += 1

    def page_items(self, cpu, index, page):
        parsed = ringbuf.parse_page(page, self.layout)
        records = parsed.records
        if parsed.lost is not None:
            yield ("lost", records[0][0] if records else parsed.timestamp, cpu, parsed.lost,
                   None)
        decoders, unpack_type = self.decoders, self.type_struct.unpack_from
        ts = parsed.timestamp
        for ts, start, end in records:
            try:
                decoder = decoders.get(unpack_type(page, start)[0])
                if decoder is None:
                    yield ("unknown", ts, cpu, unpack_type(page, start)[0], page[start:end])
                else:
                    yield ("event", ts, cpu, decoder.format, decoder.decode(page, start, end))
            except struct.error:
                yield ("corrupt", ts, cpu, index, "record at %d is shorter than its format"
                       % start)
        if parsed.corrupt:
            yield ("corrupt", ts, cpu, index, parsed.corrupt)

    def items(self, cpus=None):
        """All items of the chosen CPUs (default: all) merged in time order."""
        chosen = self.cpus if not cpus else [c for c in self.cpus if c in cpus]
        streams = [self.cpu_items(cpu) for cpu in chosen]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=_ts)

    def lost_stats(self):
        """Per-CPU lost counts as meta.json reports them ({cpu: n})."""
        return {int(k): v for k, v in (self.meta.get("lost") or {}).items()}


def _ts(item):
    return item[1]


def load_formats(root):
    """formats/<system>/<event>/format files -> {id: Format}; unreadable ones are skipped."""
    found = {}
    try:
        systems = sorted(os.listdir(root))
    except OSError:
        return found
    for system in systems:
        try:
            names = sorted(os.listdir(os.path.join(root, system)))
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, system, name, "format")
            try:
                with open(path, errors="replace") as f:
                    fmt = formats.parse_format(f.read(), system)
            except (OSError, ValueError):
                continue
            found[fmt.id] = fmt
    return found


def parse_cmdlines(content):
    """saved_cmdlines text ("pid comm" lines) -> {pid: comm}."""
    comms = {}
    for line in content.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            comms[int(pid)] = comm
    return comms


def text_lines(capture, cpus=None):
    """The capture as the kernel's `trace` lines (without the `#` header)."""
    renderer = capture.renderer()
    line = renderer.line
    for kind, ts, cpu, a, b in capture.items(cpus):
        if kind == "event":
            yield line(cpu, ts, a, b)
        elif kind == "lost":
            yield text.lost_line(cpu, a)
        elif kind == "corrupt":
            yield "CPU:%d [CORRUPT PAGE %d: %s]" % (cpu, a, b)
        else:
            yield "CPU:%d [UNKNOWN EVENT TYPE %d]" % (cpu, a)


def json_items(capture, cpus=None):
    """The capture as dicts of the JSON Lines schema (docs/ftrace-json.md)."""
    renderer = capture.renderer()
    for kind, ts, cpu, a, b in capture.items(cpus):
        if kind == "event":
            yield event_json(renderer, ts, cpu, a, b)
        elif kind == "lost":
            yield {"type": "lost", "ts": ts, "cpu": cpu, "count": a if a >= 0 else None}
        elif kind == "corrupt":
            yield {"type": "corrupt", "ts": ts, "cpu": cpu, "page": a, "reason": b}
        else:
            yield {"type": "unknown", "ts": ts, "cpu": cpu, "id": a, "data": b.hex()}


def event_json(renderer, ts, cpu, fmt, rec):
    pid = rec.get("common_pid", 0)
    flags = rec.get("common_flags", 0)
    count = rec.get("common_preempt_count", 0)
    fields = {}
    for f in fmt.own:
        value = rec.get(f.name)
        fields[f.name] = value.hex() if isinstance(value, bytes) else value
    return {"type": "event", "ts": ts, "cpu": cpu, "pid": pid, "comm": renderer.comm(pid),
            "flags": flags, "preempt_count": count,
            "lat": renderer.flags[flags & 0xff] + text.preempt_columns(count, renderer.migrate),
            "system": fmt.system, "event": fmt.name, "fields": fields,
            "text": renderer.body(fmt, rec)}
