"""A capture directory (see docs/ftrace-json.md for its layout) -> events in time order.

Each CPU's pages are walked in file order; the CPUs are merged by timestamp the way the
kernel's `trace` iterator does it (the smallest head timestamp first, the lower CPU on a tie),
in lists of items (a page's worth where no other CPU comes between). Items are tuples
(kind, ts, cpu, a, b):
  ("event", ts, cpu, Format, fields)       a decoded record
  ("lost", ts, cpu, count, None)           events lost before this point (count -1: unknown)
  ("corrupt", ts, cpu, page_index, reason) the rest of that page could not be parsed
  ("unknown", ts, cpu, type_id, raw)       a record whose event id has no format here
With as_values, an event whose record is just its Struct's values (formats.Decoder.values_only:
numbers, arrays of them, fixed-size bytes) carries those values instead of a dict of its
fields: text_lines and json_lines then build no dict for it.

text_lines renders them as the kernel's text, json_items as the dicts of the JSON Lines schema,
json_lines as that schema's lines, each event's from a template of its format."""

import heapq
import itertools
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
        # per event id: (Format, function(buf, start, end) -> the record's fields as a dict)
        self.readers = {i: (d.format, d.decode) for i, d in self.decoders.items()}
        # the same, but the Struct's values where that is all the record is (values_only)
        self.value_readers = {i: (d.format, d.values if d.values_only else d.decode)
                              for i, d in self.decoders.items()}
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

    def cpu_pages(self, cpu, as_values=False):
        """The items of one CPU in buffer order, a page at a time: (latest, items), latest
        being no earlier than any of the items' timestamps. as_values: see batches."""
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
                yield self.page_items(cpu, index, page, as_values)
                index += 1

    def cpu_items(self, cpu):
        """The items of one CPU in buffer order."""
        for _, items in self.cpu_pages(cpu):
            yield from items

    def page_items(self, cpu, index, page, as_values=False):
        """(latest, the items of one page)."""
        parsed = ringbuf.parse_page(page, self.layout)
        records = parsed.records
        items = []
        append = items.append
        if parsed.lost is not None:
            append(("lost", records[0][0] if records else parsed.timestamp, cpu, parsed.lost,
                    None))
        readers = self.value_readers if as_values else self.readers
        unpack_type = self.type_struct.unpack_from
        ts = parsed.timestamp
        for ts, start, end in records:
            try:
                reader = readers.get(unpack_type(page, start)[0])
                if reader is None:
                    append(("unknown", ts, cpu, unpack_type(page, start)[0], page[start:end]))
                else:
                    append(("event", ts, cpu, reader[0], reader[1](page, start, end)))
            except struct.error:
                append(("corrupt", ts, cpu, index, "record at %d is shorter than its format"
                        % start))
        if parsed.corrupt:
            append(("corrupt", ts, cpu, index, parsed.corrupt))
        # an absolute timestamp may go back, so the last record need not be the latest
        return (max(records)[0] if records else parsed.timestamp), items

    def batches(self, cpus=None, as_values=False):
        """All items of the chosen CPUs (default: all) in time order, in lists. as_values:
        the events of formats whose decoder is values_only carry the Struct's values instead
        of a dict (see values_decoder)."""
        chosen = self.cpus if not cpus else [c for c in self.cpus if c in cpus]
        return merge([self.cpu_pages(cpu, as_values) for cpu in chosen])

    def values_decoder(self, fmt):
        """The Decoder of fmt if batches(as_values=True) gives its events as values."""
        decoder = self.decoders[fmt.id]
        return decoder if decoder.values_only else None

    def items(self, cpus=None):
        """All items of the chosen CPUs (default: all) merged in time order."""
        return itertools.chain.from_iterable(self.batches(cpus))

    def lost_stats(self):
        """Per-CPU lost counts as meta.json reports them ({cpu: n})."""
        return {int(k): v for k, v in (self.meta.get("lost") or {}).items()}


def merge(streams):
    """Per-CPU streams of (latest, items) pages, in CPU order -> lists of items in time
    order, the smallest timestamp first and the lower CPU on a tie: the order heapq.merge
    gives item by item, but a page's items go in one list while no other CPU's head is
    earlier (on a busy CPU, most of its pages)."""
    pages = [iter(stream) for stream in streams]
    current = [None] * len(pages)      # per stream: [latest, items, position]
    heap = []
    for order, it in enumerate(pages):
        current[order] = _next_page(it)
        if current[order]:
            heap.append((current[order][1][0][1], order))
    heapq.heapify(heap)
    while len(heap) > 1:
        order = heapq.heappop(heap)[1]
        limit, limit_order = heap[0]
        state = current[order]
        latest, items, pos = state
        if latest < limit or (latest == limit and order < limit_order):
            end = len(items)
        else:
            end = _run_end(items, pos + 1, limit, order < limit_order)
        yield items[pos:end] if pos or end < len(items) else items
        if end == len(items):
            state = current[order] = _next_page(pages[order])
            if not state:
                continue
            items, end = state[1], 0
        state[2] = end
        heapq.heappush(heap, (items[end][1], order))
    if heap:
        order = heap[0][1]
        _, items, pos = current[order]
        yield items[pos:] if pos else items
        for _, items in pages[order]:
            if items:
                yield items


def _next_page(pages):
    """[latest, items, 0] of the next page with items, or None at the end."""
    for latest, items in pages:
        if items:
            return [latest, items, 0]
    return None


def _run_end(items, end, limit, tie_first):
    """Where the items before the limit timestamp end (those at it too when tie_first)."""
    size = len(items)
    if tie_first:
        while end < size and items[end][1] <= limit:
            end += 1
    else:
        while end < size and items[end][1] < limit:
            end += 1
    return end


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
    functions = {}    # Format -> its line function
    for batch in capture.batches(cpus, as_values=True):
        for kind, ts, cpu, a, b in batch:
            if kind == "event":
                line = functions.get(a)
                if line is None:
                    line = functions[a] = renderer.line_function(a, capture.values_decoder(a))
                yield line(cpu, ts, b)
            else:
                yield marker_line(kind, cpu, a, b)


def marker_line(kind, cpu, a, b):
    """The line of a lost, corrupt or unknown item."""
    if kind == "lost":
        return text.lost_line(cpu, a)
    if kind == "corrupt":
        return "CPU:%d [CORRUPT PAGE %d: %s]" % (cpu, a, b)
    return "CPU:%d [UNKNOWN EVENT TYPE %d]" % (cpu, a)


def json_items(capture, cpus=None):
    """The capture as dicts of the JSON Lines schema (docs/ftrace-json.md)."""
    renderer = capture.renderer()
    for kind, ts, cpu, a, b in capture.items(cpus):
        if kind == "event":
            yield event_json(renderer, ts, cpu, a, b)
        else:
            yield marker_json(kind, ts, cpu, a, b)


def marker_json(kind, ts, cpu, a, b):
    """The object of a lost, corrupt or unknown item."""
    if kind == "lost":
        return {"type": "lost", "ts": ts, "cpu": cpu, "count": a if a >= 0 else None}
    if kind == "corrupt":
        return {"type": "corrupt", "ts": ts, "cpu": cpu, "page": a, "reason": b}
    return {"type": "unknown", "ts": ts, "cpu": cpu, "id": a, "data": b.hex()}


def json_lines(capture, cpus=None, counts=None):
    """The capture as JSON Lines: byte for byte json_items encoded by DUMPS, but each event
    formatted from a template of its format instead of through a dict. counts, if given,
    ({type: n}) counts the items by type."""
    renderer = capture.renderer()
    functions = {}    # Format -> its line function
    contexts = {}     # (pid, flags, preempt count) -> the keys between "cpu" and "system"
    counts = {"event": 0, "lost": 0, "corrupt": 0, "unknown": 0} if counts is None else counts
    for batch in capture.batches(cpus, as_values=True):
        counts["event"] += len(batch)      # less the other items, below
        for kind, ts, cpu, a, b in batch:
            if kind == "event":
                line = functions.get(a)
                if line is None:
                    line = functions[a] = event_line_function(
                        a, capture.decoders[a.id], renderer, contexts,
                        capture.values_decoder(a) is not None)
                yield line(ts, cpu, b)
            else:
                counts["event"] -= 1
                counts[kind] += 1
                yield DUMPS(marker_json(kind, ts, cpu, a, b))


def event_line_function(fmt, decoder, renderer, contexts, as_values=False):
    """A function (ts, cpu, record) -> the JSON line of an event of fmt (see json_lines);
    as_values: it takes the Struct's values instead (fmt's decoder is values_only)."""
    if as_values:
        line = values_line_function(fmt, decoder, renderer, contexts)
        if line is None:
            by_record = event_line_function(fmt, decoder, renderer, contexts)
            record = decoder.record
            return lambda ts, cpu, values: by_record(ts, cpu, record(values))
        return line
    if not unique_names(fmt):    # the dict keeps one value of each: leave it to json
        return lambda ts, cpu, rec: DUMPS(event_json(renderer, ts, cpu, fmt, rec))
    template, refs = event_template(fmt, decoder)
    values = formats.fields_getter(refs)
    body = renderer.body_function(fmt)

    def line(ts, cpu, rec):
        try:
            key = text.COMMON(rec)
        except KeyError:
            key = text.common(rec)
        context = contexts.get(key) or new_context(renderer, contexts, key)
        try:
            body_text = body(rec)
        except Exception:  # as Renderer.body
            body_text = text.generic(fmt, rec)
        return template % (ts, cpu, context, *values(rec), QUOTE(body_text))
    return line


def values_line_function(fmt, decoder, renderer, contexts):
    """event_line_function on the Struct's values (no dict per event), or None when a field
    needs the record."""
    if not unique_names(fmt):
        return None
    template, refs = event_template(fmt, decoder)
    values = decoder.values_getter(refs)
    get_common = decoder.values_getter(text.COMMON_NAMES)
    if values is None or get_common is None:
        return None
    body = renderer.values_body(fmt, decoder)

    def line(ts, cpu, flat):
        key = get_common(flat)
        context = contexts.get(key) or new_context(renderer, contexts, key)
        return template % (ts, cpu, context, *values(flat), QUOTE(body(flat)))
    return line


def unique_names(fmt):
    names = [f.name for f in fmt.fields]
    return len(set(names)) == len(names)


def event_template(fmt, decoder):
    """(the %-template of fmt's JSON lines, refs of what fills its fields: see
    formats.fields_getter). The template takes ts, cpu, new_context's text, the fields'
    values and the quoted text."""
    present = set(decoder.names) | {name for name, _, _ in decoder.flex}
    slots = []        # JSON text per own field, with %d / %s where its values go
    refs = []
    for f in fmt.own:
        if f.name not in present:
            slots.append("null")
        elif f.kind == "int":
            slots.append("%d")
            refs.append(f.name)
        elif f.kind == "array":
            slots.append("[%s]" % ",".join(["%d"] * f.count))
            refs.extend((f.name, i) for i in range(f.count))
        else:
            slots.append("%s")
            refs.append(json_of(f))
    template = "".join([
        '{"type":"event","ts":%d,"cpu":%d,%s', literal('"system":%s,"event":%s,"fields":{' % (
            DUMPS(fmt.system), DUMPS(fmt.name))),
        ",".join(literal(DUMPS(f.name) + ":") + slot for f, slot in zip(fmt.own, slots)),
        '},"text":%s}'])
    return template, refs


def json_of(field):
    """A function record -> the JSON text of this field's value (a string, or bytes as hex)."""
    name = field.name
    if field.kind == "str":
        return lambda rec: QUOTE(rec[name])
    return lambda rec: json_value(rec[name])


def new_context(renderer, contexts, key):
    """The "pid" to "lat" keys of an event line for key (pid, flags, preempt count)."""
    pid, flags, count = key
    keys = contexts[key] = '"pid":%s,"comm":%s,"flags":%s,"preempt_count":%s,"lat":%s,' % (
        DUMPS(pid), DUMPS(renderer.comm(pid)), DUMPS(flags), DUMPS(count),
        DUMPS(renderer.lat(flags, count)))
    return keys


def literal(text):
    """text inside a %-template."""
    return text.replace("%", "%%")


def json_value(value):
    """JSON text of a field value as event_json puts it (bytes as hex)."""
    return '"%s"' % value.hex() if isinstance(value, bytes) else DUMPS(value)


DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
QUOTE = json.encoder.encode_basestring     # what DUMPS makes of a str


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
            "lat": renderer.lat(flags, count),
            "system": fmt.system, "event": fmt.name, "fields": fields,
            "text": renderer.body(fmt, rec)}
