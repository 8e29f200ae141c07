"""Unpacking session bundles: real tar files, well-formed, hostile and broken."""

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from host import bundle
from host.bundle import Unpacked, sha256_file, unpack_bundle
from host.errors import BoardtraceError

FILES = {
    "strace.jsonl": b'{"nr": 59, "name": "execve"}\n' * 40,
    "ftrace/cpu0.raw": bytes(range(256)) * 20,
    "ftrace/formats/sched/sched_switch/format": b"name: sched_switch\nID: 316\n",
    "notes/back\\slash-\u00fc.txt": b"a backslash is an ordinary character\n",  # needs a pax header
}
DIRS = ["ftrace", "ftrace/formats", "ftrace/formats/sched", "ftrace/formats/sched/sched_switch",
        "notes"]


def manifest(listed: dict[str, bytes], **changes) -> bytes:
    files = [{"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
             for path, data in listed.items()]
    return json.dumps({"format": "boardtrace-session", "version": 1, "id": "20261127-131500-ab12",
                       "board": {"arch": "aarch64"}, "files": files, **changes}).encode()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(files=FILES, listed=None, manifest_data=None, extra=()) -> bytes:
    """Directories, manifest.json (listing `listed`, default files), files, then extra members."""
    members = [member(d, kind=tarfile.DIRTYPE) for d in DIRS]
    if manifest_data is not False:
        listed = files if listed is None else listed
        members.append(member("manifest.json", manifest_data or manifest(listed)))
    members += [member(name, data) for name, data in files.items()] + list(extra)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def paths(tmp_path):
    """(tar path, dest) with dest alone in its own parent, to see what is left behind."""
    (tmp_path / "out").mkdir()
    return tmp_path / "s.tar", tmp_path / "out" / "20261127-131500-ab12"


def refused(paths, data: bytes, *words: str, **limits) -> str:
    tar, dest = paths
    tar.write_bytes(data)
    with pytest.raises(BoardtraceError) as caught:
        unpack_bundle(tar, dest, **limits)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert list(dest.parent.iterdir()) == []  # neither dest nor a temp dir
    return message


def test_a_good_bundle_unpacks_and_verifies(paths):
    tar, dest = paths
    data = manifest(FILES)
    tar.write_bytes(tar_bytes(manifest_data=data))
    got = unpack_bundle(tar, dest)
    assert got == Unpacked(dest, json.loads(data), len(FILES) + 1,
                           len(data) + sum(map(len, FILES.values())), ())
    assert got.manifest["board"] == {"arch": "aarch64"}
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == \
        {**FILES, "manifest.json": data}
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]
    assert sha256_file(dest / "strace.jsonl") == hashlib.sha256(FILES["strace.jsonl"]).hexdigest()


def test_member_modes_and_owners_are_ignored(paths):
    tar, dest = paths
    tar.write_bytes(tar_bytes(files={}, extra=[member("ftrace/x", kind=tarfile.DIRTYPE, mode=0o7777),
                                                member("ftrace/x/y", b"1", mode=0o6777, uid=0),
                                                member("implicit/z", b"2", mode=0o777)],
                              listed={"ftrace/x/y": b"1", "implicit/z": b"2"}))
    old = os.umask(0)
    try:
        unpack_bundle(tar, dest)
    finally:
        os.umask(old)
    want = {"ftrace/x": 0o755, "ftrace/x/y": 0o644, "implicit": 0o755, "implicit/z": 0o644}
    assert {name: (dest / name).stat().st_mode & 0o7777 for name in want} == want


def test_a_name_the_filesystem_refuses_leaves_nothing(paths):
    refused(paths, tar_bytes(extra=[member("x" * 300, b"x")]), "cannot unpack bundle", "too long")


@pytest.mark.parametrize("extra, name, words", [
    ([member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")], "link", "symlink"),
    ([member("hard", kind=tarfile.LNKTYPE, linkname="strace.jsonl")], "hard", "hard link"),
    ([member("tty", kind=tarfile.CHRTYPE, devmajor=4)], "tty", "character device"),
    ([member("sda", kind=tarfile.BLKTYPE, devmajor=8)], "sda", "block device"),
    ([member("pipe", kind=tarfile.FIFOTYPE)], "pipe", "fifo"),
    ([member("/tmp/evil", b"x")], "/tmp/evil", "absolute"),
    ([member("../evil", b"x")], "../evil", "'..'"),
    ([member("ftrace/../../evil", b"x")], "ftrace/../../evil", "'..'"),
    ([member("ftrace//x", b"x")], "ftrace//x", "empty"),
    ([member("./x", b"x")], "./x", "'.'-only"),
    ([member("ftrace/.../x", b"x")], "ftrace/.../x", "'.'-only"),
    ([member("nul", b"x", pax_headers={"path": "a\0b"})], "a\0b", "NUL"),
    ([member("strace.jsonl", b"again")], "strace.jsonl", "twice"),
    ([member("ftrace", kind=tarfile.DIRTYPE)], "ftrace", "twice"),
    ([member("strace.jsonl/x", b"x")], "strace.jsonl/x", "which is a file"),
    ([member("strace.jsonl/d", kind=tarfile.DIRTYPE)], "strace.jsonl/d", "which is a file"),
    ([member("loose/x", b"x"), member("loose", b"x")], "loose", "lie under it"),
])
def test_hostile_members_are_refused(paths, extra, name, words):
    refused(paths, tar_bytes(extra=extra), f"member {name!r}", words)


@pytest.mark.parametrize("listed, words", [
    ({**FILES, "dmesg.jsonl": b""}, "lists 'dmesg.jsonl' but does not contain it"),
    ({**FILES, "ftrace": b""}, "lists 'ftrace' but does not contain it"),
    ({k: v for k, v in FILES.items() if k != "strace.jsonl"},
     "contains 'strace.jsonl', which its manifest does not list"),
])
def test_the_files_must_be_exactly_the_listed_ones(paths, listed, words):
    refused(paths, tar_bytes(listed=listed), words)


@pytest.mark.parametrize("data, words", [
    (False, "missing"),
    (b"{", "not valid JSON"),
    (b"\xff", "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (b"[]", "not a JSON object"),
    (manifest(FILES, format="other"), "format"),
    (manifest(FILES, version=2), "version"),
    (manifest(FILES, version=True), "version"),
    (manifest(FILES, files={}), "files is not a list"),
    (manifest(FILES, files=["strace.jsonl"]), "files[0]"),
    (manifest({"../strace.jsonl": b""}), "'../strace.jsonl'"),
    (manifest({"manifest.json": b""}), "lists manifest.json itself"),
    (manifest(FILES, files=json.loads(manifest({"a": b""}))["files"] * 2), "'a' is listed twice"),
    (manifest({"x": b""}).replace(b'"size": 0', b'"size": -1'), "'x'): size"),
    (manifest({"x": b""}).replace(b'"size": 0', b'"size": "0"'), "'x'): size"),
    (manifest({"x": b""}).replace(b'"e3b0', b'"E3B0'), "'x'): sha256"),
])
def test_a_bad_manifest_is_refused(paths, data, words):
    refused(paths, tar_bytes(manifest_data=data), "manifest.json: ", words)


def test_a_huge_manifest_is_refused(paths, monkeypatch):
    monkeypatch.setattr(bundle, "MAX_MANIFEST_BYTES", 100)
    refused(paths, tar_bytes(), "manifest.json: larger than 100 bytes")


def test_mismatches_are_reported_and_the_data_kept(paths):
    tar, dest = paths
    changed = {**FILES, "strace.jsonl": b"shorter", "ftrace/cpu0.raw": bytes(len(FILES["ftrace/cpu0.raw"]))}
    tar.write_bytes(tar_bytes(listed=changed))
    got = unpack_bundle(tar, dest)
    assert got.mismatches == ("ftrace/cpu0.raw", "strace.jsonl")
    assert (dest / "strace.jsonl").read_bytes() == FILES["strace.jsonl"]
    assert got.manifest["files"][0]["size"] == len(b"shorter")


def offsets(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {info.name: info for info in tar}


@pytest.mark.parametrize("cut, words", [
    (lambda m: m["ftrace/cpu0.raw"].offset_data + 1000, "unexpected end of data in member 'ftrace/cpu0.raw'"),
    (lambda m: m["ftrace/cpu0.raw"].offset + 100, "after member 'strace.jsonl'"),
    (lambda m: m["strace.jsonl"].offset + 100, "after member 'manifest.json'"),
    (lambda m: 100, "truncated header"),
    (lambda m: 0, "empty file"),
])
def test_a_truncated_tar_is_refused(paths, cut, words):
    data = tar_bytes()
    refused(paths, data[:cut(offsets(data))], "is not a complete tar: ", words)


def test_a_damaged_header_is_refused(paths):
    data = bytearray(tar_bytes())
    data[offsets(data)["strace.jsonl"].offset + 150] ^= 1  # in the checksum
    refused(paths, bytes(data), "is not a complete tar", "after member 'manifest.json'")


def test_the_limits(paths):
    tar, dest = paths
    data = tar_bytes()
    size = len(manifest(FILES)) + sum(map(len, FILES.values()))
    count = len(DIRS) + 1 + len(FILES)
    last = repr(list(FILES)[-1])
    refused(paths, data, last, f"limit of {size - 1} bytes", max_bytes=size - 1)
    refused(paths, data, last, f"limit of {count - 1} members", max_files=count - 1)
    assert unpack_bundle(tar, dest, max_bytes=size, max_files=count).bytes == size


def test_bytes_are_counted_while_copying(paths, monkeypatch):
    # A real tar cannot give more data than its header says; a reader that did must still stop.
    real = tarfile.TarFile.extractfile
    def extractfile(tar, info):
        return io.BytesIO(real(tar, info).read() * (3 if info.name == "big" else 1))

    monkeypatch.setattr(tarfile.TarFile, "extractfile", extractfile)
    refused(paths, tar_bytes(files={}, listed={}, extra=[member("big", b"x" * 100)]),
            "member 'big' holds more data", max_bytes=len(manifest({})) + 150)


def test_dest_must_not_exist(paths):
    tar, dest = paths
    tar.write_bytes(tar_bytes())
    dest.mkdir()
    with pytest.raises(BoardtraceError, match="already exists"):
        unpack_bundle(tar, dest)
    assert list(dest.parent.iterdir()) == [dest] and list(dest.iterdir()) == []


VALID = tar_bytes()


def flipped(at_value: tuple[int, int]) -> bytes:
    at, value = at_value
    return VALID[:at] + bytes([value]) + VALID[at + 1:]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=4096),
                 st.integers(0, len(VALID)).map(lambda n: VALID[:n]),
                 st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)).map(flipped)))
def test_damaged_input_unpacks_or_is_refused(data):
    with tempfile.TemporaryDirectory() as tmp:
        tar, out = Path(tmp) / "s.tar", Path(tmp) / "out"
        tar.write_bytes(data)
        out.mkdir()
        try:
            unpack_bundle(tar, out / "s")
        except BoardtraceError as e:
            assert "\n" not in str(e) and list(out.iterdir()) == []
        else:
            assert [p.name for p in out.iterdir()] == ["s"]
