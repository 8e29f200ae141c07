"""Typed decoded values: each renders itself as strace text and as a JSON value.

Decoders build these once per argument; the text and the JSON both come from them, so one
test corpus checks both outputs. JSON shapes are documented in docs/strace-json.md.
"""

from target.strace.quote import quote


class Value(object):
    __slots__ = ()

    def text(self):
        raise NotImplementedError

    def json(self):
        raise NotImplementedError


class Int(Value):
    """A number printed in decimal."""
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def text(self):
        return str(self.n)

    def json(self):
        return self.n


class Hex(Int):
    """A number printed as 0x..., still a number in JSON."""
    __slots__ = ()

    def text(self):
        if self.n >= 0:
            return "%#x" % self.n if self.n else "0"
        return "-%#x" % -self.n


class Oct(Int):
    """A number printed in octal with a leading 0 (modes, umask), at least 3 digits."""
    __slots__ = ()

    def text(self):
        return octal(self.n)


def octal(n):
    return ("0%o" % n).rjust(3, "0") if n else "000"


class Ptr(Value):
    """An address: NULL or 0x...; JSON null or "0x..."."""
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def text(self):
        return "%#x" % self.n if self.n else "NULL"

    def json(self):
        return "%#x" % self.n if self.n else None


class Addr(Ptr):
    """An address returned by mmap or brk: 0x... (0 as 0); JSON "0x..."."""
    __slots__ = ()

    def text(self):
        return "%#x" % self.n if self.n else "0"

    def json(self):
        return "%#x" % self.n


class Str(Value):
    """Bytes from the tracee printed as a C string; more=True prints "..." after it."""
    __slots__ = ("data", "more", "hexmode")

    def __init__(self, data, more=False, hexmode=0):
        self.data = data
        self.more = more
        self.hexmode = hexmode

    def text(self):
        return quote(self.data, self.hexmode) + "..." if self.more else quote(self.data, self.hexmode)

    def json(self):
        try:
            s = self.data.decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": self.data.hex(), "truncated": self.more}
        if self.more:
            return {"str": s, "truncated": True}
        return s


class Const(Value):
    """A symbolic constant (SEEK_SET, AT_FDCWD); name None prints the number."""
    __slots__ = ("name", "n", "fmt")

    def __init__(self, name, n, fmt="%d"):
        self.name = name
        self.n = n
        self.fmt = fmt

    def text(self):
        if self.name is None:
            return self.fmt % self.n if self.n >= 0 or self.fmt == "%d" else "-" + self.fmt % -self.n
        return self.name

    def json(self):
        if self.name is None:
            return self.n
        return {"const": self.name, "value": self.n}


class Flags(Value):
    """A bit set: names joined by |, unknown bits as 0x...; zero prints as zero_name or 0."""
    __slots__ = ("names", "rest", "n", "zero")

    def __init__(self, names, rest, n, zero="0"):
        self.names = names
        self.rest = rest
        self.n = n
        self.zero = zero

    def text(self):
        if self.rest:
            return "|".join(self.names + ["%#x" % self.rest])
        if self.names:
            return "|".join(self.names)
        return self.zero

    def json(self):
        names = list(self.names)
        if self.rest:
            names.append("%#x" % self.rest)
        return {"flags": names, "value": self.n}


class Fd(Value):
    """A file descriptor, with its path under -y: 3</etc/passwd>."""
    __slots__ = ("n", "path")

    def __init__(self, n, path=None):
        self.n = n
        self.path = path

    def text(self):
        if self.path is None:
            return str(self.n)
        return "%d<%s>" % (self.n, self.path)

    def json(self):
        if self.path is None:
            return self.n
        return {"fd": self.n, "path": self.path}


class Struct(Value):
    """{name=value, ...}: fields is a list of (name, Value); a None name prints the value
    alone; more=True ends with ", ..." (abbreviated without -v)."""
    __slots__ = ("fields", "more")

    def __init__(self, fields, more=False):
        self.fields = fields
        self.more = more

    def text(self):
        parts = [v.text() if k is None else k + "=" + v.text() for k, v in self.fields]
        if self.more:
            parts.append("...")
        return "{" + ", ".join(parts) + "}"

    def json(self):
        out = {}
        for k, v in self.fields:
            out[k if k is not None else "_%d" % len(out)] = v.json()
        if self.more:
            out["abbreviated"] = True
        return out


class Array(Value):
    """[a, b, ...]; sep " " for sets like [0 1]; more=True adds "..."."""
    __slots__ = ("items", "more", "sep")

    def __init__(self, items, more=False, sep=", "):
        self.items = items
        self.more = more
        self.sep = sep

    def text(self):
        parts = [v.text() for v in self.items]
        if self.more:
            parts.append("...")
        return "[" + self.sep.join(parts) + "]"

    def json(self):
        out = [v.json() for v in self.items]
        if self.more:
            out.append("...")
        return out


class Ref(Value):
    """A pointer to one value, printed [value]; JSON is the value itself."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def text(self):
        return "[" + self.value.text() + "]"

    def json(self):
        return self.value.json()


class Changed(Value):
    """An in/out value that the call changed: [128 => 16]."""
    __slots__ = ("before", "after")

    def __init__(self, before, after):
        self.before = before
        self.after = after

    def text(self):
        return "[%s => %s]" % (self.before.text(), self.after.text())

    def json(self):
        return {"in": self.before.json(), "out": self.after.json()}


class Named(Value):
    """name=value as an argument (clone's child_stack=NULL); JSON is the value."""
    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name = name
        self.value = value

    def text(self):
        return self.name + "=" + self.value.text()

    def json(self):
        return self.value.json()


class Comment(Value):
    """A value followed by a C comment: 0x7ffd1000 /* 23 vars */."""
    __slots__ = ("value", "comment")

    def __init__(self, value, comment):
        self.value = value
        self.comment = comment

    def text(self):
        return "%s /* %s */" % (self.value.text(), self.comment)

    def json(self):
        return {"value": self.value.json(), "comment": self.comment}


class Raw(Value):
    """Preformatted text (makedev(0x1, 0x3), htons(80)); JSON given separately."""
    __slots__ = ("s", "js")

    def __init__(self, s, js=None):
        self.s = s
        self.js = s if js is None else js

    def text(self):
        return self.s

    def json(self):
        return self.js


NULL = Ptr(0)
