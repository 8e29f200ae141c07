"""The QEMU image builder: Debian packages -> kernel + initramfs, cached by content."""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
import time

import pytest

from host.profiles import load_board
from host.qemu.apt import ArchiveUnavailable
from host.qemu.image import READY, build_image, client_keypair
from host.qemu.initramfs import Entry, Tree, elf_dynamic
from tests.qemu.conftest import CACHE, image_for

pytestmark = pytest.mark.qemu


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)) of a newc archive, checking owners and mtimes."""
    entries, at = {}, 0
    while True:
        assert data[at:at + 6] == b"070701", f"bad cpio magic at {at}"
        fields = [int(data[at + 6 + 8 * i:at + 14 + 8 * i], 16) for i in range(13)]
        _, mode, uid, gid, _, mtime, size, _, _, major, minor, namesize, _ = fields
        name = data[at + 110:at + 110 + namesize - 1].decode()
        at += 110 + namesize
        at += -at % 4
        if name == "TRAILER!!!":
            return entries
        assert (uid, gid, mtime) == (0, 0, 0), name
        entries[name] = (mode, data[at:at + size], (major, minor))
        at += size + (-size % 4)


@pytest.fixture(scope="module")
def aarch64():
    board = load_board("qemu-aarch64")
    image = image_for(board)
    if isinstance(image, str):
        pytest.skip(image)
    return board, image


@pytest.fixture(scope="module")
def contents(aarch64):
    _, image = aarch64
    return read_cpio(gzip.decompress(image.initrd.read_bytes()))


def test_a_second_build_is_a_no_op_with_the_same_key(aarch64):
    board, first = aarch64
    before = first.initrd.stat().st_mtime_ns
    said: list[str] = []
    started = time.monotonic()
    try:
        second = build_image(board, CACHE, say=said.append)
    except ArchiveUnavailable as e:
        pytest.skip(f"the Debian archive is unavailable: {e}")
    assert time.monotonic() - started < 30
    assert second == first
    assert second.facts["key"] == first.facts["key"] == first.dir.name
    assert first.initrd.stat().st_mtime_ns == before
    assert any("cached" in line for line in said), said
    assert not any("downloading" in line for line in said), said


def test_the_initramfs_holds_the_programs(contents):
    for path in ("init", "usr/bin/busybox", "usr/sbin/dropbear", "usr/lib/openssh/sftp-server",
                 "usr/lib/aarch64-linux-gnu/libgmp.so.10", "usr/lib/python3.11/os.py",
                 "etc/dropbear/dropbear_ed25519_host_key"):
        assert path in contents, path
    assert contents["init"][0] & 0o111 and READY.encode() in contents["init"][1]
    for link, target in (("bin", b"usr/bin"), ("lib", b"usr/lib"), ("usr/bin/python3", b"python3.11"),
                         ("usr/lib/sftp-server", b"openssh/sftp-server")):
        assert stat.S_ISLNK(contents[link][0]) and contents[link][1] == target, link
    mode, _, rdev = contents["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)
    assert stat.S_IMODE(contents["root/.ssh"][0]) == 0o700
    assert stat.S_IMODE(contents["root/.ssh/authorized_keys"][0]) == 0o600
    assert not any(name.startswith(("usr/share/doc", "usr/lib/python3.11/test/")) for name in contents)


def test_the_modules_come_with_their_dependencies_in_load_order(aarch64, contents):
    _, image = aarch64
    order = contents["usr/lib/modules/load.order"][1].decode().split()
    names = [path.rsplit("/", 1)[1][:-3] for path in order]
    assert names == image.facts["modules"]
    assert names.index("virtio") < names.index("virtio_pci") < names.index("virtio_net")
    for path in order:
        assert contents[f"usr/lib/modules/{path}"][1][:4] == b"\x7fELF"  # decompressed


def test_every_program_finds_its_libraries(aarch64, contents):
    _, image = aarch64
    tree = Tree()
    for name, (mode, data, rdev) in contents.items():
        tree.entries[name] = Entry(mode, data, rdev)
    missing = tree.missing_libraries("aarch64-linux-gnu")
    assert all("/lib-dynload/" in path for path in missing), missing
    assert {f"/{p}": libs for p, libs in missing.items()} == image.facts["missing_optional"]
    interp, needed = elf_dynamic(contents["usr/sbin/dropbear"][1])
    assert interp == "/lib/ld-linux-aarch64.so.1" and "libtomcrypt.so.1" in needed


def test_the_facts_describe_the_image(aarch64):
    _, image = aarch64
    facts = image.facts
    assert facts["python"] == image.python == "3.11"
    assert facts["kernel"]["package"].startswith("linux-image-6.")
    assert facts["kernel"]["package"] in facts["packages"]
    assert {"busybox-static", "dropbear-bin", "openssh-sftp-server", "libgmp10", "libffi8"} <= set(facts["packages"])
    assert facts["sizes"]["initrd.gz"] == image.initrd.stat().st_size
    assert facts["sizes"]["vmlinuz"] == image.kernel.stat().st_size
    assert facts["download_bytes"] >= 0 and facts["deb_bytes"] > 10_000_000
    assert facts["sftp_server"] == "/usr/lib/sftp-server"
    assert image.host_key.startswith("ssh-ed25519 AAAA") and image.host_key == facts["host_key"]


def test_the_host_key_is_in_dropbear_format(aarch64, contents, tmp_path):
    _, image = aarch64
    if shutil.which("dropbearkey") is None:
        pytest.skip("dropbearkey is not installed (apt-get install dropbear-bin)")
    key = tmp_path / "host_key"
    key.write_bytes(contents["etc/dropbear/dropbear_ed25519_host_key"][1])
    out = subprocess.run(["dropbearkey", "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert image.host_key in out


def test_the_client_key_is_made_once_per_cache(tmp_path):
    private, public = client_keypair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert client_keypair(tmp_path) == (private, public)
    assert public.startswith("ssh-ed25519 ")


def test_the_cpio_is_deterministic():
    def tree():
        t = Tree()
        t.file("b/file", b"x" * 5, 0o644)
        t.link("a", "b/file")
        t.dir("tmp", 0o1777)
        return t
    assert tree().cpio() == tree().cpio()
    entries = read_cpio(tree().cpio())
    assert list(entries) == ["a", "b", "b/file", "tmp"]
    assert stat.S_IMODE(entries["tmp"][0]) == 0o1777
