"""An initramfs as a file tree in memory: filled from .deb files, checked (every ELF finds its
interpreter and libraries), written as a deterministic gzip'd newc cpio.

No root needed and no cpio tool: owners are 0, mtimes fixed, entries sorted, device nodes are
just headers.
"""

from __future__ import annotations

import gzip
import io
import lzma
import posixpath
import stat
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from host.errors import BoardtraceError

MTIME = 0
LIBRARY_DIRS = ("usr/lib/{triplet}", "usr/lib", "lib/{triplet}", "lib")
USR_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass
class Entry:
    mode: int  # full st_mode: type and permission bits
    data: bytes = b""  # file contents, or the link target
    rdev: tuple[int, int] = (0, 0)


class Tree:
    """Paths (relative, no leading '/') -> entries. Parent directories are made as needed."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = _clean(path)
        if path:
            self._parents(path)
            self.entries[path] = Entry(stat.S_IFDIR | mode)

    def _parents(self, path: str) -> None:
        """Make the missing directories above path (0755)."""
        parent = posixpath.dirname(path)
        if parent and parent not in self.entries:
            self._parents(parent)
            self.entries[parent] = Entry(stat.S_IFDIR | 0o755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = _clean(path)
        self._parents(path)
        self.entries[path] = Entry(stat.S_IFREG | mode, data)

    def link(self, path: str, target: str) -> None:
        path = _clean(path)
        self._parents(path)
        self.entries[path] = Entry(stat.S_IFLNK | 0o777, target.encode())

    def node(self, path: str, mode: int, major: int, minor: int) -> None:
        path = _clean(path)
        self._parents(path)
        self.entries[path] = Entry(mode, rdev=(major, minor))

    def resolve(self, path: str, depth: int = 0) -> str | None:
        """The path with every symlink on the way followed (as the guest sees it), or None when
        something on the way is missing."""
        parts = [p for p in _clean(path).split("/") if p]
        done = ""
        for i, part in enumerate(parts):
            current = posixpath.join(done, part) if done else part
            entry = self.entries.get(current)
            if entry is None:
                return None
            if stat.S_ISLNK(entry.mode):
                if depth > 40:
                    return None
                target = entry.data.decode()
                base = "" if target.startswith("/") else posixpath.dirname(current)
                rest = "/".join(parts[i + 1:])
                return self.resolve(posixpath.normpath(posixpath.join(base, target, rest)), depth + 1)
            done = current
        return done

    def get(self, path: str) -> Entry | None:
        resolved = self.resolve(path)
        return None if resolved is None else self.entries.get(resolved)

    def files(self) -> Iterator[tuple[str, Entry]]:
        for path, entry in self.entries.items():
            if stat.S_ISREG(entry.mode):
                yield path, entry

    def remove(self, keep: Callable[[str], bool]) -> None:
        self.entries = {p: e for p, e in self.entries.items() if keep(p)}

    # -- filling --------------------------------------------------------------------------

    def add_deb(self, deb: Path, want: Callable[[str], bool] = lambda p: True) -> None:
        """Add the files of a .deb's data archive whose path `want` accepts; /bin, /lib, ... go
        under /usr (usr-merge: both layouts then work through the links made by merge_usr)."""
        for member, data in deb_members(deb):
            path = _usr_merged(_clean(member.name))
            if not path or not want(path):
                continue
            if member.isdir():
                self.dir(path, member.mode & 0o7777)
            elif member.issym():
                self.link(path, member.linkname)
            elif member.isfile() or member.islnk():
                self.file(path, data, member.mode & 0o7777)

    def merge_usr(self) -> None:
        """The usr-merge links: /bin -> usr/bin, /lib -> usr/lib, ... (trixie packages ship only
        /usr, but interpreters are still named /lib/ld-linux-*)."""
        for top in USR_MERGED:
            if f"usr/{top}" in self.entries:
                self.link(top, f"usr/{top}")

    # -- checking -------------------------------------------------------------------------

    def missing_libraries(self, triplet: str) -> dict[str, list[str]]:
        """ELF file -> what it needs and the tree lacks ("interpreter /lib/ld..." or a soname)."""
        dirs = [d.format(triplet=triplet) for d in LIBRARY_DIRS]
        missing: dict[str, list[str]] = {}
        for path, entry in sorted(self.files()):
            info = elf_dynamic(entry.data)
            if info is None:
                continue
            interp, needed = info
            lacking = [n for n in needed if not any(self.get(f"{d}/{n}") for d in dirs)]
            if interp and self.get(interp) is None:
                lacking.insert(0, f"interpreter {interp}")
            if lacking:
                missing[path] = lacking
        return missing

    # -- writing --------------------------------------------------------------------------

    def cpio(self) -> bytes:
        """The tree as a newc cpio archive, sorted, owned by root, mtime fixed."""
        out = io.BytesIO()
        for ino, path in enumerate(sorted(self.entries), start=1):
            entry = self.entries[path]
            _cpio_entry(out, path, entry.mode, entry.data, ino, entry.rdev)
        _cpio_entry(out, "TRAILER!!!", 0, b"", 0, (0, 0))
        data = out.getvalue()
        return data + b"\0" * (-len(data) % 512)

    def write(self, path: Path, level: int = 6) -> int:
        """Write the gzip'd cpio to path (deterministic: no name, mtime 0); returns its size."""
        raw = self.cpio()
        with path.open("wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0,
                                                 compresslevel=level) as gz:
            gz.write(raw)
        return path.stat().st_size


def _clean(path: str) -> str:
    return posixpath.normpath("/" + path).lstrip("/") if path not in ("", ".", "./") else ""


def _usr_merged(path: str) -> str:
    top = path.split("/", 1)[0]
    return f"usr/{path}" if top in USR_MERGED else path


def _cpio_entry(out: io.BytesIO, name: str, mode: int, data: bytes, ino: int, rdev: tuple[int, int]) -> None:
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, MTIME, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    out.write(b"070701" + b"".join(b"%08x" % f for f in fields))
    out.write(encoded + b"\0" * (-(110 + len(encoded)) % 4))
    out.write(data + b"\0" * (-len(data) % 4))


# -- .deb files ---------------------------------------------------------------------------------

def deb_members(deb: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """(member, contents) of a .deb's data.tar.* (contents empty for non-files)."""
    blob = deb.read_bytes()
    data = _ar_member(blob, b"data.tar", deb)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            content = b""
            if member.isfile() or member.islnk():
                f = tar.extractfile(member)
                content = f.read() if f else b""
            yield member, content


def _ar_member(blob: bytes, prefix: bytes, deb: Path) -> bytes:
    if not blob.startswith(b"!<arch>\n"):
        raise BoardtraceError(f"{deb.name}: not a Debian package (no ar header); delete it and rebuild")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset:offset + 60]
        name, size = header[:16].strip().rstrip(b"/"), int(header[48:58])
        if name.startswith(prefix):
            if name.endswith(b".zst"):
                raise BoardtraceError(f"{deb.name}: zstd-compressed data archive is not supported")
            return blob[offset + 60:offset + 60 + size]
        offset += 60 + size + (size & 1)
    raise BoardtraceError(f"{deb.name}: no {prefix.decode()} member; delete it and rebuild")


# -- ELF ----------------------------------------------------------------------------------------

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NEEDED, DT_STRTAB = 1, 5
ET_EXEC, ET_DYN = 2, 3


def _elf_layout(data: bytes) -> tuple[str, bool] | None:
    """(struct byte-order prefix, is 64-bit) for an ELF file, else None."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2):
        return None
    return ("<" if data[5] == 1 else ">"), data[4] == 2


def _program_headers(data: bytes, bo: str, is64: bool) -> list[tuple[int, int, int, int]]:
    """(type, file offset, virtual address, file size) of each program header."""
    if is64:
        phoff, = struct.unpack_from(bo + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(bo + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(bo + "I", data, 28)
        phentsize, phnum = struct.unpack_from(bo + "HH", data, 42)
    headers = []
    for i in range(phnum):
        at = phoff + i * phentsize
        if is64:
            ptype, _, offset, vaddr, _, filesz = struct.unpack_from(bo + "IIQQQQ", data, at)
        else:
            ptype, offset, vaddr, _, filesz = struct.unpack_from(bo + "IIIII", data, at)
        headers.append((ptype, offset, vaddr, filesz))
    return headers


def elf_dynamic(data: bytes) -> tuple[str | None, list[str]] | None:
    """(PT_INTERP path, DT_NEEDED sonames) of an executable or shared object; None for anything
    else (including kernel modules and static programs without either)."""
    layout = _elf_layout(data)
    if layout is None:
        return None
    bo, is64 = layout
    if struct.unpack_from(bo + "H", data, 16)[0] not in (ET_EXEC, ET_DYN):
        return None
    headers = _program_headers(data, bo, is64)
    interp = None
    needed_offsets: list[int] = []
    strtab_vaddr = None
    for ptype, offset, _, size in headers:
        if ptype == PT_INTERP:
            interp = data[offset:offset + size].split(b"\0")[0].decode()
        elif ptype == PT_DYNAMIC:
            fmt, width = (bo + "qQ", 16) if is64 else (bo + "iI", 8)
            for at in range(offset, offset + size, width):
                tag, value = struct.unpack_from(fmt, data, at)
                if tag == 0:
                    break
                if tag == DT_NEEDED:
                    needed_offsets.append(value)
                elif tag == DT_STRTAB:
                    strtab_vaddr = value
    needed = []
    if strtab_vaddr is not None:
        strtab = _file_offset(headers, strtab_vaddr)
        for n in needed_offsets:
            needed.append(data[strtab + n:data.index(b"\0", strtab + n)].decode())
    return interp, needed


def _file_offset(headers: list[tuple[int, int, int, int]], vaddr: int) -> int:
    for ptype, offset, start, size in headers:
        if ptype == PT_LOAD and start <= vaddr < start + size:
            return offset + vaddr - start
    return vaddr


def elf_section(data: bytes, wanted: str) -> bytes | None:
    """The contents of a named section (e.g. ".modinfo" of a kernel module), or None."""
    layout = _elf_layout(data)
    if layout is None:
        return None
    bo, is64 = layout
    if is64:
        shoff, = struct.unpack_from(bo + "Q", data, 40)
        shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHH", data, 58)
        fmt = bo + "IIQQQQ"
    else:
        shoff, = struct.unpack_from(bo + "I", data, 32)
        shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHH", data, 46)
        fmt = bo + "IIIIII"
    sections = [struct.unpack_from(fmt, data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]
    for name, _, _, _, offset, size in sections:
        start = names_offset + name
        if data[start:data.index(b"\0", start)].decode() == wanted:
            return data[offset:offset + size]
    return None


def module_info(data: bytes) -> dict[str, str]:
    """A kernel module's .modinfo as key -> value (the last one of repeated keys)."""
    section = elf_section(data, ".modinfo") or b""
    info = {}
    for item in section.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            info[key] = value
    return info


def decompress_module(name: str, data: bytes) -> bytes:
    """A .ko from a .ko, .ko.xz or .ko.gz file's bytes."""
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        raise BoardtraceError(f"{name}: zstd-compressed kernel modules are not supported")
    return data
