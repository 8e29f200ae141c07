"""Parsing tracefs `format`, `header_page` and `header_event` files, and compiling an event
format into one precompiled struct.Struct that unpacks a record's fixed part at once."""

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
    other dynamic or flexible data are bytes, number arrays are lists of ints."""

    def __init__(self, fmt, big_endian=False):
        self.format = fmt
        codes = []
        names = []
        pos = 0
        flat = 0               # how many values the Struct yields before this field
        self.strings = []      # index into values of fields holding bytes to turn into str
        self.arrays = []       # (index, count): number arrays, flattened by the Struct
        self.locs = []         # (name, index, relative base or None, as_str)
        self.flex = []         # (name, offset)
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
                self.arrays.append((flat, f.count))
                flat += f.count - 1
            elif f.kind in ("data_loc", "rel_loc"):
                codes.append("I" if f.size == 4 else "%ds" % f.size)
                base = f.offset + f.size if f.kind == "rel_loc" else 0
                self.locs.append((f.name, index, base, "char" in f.elem and f.size == 4))
            else:
                codes.append("%ds" % f.size)
                if f.kind == "str":
                    self.strings.append(index)
            names.append(f.name)
            flat += 1
            pos = f.offset + f.size
        self.names = names
        self.struct = struct.Struct(("<" if not big_endian else ">") + "".join(codes))
        self.size = self.struct.size
        self.simple = not (self.strings or self.arrays or self.locs or self.flex)

    def decode(self, buf, start, end):
        """Field values of the record buf[start:end]; raises struct.error when too short."""
        values = self.struct.unpack_from(buf, start)
        if self.simple:
            return dict(zip(self.names, values))
        values = list(values)
        for index, count in reversed(self.arrays):
            values[index:index + count] = [list(values[index:index + count])]
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


def cstr(data):
    """C string of bytes up to the first NUL, decoded as UTF-8 (bad bytes replaced)."""
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    return data.decode("utf-8", "replace")
