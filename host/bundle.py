"""Unpack a session bundle pulled from a board, safely, and check it against its manifest.

The tar comes from a board that may be broken or hostile: only regular files and directories
are accepted, every name must stay inside the destination, and the number of members and the
unpacked size are capped. Everything is written into a fresh temporary sibling of the
destination, which is renamed into place only when the bundle's files are exactly the ones its
manifest lists. A file whose sha256 or size differs from the manifest is kept and reported, so
the rest of a capture is never lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from host.errors import BoardtraceError

DEFAULT_MAX_BYTES = 64 * 2**30  # total unpacked bytes
DEFAULT_MAX_FILES = 200_000
MAX_MANIFEST_BYTES = 64 * 2**20
CHUNK = 2**20
MANIFEST = "manifest.json"
SHA256 = re.compile(r"[0-9a-f]{64}")
REFUSED_TYPES = {tarfile.SYMTYPE: "a symlink", tarfile.LNKTYPE: "a hard link",
                 tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                 tarfile.FIFOTYPE: "a fifo"}


@dataclass(frozen=True)
class Unpacked:
    dest: Path
    manifest: dict
    files: int  # regular files written, manifest.json included
    bytes: int  # their total size
    mismatches: tuple[str, ...]  # manifest paths whose sha256 or size differ from the manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unpack_bundle(tar_path: Path, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_files: int = DEFAULT_MAX_FILES) -> Unpacked:
    """Unpack tar_path into dest (which must not exist) and verify it against its manifest."""
    if os.path.lexists(dest):
        raise BoardtraceError(f"cannot unpack bundle {tar_path}: {dest} already exists")
    tmp = dest.parent / f".{dest.name}.unpack-{secrets.token_hex(8)}"
    try:
        os.mkdir(tmp, 0o755)
    except OSError as e:
        raise BoardtraceError(f"cannot unpack bundle {tar_path}: {e}") from None
    try:
        files = _extract(tar_path, tmp, max_bytes, max_files)
        manifest = _read_manifest(tar_path, tmp, files)
        mismatches = _verify(tar_path, tmp, manifest, files)
        os.rename(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BoardtraceError(f"cannot unpack bundle {tar_path} into {dest}: {e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Unpacked(dest, manifest, len(files), sum(files.values()), mismatches)


def _name_problem(name: str) -> str | None:
    """Why name is not a safe relative path inside the bundle, or None."""
    if "\0" in name:
        return "contains a NUL byte"
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' component"
    if any(part.strip(".") == "" for part in parts):
        return "has an empty or '.'-only component"
    return None


def _refuse(tar_path: Path, name: str, why: str) -> BoardtraceError:
    return BoardtraceError(f"bundle {tar_path}: member {name!r} {why}")


def _extract(tar_path: Path, root: Path, max_bytes: int, max_files: int) -> dict[str, int]:
    """Write the bundle's directories and files under root; return each file's path and size."""
    kinds: dict[str, str] = {}  # "file" or "dir" for every path made under root
    names: set[str] = set()
    files: dict[str, int] = {}
    total = 0
    name = ""
    with open(tar_path, "rb") as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r:") as tar:
                for member in tar:
                    name = member.name
                    if len(names) >= max_files:
                        raise _refuse(tar_path, name, f"is past the limit of {max_files} members")
                    problem = _name_problem(name)
                    if problem:
                        raise _refuse(tar_path, name, problem)
                    if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
                        kind = REFUSED_TYPES.get(member.type, f"of tar type {member.type!r}")
                        raise _refuse(tar_path, name, f"is {kind}; a bundle holds only files and "
                                                      "directories")
                    if name in names:
                        raise _refuse(tar_path, name, "appears twice")
                    names.add(name)
                    parts = name.split("/")
                    for i in range(1, len(parts)):
                        parent = "/".join(parts[:i])
                        if kinds.get(parent) == "file":
                            raise _refuse(tar_path, name, f"lies under {parent!r}, which is a file")
                        if parent not in kinds:
                            os.mkdir(root / parent, 0o755)
                            kinds[parent] = "dir"
                    if member.isdir():
                        if name not in kinds:
                            os.mkdir(root / name, 0o755)
                            kinds[name] = "dir"
                        continue
                    if name in kinds:
                        raise _refuse(tar_path, name, "is a file, but earlier members lie under it")
                    budget = max_bytes - total
                    if not 0 <= member.size <= budget:
                        raise _refuse(tar_path, name, f"takes the unpacked size over the limit of "
                                                      f"{max_bytes} bytes")
                    kinds[name] = "file"
                    try:
                        files[name] = _copy(tar, member, root / name, budget)
                    except (tarfile.TarError, EOFError) as e:
                        raise _incomplete(tar_path, f"{e} in member {name!r}") from None
                    if files[name] > budget:
                        raise _refuse(tar_path, name, "holds more data than its header says")
                    total += files[name]
                # Python's tarfile ends the listing quietly at a damaged or missing header after
                # the first one; a whole tar ends with two zero blocks.
                raw.seek(tar.offset)
                if raw.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
                    raise tarfile.ReadError(f"no end-of-archive marker at byte {tar.offset}")
        except (tarfile.TarError, EOFError) as e:
            raise _incomplete(tar_path, f"{e} after member {name!r}" if name else str(e)) from None
    return files


def _incomplete(tar_path: Path, why: str) -> BoardtraceError:
    return BoardtraceError(f"bundle {tar_path} is not a complete tar: {why}")


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, budget: int) -> int:
    """Copy member's data into a new file at path; return the bytes written, stopping once
    they pass budget."""
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while written <= budget and (chunk := source.read(CHUNK)):
            written += len(chunk)
            out.write(chunk)
    return written


def _read_manifest(tar_path: Path, root: Path, files: dict[str, int]) -> dict:
    """The parsed manifest.json, checked for what unpacking relies on."""

    def bad(why: str) -> BoardtraceError:
        return BoardtraceError(f"bundle {tar_path}: manifest.json: {why}")

    if MANIFEST not in files:
        raise bad("missing")
    if files[MANIFEST] > MAX_MANIFEST_BYTES:
        raise bad(f"larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads((root / MANIFEST).read_bytes())
    except (ValueError, RecursionError) as e:
        raise bad(f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise bad("not a JSON object")
    if manifest.get("format") != "boardtrace-session":
        raise bad("format is not 'boardtrace-session'")
    version = manifest.get("version")
    if type(version) is not int or version != 1:
        raise bad("version is not 1, the only one this host reads")
    entries = manifest.get("files")
    if not isinstance(entries, list):
        raise bad("files is not a list")
    paths = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise bad(f"files[{i}] is not an object with a string path")
        path = entry["path"]
        problem = _name_problem(path)
        if problem:
            raise bad(f"files[{i}].path {path!r} {problem}")
        if path == MANIFEST:
            raise bad(f"files[{i}] lists manifest.json itself")
        if path in paths:
            raise bad(f"files[{i}].path {path!r} is listed twice")
        paths.add(path)
        size = entry.get("size")
        if type(size) is not int or size < 0:
            raise bad(f"files[{i}] ({path!r}): size is not an integer >= 0")
        if not isinstance(entry.get("sha256"), str) or not SHA256.fullmatch(entry["sha256"]):
            raise bad(f"files[{i}] ({path!r}): sha256 is not 64 lowercase hex digits")
    return manifest


def _verify(tar_path: Path, root: Path, manifest: dict, files: dict[str, int]) -> tuple[str, ...]:
    """Refuse a bundle whose files are not the listed ones; return the listed paths whose size
    or sha256 differ."""
    listed = {entry["path"]: entry for entry in manifest["files"]}
    missing = sorted(listed.keys() - files.keys())
    if missing:
        raise BoardtraceError(f"bundle {tar_path} lists {missing[0]!r} but does not contain it")
    unlisted = sorted(files.keys() - listed.keys() - {MANIFEST})
    if unlisted:
        raise BoardtraceError(f"bundle {tar_path} contains {unlisted[0]!r}, which its manifest "
                              "does not list")
    return tuple(path for path, entry in sorted(listed.items())
                 if files[path] != entry["size"] or sha256_file(root / path) != entry["sha256"])
