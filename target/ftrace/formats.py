"""Parsing tracefs `format`, `header_page` and `header_event` files, compiling an event
format into one precompiled struct.Struct that unpacks a record's fixed part at once, and
getting several values out of a decoded record with as few Python calls as possible."""

import itertools
import operator
import re
import struct

FIELD_RE = re.compile(r"\s*field:(.*?);\s*offset:(\d+);\s*size:(\d+);\s*(?:signed:(-?\d+);)?")
ARRAY_RE = re.compile(r"^(.*?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*\[(.*?)\]$")
NAME_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)$")
INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


class Field:
    """One field: name, C type, offset, size, signed and its kind:
    "int" (1/2/4/8-byte number), "str" (char array), "array" (array of numbers, count items),
    "data_loc" / "rel_loc" (dynamic data, its element type in elem), "flex" (size 0: the rest
    of the record), "bytes" (anything else)."""

    def __init__(self, decl, offset, size, signed):
        self.decl = decl
        self.offset = offset
        self.size = size
        self.signed = signed
        self.count = 1
        self.elem = None
        self.kind, self.name, self.type = _classify(decl, size, self)

    def __repr__(self):
        return "Field(%s %s off=%d size=%d signed=%d)" % (
            self.kind, self.name, self.offset, self.size, self.signed)


def _classify(decl, size, field):
    decl = decl.strip()
    for loc in ("__data_loc", "__rel_loc"):
        if decl.startswith(loc):
            rest = decl[len(loc):].strip()
            match = ARRAY_RE.match(rest) or re.match(r"^(.*?)\s*([A-Za-z_]\w*)$", rest)
            ctype = match.group(1).strip() if match else rest
            field.elem = ctype
            kind = "data_loc" if loc == "__data_loc" else "rel_loc"
            return kind, match.group(2) if match else rest, ctype
    match = ARRAY_RE.match(decl)
    if match:
        ctype, name = match.group(1).strip(), match.group(2)
        base = ctype.replace("unsigned", "").replace("signed", "").replace("const", "").strip()
        if size == 0:
            return "flex", name, ctype
        if base in ("char", "u8", "unsigned char", "") and "char" in ctype:
            return "str", name, ctype
        count = _count(match.group(3))
        if count and size % count == 0 and size // count in INT_CODES:
            field.count = count
            return "array", name, ctype
        return "bytes", name, ctype
    match = NAME_RE.search(decl)
    name = match.group(1) if match else decl
    ctype = decl[:match.start()].strip() if match else ""
    if size in INT_CODES:
        return "int", name, ctype
    return "bytes", name, ctype


def _count(text):
    try:
        return int(text, 0)
    except ValueError:
        return 0


class Format:
    """An event's format: system, name, id, fields (common first) and the print fmt text."""

    def __init__(self, system, name, event_id, fields, print_fmt):
        self.system = system
        self.name = name
        self.id = event_id
        self.fields = fields
        self.print_fmt = print_fmt
        self.by_name = {f.name: f for f in fields}
        self.common = [f for f in fields if f.name.startswith("common_")]
        self.own = [f for f in fields if not f.name.startswith("common_")]

    def __repr__(self):
        return "Format(%s:%s id=%s)" % (self.system, self.name, self.id)


def parse_format(text, system=None):
    """Parse an events/<system>/<event>/format file. Raises ValueError when it is not one."""
    name = event_id = None
    fields = []
    print_fmt = ""
    for line in text.splitlines():
        if line.startswith("name:"):
            name = line[5:].strip()
        elif line.startswith("ID:"):
            event_id = int(line[3:].strip())
        elif line.startswith("print fmt:"):
            print_fmt = line[len("print fmt:"):].strip()
        else:
            match = FIELD_RE.match(line)
            if match:
                signed = int(match.group(4) or 0)
                fields.append(Field(match.group(1), int(match.group(2)),
                                    int(match.group(3)), 1 if signed > 0 else 0))
    if name is None or event_id is None:
        raise ValueError("not an event format (no name: or ID: line)")
    return Format(system, name, event_id, fields, print_fmt)


def parse_header_page(text):
    """events/header_page -> {"timestamp": (offset, size), "commit": (offset, size),
    "data": (offset, size)}; defaults are those of a 64-bit kernel."""
    layout = {"timestamp": (0, 8), "commit": (8, 8), "data": (16, 4080)}
    for line in text.splitlines():
        match = FIELD_RE.match(line)
        if match:
            name = NAME_RE.search(match.group(1).split("[")[0].strip())
            if name and name.group(1) in layout:
                layout[name.group(1)] = (int(match.group(2)), int(match.group(3)))
    return layout


def parse_header_event(text):
    """events/header_event -> {"type_len_bits", "time_delta_bits", "padding", "time_extend",
    "time_stamp", "data_max"}; defaults are the kernel's since 2.6.30."""
    info = {"type_len_bits": 5, "time_delta_bits": 27, "padding": 29, "time_extend": 30,
            "time_stamp": 31, "data_max": 28}
    for line in text.splitlines():
        match = re.match(r"\s*(\w+)\s*:\s*(\d+) bits", line)
        if match and match.group(1) in ("type_len", "time_delta"):
            info[match.group(1) + "_bits"] = int(match.group(2))
        match = re.match(r"\s*(padding|time_extend|time_stamp)\s*: type == (\d+)", line)
        if match:
            info[match.group(1)] = int(match.group(2))
        match = re.match(r"\s*data max type_len\s*==\s*(\d+)", line)
        if match:
            info["data_max"] = int(match.group(1))
    return info


class Decoder:
    """A format compiled for one byte order: decode(buf, start, end) -> dict of field values.

    Numbers are ints (signed as the format says), char arrays and __data_loc char[] are str,
    other dynamic or flexible data are bytes, number arrays are lists of ints.

    When the Struct's values are the whole record (values_only: numbers, arrays of them,
    fixed-size bytes), values(buf, start, end) gives just them, slots names them and
    record(values) makes decode's dict of them."""

    def __init__(self, fmt, big_endian=False):
        self.format = fmt
        codes = []
        names = []
        pos = 0
        self.strings = []      # index into values of fields holding bytes to turn into str
        self.arrays = []       # (index, count): number arrays, flattened by the Struct
        self.locs = []         # (name, index, relative base or None, as_str)
        self.flex = []         # (name, offset)
        self.slots = []        # per value of the Struct: its field's name, or (name, index)
        for f in sorted(fmt.fields, key=lambda f: f.offset):
            if f.kind == "flex":
                self.flex.append((f.name, f.offset, "char" in f.type))
                continue
            if f.offset < pos:
                continue            # overlapping pseudo field
            if f.offset > pos:
                codes.append("%dx" % (f.offset - pos))
            index = len(names)
            if f.kind == "int":
                code = INT_CODES[f.size]
                codes.append(code if f.signed else code.upper())
            elif f.kind == "array":
                code = INT_CODES[f.size // f.count]
                codes.append("%d%s" % (f.count, code if f.signed else code.upper()))
                self.arrays.append((len(self.slots), f.count))
                self.slots.extend((f.name, i) for i in range(f.count))
            elif f.kind in ("data_loc", "rel_loc"):
                codes.append("I" if f.size == 4 else "%ds" % f.size)
                base = f.offset + f.size if f.kind == "rel_loc" else 0
                self.locs.append((f.name, index, base, "char" in f.elem and f.size == 4))
            else:
                codes.append("%ds" % f.size)
                if f.kind == "str":
                    self.strings.append(index)
            names.append(f.name)
            if f.kind != "array":
                self.slots.append(f.name)
            pos = f.offset + f.size
        self.names = names
        self.struct = struct.Struct(("<" if not big_endian else ">") + "".join(codes))
        self.size = self.struct.size
        self.simple = not (self.strings or self.arrays or self.locs or self.flex)
        # no strings to cut at their NUL, no data past the Struct
        self.values_only = not (self.strings or self.locs or self.flex)
        # decode is a closure over what it needs: no attribute look-ups per record
        if self.simple:
            self.decode = _plain(self.struct.unpack_from, names)
        elif self.values_only:
            self.decode = _recorded(self.struct.unpack_from, self.record)
        else:
            self.decode = self.decode_all
        self.values = _values(self.struct.unpack_from)

    def decode_all(self, buf, start, end):
        """Field values of the record buf[start:end]; raises struct.error when too short."""
        values = self.grouped(self.struct.unpack_from(buf, start))
        for index in self.strings:
            values[index] = cstr(values[index])
        record = dict(zip(self.names, values))
        for name, index, base, as_str in self.locs:
            loc = record[name]
            if not isinstance(loc, int):
                continue
            begin = start + base + (loc & 0xffff)
            data = bytes(buf[begin:min(begin + (loc >> 16), end)])
            record[name] = cstr(data) if as_str else data
        for name, offset, as_str in self.flex:
            data = bytes(buf[start + offset:end])
            record[name] = cstr(data) if as_str else data
        return record

    def grouped(self, values):
        """The Struct's values as a list, each array's elements in one list."""
        values = list(values)
        for index, count in reversed(self.arrays):
            values[index:index + count] = [values[index:index + count]]
        return values

    def record(self, values):
        """The record decode gives, from the Struct's values of a values_only format."""
        return dict(zip(self.names, self.grouped(values)))

    def values_getter(self, refs):
        """A function (the Struct's values) -> the tuple of those refs name (field names, or
        (name, index) of array elements), or None when a ref is not one of the slots."""
        where = {slot: i for i, slot in enumerate(self.slots)}
        if not all(isinstance(ref, (str, tuple)) and ref in where for ref in refs):
            return None
        return tuple_getter([where[ref] for ref in refs])


def _values(unpack):
    """values(buf, start, end): the Struct's values of the record (as decode, the same
    struct.error when too short)."""
    def values(buf, start, end):
        return unpack(buf, start)
    return values


def _plain(unpack, names):
    """decode for formats of numbers (and fixed-size bytes) only."""
    def decode(buf, start, end):
        return dict(zip(names, unpack(buf, start)))
    return decode


def _recorded(unpack, record):
    """decode for the other values_only formats."""
    def decode(buf, start, end):
        return record(unpack(buf, start))
    return decode


def fields_getter(refs):
    """A function record -> the tuple of the values refs point at, each ref a field name,
    (name, index) for an element of a number array, or a function record -> value. Runs of
    names and of elements of one array each take one operator.itemgetter call."""
    parts = []
    for key, run in itertools.groupby(refs, key=_run_key):
        run = list(run)
        if key is None:
            parts.extend(_one(ref) for ref in run)
        elif key == NAMES:
            parts.append(tuple_getter(run))
        else:
            parts.append(_elements(key, [index for _, index in run]))
    get = parts[0] if parts else tuple_getter([])
    for part in parts[1:]:
        get = _concat(get, part)
    return get


NAMES = ("names",)  # the run key of plain field names (never an array's name)


def _run_key(ref):
    if isinstance(ref, str):
        return NAMES
    if isinstance(ref, tuple):
        return ref[0]
    return None


def tuple_getter(names):
    """A function record -> the tuple of these fields' values."""
    if not names:
        return lambda rec: ()
    if len(names) == 1:
        name = names[0]
        return lambda rec: (rec[name],)
    return operator.itemgetter(*names)


def _elements(name, indexes):
    pick = tuple_getter(indexes)
    return lambda rec: pick(rec[name])


def _concat(first, second):
    return lambda rec: first(rec) + second(rec)


def _one(get):
    return lambda rec: (get(rec),)


def cstr(data):
    """C string of bytes up to the first NUL, decoded as UTF-8 (bad bytes replaced)."""
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    return data.decode("utf-8", "replace")
