"""Write a capture directory as a trace.dat file (version 6) for trace-cmd and KernelShark.

Layout (trace-cmd.dat.v6(5)): magic and "tracing", version "6", endianness, long size and
page size; header_page and header_event; the ftrace event formats; the other event systems
with their formats; kallsyms; printk_formats; saved_cmdlines; the CPU count; options
(TRACECLOCK, UNAME, one CPUSTAT per CPU); "flyrecord" with each CPU's offset and size; the
trace clock (read by trace-cmd because of the TRACECLOCK option); padding; then each CPU's
ring-buffer pages, untouched and page-aligned.

Numbers are in the capture's byte order. The file is written under a temporary name in
the destination directory and renamed when complete, so a failure leaves nothing behind.
"""

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from host.errors import BoardtraceError

MAGIC = b"\x17\x08\x44tracing"
VERSION = b"6\0"
OPTION_CPUSTAT = 2
OPTION_TRACECLOCK = 4
OPTION_UNAME = 5
REQUIRED_META = ("page_size", "cpus", "clock", "long_size", "big_endian")


class Capture:
    """A validated capture directory: paths and metadata, nothing read but meta.json."""

    def __init__(self, root):
        self.root = Path(root)
        self.meta = self._meta()
        self.page_size = self.meta["page_size"]
        self.cpus = self.meta["cpus"]
        self.order = ">" if self.meta["big_endian"] else "<"

    def fail(self, what):
        raise BoardtraceError(f"capture {self.root}: {what}")

    def _meta(self):
        path = self.root / "meta.json"
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            self.fail("no meta.json (not a capture directory?)")
        except (OSError, ValueError) as e:
            self.fail(f"meta.json unreadable: {e}")
        if not isinstance(meta, dict) or meta.get("format") != "boardtrace-ftrace":
            self.fail("meta.json is not a boardtrace-ftrace capture")
        missing = [key for key in REQUIRED_META if key not in meta]
        if missing:
            self.fail("meta.json lacks " + ", ".join(missing))
        if meta["long_size"] not in (4, 8):
            self.fail(f"meta.json long_size {meta['long_size']!r} is not 4 or 8")
        size = meta["page_size"]
        if not isinstance(size, int) or size < 64 or size & (size - 1):
            self.fail(f"meta.json page_size {size!r} is not a power of two")
        cpus = meta["cpus"]
        if not cpus or not all(isinstance(c, int) and 0 <= c < 4096 for c in cpus):
            self.fail(f"meta.json cpus {cpus!r} is not a list of CPU numbers")
        return meta

    def read(self, name, required=True):
        """Bytes of a file of the capture; b"" for an absent optional file."""
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            if required:
                self.fail(f"{name} is missing")
            return b""
        except OSError as e:
            self.fail(f"{name}: {e.strerror}")

    def raw_path(self, cpu):
        """cpuN.raw, checked to be whole pages."""
        path = self.root / f"cpu{cpu}.raw"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self.fail(f"{path.name} is missing (meta.json lists CPU {cpu})")
        except OSError as e:
            self.fail(f"{path.name}: {e.strerror}")
        if size % self.page_size:
            self.fail(f"{path.name} is truncated: {size} bytes is not a whole number of "
                      f"{self.page_size}-byte pages")
        return path, size

    def formats(self):
        """{system: {event: format bytes}} of formats/, checked against meta.json's events."""
        systems = {}
        base = self.root / "formats"
        if base.is_dir():
            for system in sorted(p for p in base.iterdir() if p.is_dir()):
                events = {}
                for event in sorted(p for p in system.iterdir() if p.is_dir()):
                    events[event.name] = self.read(f"formats/{system.name}/{event.name}/format")
                systems[system.name] = events
        for name in self.meta.get("events", []):
            system, _, event = name.partition(":")
            if event not in systems.get(system, {}):
                self.fail(f"formats/{system}/{event}/format is missing (meta.json lists {name})")
        return systems


def _commit_size(header_page):
    """The size of the commit word from events/header_page, or None."""
    for line in header_page.decode(errors="replace").splitlines():
        if " commit;" in line:
            for part in line.split(";"):
                part = part.strip()
                if part.startswith("size:") and part[5:].isdigit():
                    return int(part[5:])
    return None


class _Packer:
    """Numbers in the file's byte order."""

    def __init__(self, order):
        self.order = order

    def u16(self, value):
        return struct.pack(self.order + "H", value)

    def u32(self, value):
        return struct.pack(self.order + "I", value)

    def u64(self, value):
        return struct.pack(self.order + "Q", value)


def _headers(cap, pack):
    header_page = cap.read("header_page")
    commit = _commit_size(header_page)
    if commit is not None and commit != cap.meta["long_size"]:
        cap.fail(f"meta.json long_size {cap.meta['long_size']} disagrees with header_page "
                 f"(commit is {commit} bytes)")
    header_event = cap.read("header_event")
    return (b"header_page\0" + pack.u64(len(header_page)) + header_page
            + b"header_event\0" + pack.u64(len(header_event)) + header_event)


def _event_formats(cap, pack):
    systems = cap.formats()
    ftrace = systems.pop("ftrace", {})
    out = [pack.u32(len(ftrace))]
    out += [pack.u64(len(fmt)) + fmt for fmt in ftrace.values()]
    out.append(pack.u32(len(systems)))
    for system, events in systems.items():
        out.append(os.fsencode(system) + b"\0" + pack.u32(len(events)))
        out += [pack.u64(len(fmt)) + fmt for fmt in events.values()]
    return b"".join(out)


def _option(pack, option_id, data):
    return pack.u16(option_id) + pack.u32(len(data)) + data


def _options(cap, pack):
    meta = cap.meta
    clock = str(meta["clock"]).encode()
    out = [b"options  \0", _option(pack, OPTION_TRACECLOCK, b"[" + clock + b"]\0")]
    if meta.get("kernel"):
        uname = f"Linux {meta['kernel']} {meta.get('arch', '')}".strip()
        out.append(_option(pack, OPTION_UNAME, uname.encode() + b"\0"))
    for cpu in cap.cpus:
        stats = cap.read(f"stats/cpu{cpu}", required=False)
        if stats:
            out.append(_option(pack, OPTION_CPUSTAT, b"CPU: %d\n" % cpu + stats + b"\0"))
    out.append(pack.u16(0))
    return b"".join(out)


def _metadata(cap, pack, ncpus):
    """Everything before the flyrecord CPU table."""
    head = (MAGIC + VERSION + bytes([1 if cap.meta["big_endian"] else 0, cap.meta["long_size"]])
            + pack.u32(cap.page_size))
    kallsyms = cap.read("kallsyms", required=False)
    printk = cap.read("printk_formats", required=False)
    cmdlines = cap.read("saved_cmdlines")
    return b"".join([head, _headers(cap, pack), _event_formats(cap, pack),
                     pack.u32(len(kallsyms)), kallsyms, pack.u32(len(printk)), printk,
                     pack.u64(len(cmdlines)), cmdlines, pack.u32(ncpus), _options(cap, pack)])


def _layout(cap, pack):
    """(header bytes, padded to the first page-aligned CPU data; [(raw path, size)] in file order)."""
    ncpus = max(cap.cpus) + 1
    raws = {cpu: cap.raw_path(cpu) for cpu in cap.cpus}
    meta = _metadata(cap, pack, ncpus)
    clock = b"[" + str(cap.meta["clock"]).encode() + b"]\n"
    trailer = pack.u64(len(clock)) + clock
    table_len = len(b"flyrecord\0") + 16 * ncpus
    start = len(meta) + table_len + len(trailer)
    offset = -(-start // cap.page_size) * cap.page_size
    table, data = [b"flyrecord\0"], []
    for cpu in range(ncpus):
        if cpu in raws:
            path, size = raws[cpu]
            table.append(pack.u64(offset) + pack.u64(size))
            data.append((path, size))
            offset += size
        else:
            table.append(pack.u64(0) + pack.u64(0))
    header = meta + b"".join(table) + trailer
    header += b"\0" * (-len(header) % cap.page_size)
    return header, data


def _copy(path, size, out):
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)
        if f.tell() != size:
            raise BoardtraceError(f"{path} changed size while being written to trace.dat")


def write_tracedat(capture_dir: Path, out: Path) -> None:
    """Write the capture in capture_dir as trace.dat version 6 at out (replaced atomically).

    Raises BoardtraceError (one line) for a capture that is incomplete or inconsistent.
    """
    cap = Capture(capture_dir)
    pack = _Packer(cap.order)
    header, data = _layout(cap, pack)
    out = Path(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as e:
        raise BoardtraceError(f"cannot write {out}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            for path, size in data:
                _copy(path, size, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as e:
        os.unlink(tmp)
        raise BoardtraceError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
