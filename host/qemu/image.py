"""Build a QEMU board's kernel + initramfs from Debian packages only, cached by content.

The image: the Debian kernel named by the board's meta package, the kernel modules the board lists
(with their dependencies), busybox-static, a minimal Python, dropbear with an SSH host key made
here, and openssh's sftp-server. The cache key covers every package version and the recipe, so an
unchanged board builds once: cache/<board>/<key>/{vmlinuz,initrd.gz,image.json,host_key.pub}.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.errors import BoardtraceError
from host.profiles import Board
from host.qemu.apt import Apt, Package
from host.qemu.initramfs import Tree, decompress_module, deb_members, module_info

RECIPE_VERSION = 2  # bump when the image layout changes without a package or script change
READY = "BOARDTRACE-READY"
HOST_KEY = "etc/dropbear/dropbear_ed25519_host_key"
OPTIONAL_MODULES = ("virtio_rng",)  # loaded when the kernel has them as modules (-device virtio-rng-pci)
USERLAND = ("busybox-static", "python{py}-minimal", "libpython{py}-minimal", "libpython{py}-stdlib",
            "dropbear-bin", "openssh-sftp-server",
            "strace",     # the reference the agent's strace is compared with on the board (tests/qemu)
            "trace-cmd")  # the reference recorder of bench/ftrace.py --board
# What the Python library packages may pull in: the rest (libssl, libsqlite3, libreadline, ...)
# serves optional extension modules (_ssl, _hashlib, _sqlite3, readline, ...), left out to keep the
# image small and listed in image.json as missing_optional.
PYTHON_LIBRARIES = re.compile(r"libpython|libffi|libc6|libgcc|libcrypt1|libexpat|zlib1g")
TRIMMED = re.compile(r"usr/share/|usr/lib/[^/]+/gconv/|usr/lib/python3\.\d+/(test|idlelib|tkinter|turtledemo|lib2to3|"
                     r"ensurepip|pydoc_data|config-[^/]*)(/|$)")
OPTIONAL_ELF = re.compile(r"usr/lib/python3\.\d+/lib-dynload/")

INIT = f"""#!/bin/busybox sh
# boardtrace QEMU initramfs: mount, load modules, network, dropbear, then busybox init reaps.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
while read -r module; do
    insmod "/lib/modules/$module" || echo "boardtrace: insmod $module failed"
done < /lib/modules/load.order
hostname boardtrace
ip link set lo up
for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
dropbear -s -E -p 22 -r /{HOST_KEY}
echo "{READY}"
exec /bin/busybox init
"""
INITTAB = "::ctrlaltdel:/bin/busybox reboot -f\n"
ETC = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:\n", 0o644),
    "etc/shadow": ("root:*:19000:0:99999:7:::\n", 0o600),
    "etc/shells": ("/bin/sh\n", 0o644),
    "etc/hostname": ("boardtrace\n", 0o644),
    "etc/hosts": ("127.0.0.1 localhost\n10.0.2.15 boardtrace\n", 0o644),
    "etc/inittab": (INITTAB, 0o644),
}


@dataclass(frozen=True)
class Image:
    dir: Path
    kernel: Path
    initrd: Path
    host_key: str  # the board's SSH host key, "ssh-ed25519 AAAA..."
    client_key: Path  # the private key /root/.ssh/authorized_keys accepts
    python: str  # e.g. "3.11"
    facts: dict


def build_image(board: Board, cache: Path = Path("build/qemu"), say: Callable[[str], None] = print) -> Image:
    """The board's image, built unless the cache already holds one for the same packages and recipe."""
    q = board.qemu
    if q is None:
        raise BoardtraceError(f"board {board.name}: not a QEMU board (no `qemu:` in {board.path.name})")
    cache = cache.resolve()
    client_key, client_pub = client_keypair(cache)
    apt = Apt(cache / "apt" / f"{q.suite}-{board.arch}", q.suite, board.arch, say)
    apt.update()
    python, kernel, userland = resolve_packages(apt, board)
    key = cache_key(board, [kernel, *userland.values()], client_pub)
    final = cache / board.name / key
    if not (final / "image.json").is_file():
        started = time.monotonic()
        say(f"image {board.name}: building {key} (kernel {kernel.name} {kernel.version}, python {python})")
        debs = apt.download([kernel, *userland.values()], cache / "debs" / f"{q.suite}-{board.arch}")
        _build(board, final, key, python, kernel, userland, debs, client_pub)
        _prune(final)
        facts = json.loads((final / "image.json").read_text())
        say(f"image {board.name}: built in {time.monotonic() - started:.1f} s, downloaded "
            f"{facts['download_bytes'] / 1e6:.1f} MB; initrd.gz {facts['sizes']['initrd.gz'] / 1e6:.1f} MB, "
            f"kernel {facts['sizes']['vmlinuz'] / 1e6:.1f} MB")
    else:
        say(f"image {board.name}: cached {final}")
    facts = json.loads((final / "image.json").read_text())
    return Image(dir=final, kernel=final / "vmlinuz", initrd=final / "initrd.gz",
                 host_key=(final / "host_key.pub").read_text().strip(), client_key=client_key,
                 python=facts["python"], facts=facts)


# -- packages -----------------------------------------------------------------------------------

def resolve_packages(apt: Apt, board: Board) -> tuple[str, Package, dict[str, Package]]:
    """(python version, kernel image package, userland packages by name) for the board's suite."""
    q = board.qemu
    assert q is not None
    meta = _need(apt, [q.kernel_package, "python3-minimal"])
    abi = next((d for d in meta[q.kernel_package].depends if d.startswith("linux-image-")), None)
    if abi is None:
        raise BoardtraceError(f"{q.kernel_package} ({q.suite}) depends on no linux-image-* package")
    kernel = _need(apt, [abi])[abi]
    match = next((m for d in meta["python3-minimal"].depends if (m := re.fullmatch(r"python(3\.\d+)-minimal", d))),
                 None)
    if match is None:
        raise BoardtraceError(f"python3-minimal ({q.suite}) names no python3.X-minimal")
    python = match.group(1)
    return python, kernel, _closure(apt, [n.format(py=python) for n in USERLAND])


def _closure(apt: Apt, roots: list[str]) -> dict[str, Package]:
    """The roots and the libraries they depend on (see PYTHON_LIBRARIES)."""
    found: dict[str, Package] = {}
    wanted = list(roots)
    while wanted:
        level = _need(apt, wanted)
        found.update(level)
        wanted = sorted({d for p in level.values() for d in p.depends
                         if _follow(p.name, d) and d not in found})
    return found


def _follow(parent: str, dep: str) -> bool:
    if not (dep.startswith("lib") or dep == "zlib1g"):
        return False  # programs and data (openssh-client, media-types, ...) are not needed
    return not parent.startswith("libpython") or bool(PYTHON_LIBRARIES.match(dep))


def _need(apt: Apt, names: list[str]) -> dict[str, Package]:
    found = apt.show(names)
    missing = [n for n in names if n not in found]
    if missing:
        raise BoardtraceError(f"package {', '.join(missing)} not found in Debian {apt.suite} for {apt.arch}")
    return found


def cache_key(board: Board, packages: list[Package], client_pub: str) -> str:
    q = board.qemu
    assert q is not None
    recipe = {"recipe": RECIPE_VERSION, "init": INIT, "etc": ETC, "arch": board.arch,
              "triplet": board.toolchain.triplet, "modules": list(q.modules),
              "optional_modules": list(OPTIONAL_MODULES), "client": client_pub,
              "packages": sorted(p.spec for p in packages)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


# -- keys ---------------------------------------------------------------------------------------

def client_keypair(cache: Path) -> tuple[Path, str]:
    """cache/client_ed25519 (OpenSSH format, made once per cache) and its public line."""
    private = cache / "client_ed25519"
    public = cache / "client_ed25519.pub"
    if not private.is_file() or not public.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        tmp = private.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        public.write_text(_public_line(key) + " boardtrace-qemu-client\n")
        tmp.replace(private)
    return private, " ".join(public.read_text().split()[:2])


def _public_line(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def dropbear_ed25519(key: Ed25519PrivateKey) -> bytes:
    """The key in dropbear's own file format: string "ssh-ed25519", string (seed || public)."""
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b
    return string(b"ssh-ed25519") + string(seed + public)


# -- the image ----------------------------------------------------------------------------------

def _build(board: Board, final: Path, key: str, python: str, kernel: Package,
           userland: dict[str, Package], debs: dict[str, tuple[Path, int]], client_pub: str) -> None:
    tmp = final.with_name(f".{key}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tree = Tree()
    for name in sorted(userland):
        tree.add_deb(debs[name][0], want=lambda p: not TRIMMED.match(p))
    tree.merge_usr()
    kver, vmlinuz, modules, builtin = _kernel(board, debs[kernel.name][0], tree)
    (tmp / "vmlinuz").write_bytes(vmlinuz)
    sftp = _sftp_server(tree)
    host_key = Ed25519PrivateKey.generate()
    _system_files(tree, python, host_key, client_pub)
    missing = tree.missing_libraries(board.toolchain.triplet)
    optional = {p: libs for p, libs in missing.items() if OPTIONAL_ELF.match(p)}
    required = {p: libs for p, libs in missing.items() if p not in optional}
    if required:
        path, libs = next(iter(sorted(required.items())))
        raise BoardtraceError(f"image {board.name}: /{path} needs {', '.join(libs)}, which no package in the "
                              f"image provides ({len(required)} such files); add the package to the recipe")
    initrd_size = tree.write(tmp / "initrd.gz")
    host_line = _public_line(host_key)
    (tmp / "host_key.pub").write_text(host_line + "\n")
    facts = {
        "board": board.name, "arch": board.arch, "suite": board.qemu.suite, "key": key,
        "recipe": RECIPE_VERSION, "kernel": {"package": kernel.name, "version": kernel.version, "release": kver},
        "python": python, "packages": {p.name: p.version for p in sorted([kernel, *userland.values()],
                                                                           key=lambda p: p.name)},
        "modules": modules, "builtin_modules": builtin, "sftp_server": sftp,
        "download_bytes": sum(d[1] for d in debs.values()),
        "deb_bytes": sum(d[0].stat().st_size for d in debs.values()),
        "sizes": {"vmlinuz": len(vmlinuz), "initrd.gz": initrd_size,
                  "files": sum(1 for _ in tree.files())},
        "missing_optional": {f"/{p}": libs for p, libs in sorted(optional.items())},
        "host_key": host_line, "ready_marker": READY,
    }
    (tmp / "image.json").write_text(json.dumps(facts, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _prune(final: Path) -> None:
    """Remove the board's older images (a running QEMU has already read its kernel and initrd)."""
    for other in final.parent.iterdir():
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def _kernel(board: Board, deb: Path, tree: Tree) -> tuple[str, bytes, list[str], list[str]]:
    """Put the board's modules (dependencies first) into the tree; returns (kernel release,
    kernel image, module load order, requested modules that are built in)."""
    q = board.qemu
    assert q is not None
    image, builtin_text = None, ""
    modules: dict[str, tuple[str, bytes]] = {}  # name -> (file name, raw bytes)
    for member, data in deb_members(deb):
        name = member.name.lstrip("./")
        if re.fullmatch(r"boot/vmlinu[xz]-.*", name):
            image = (name.split("-", 1)[1], data)
        elif name.endswith("/modules.builtin"):
            builtin_text = data.decode()
        elif re.search(r"\.ko(\.xz|\.gz|\.zst)?$", name):
            base = posixpath.basename(name)
            modules[_module_name(base)] = (base, data)
    if image is None:
        raise BoardtraceError(f"{deb.name}: no boot/vmlinuz-* or boot/vmlinux-* in the kernel package")
    kver, vmlinuz = image
    builtin = {_module_name(posixpath.basename(line)) for line in builtin_text.split()}
    order: list[str] = []
    built_in: list[str] = []

    def add(name: str, wanted_by: str) -> None:
        if name in order:
            return
        if name not in modules:
            if name in builtin:
                built_in.append(name)
                return
            raise BoardtraceError(f"image {board.name}: kernel module {name} ({wanted_by}) is not in "
                                  f"{deb.name}; check `qemu.modules` in {board.path.name}")
        base, data = modules[name]
        ko = decompress_module(base, data)
        for dep in filter(None, module_info(ko).get("depends", "").split(",")):
            add(_module_name(dep), f"needed by {name}")
        tree.file(f"usr/lib/modules/{kver}/{name}.ko", ko)
        order.append(name)

    for name in q.modules:
        add(_module_name(name), "listed in the profile")
    for name in OPTIONAL_MODULES:
        if name in modules:
            add(name, "optional")
    tree.file("usr/lib/modules/load.order", "".join(f"{kver}/{m}.ko\n" for m in order).encode())
    return kver, vmlinuz, order, sorted(set(built_in))


def _module_name(file_name: str) -> str:
    return re.sub(r"\.ko(\.xz|\.gz|\.zst)?$", "", file_name).replace("-", "_")


def _sftp_server(tree: Tree) -> str:
    """Link sftp-server where this dropbear looks for it (compiled in: Debian's is
    /usr/lib/sftp-server, upstream's /usr/libexec/sftp-server); returns that path."""
    dropbear = tree.get("usr/sbin/dropbear")
    real = "usr/lib/openssh/sftp-server"
    if dropbear is None or tree.get(real) is None:
        raise BoardtraceError("dropbear-bin or openssh-sftp-server shipped no dropbear / sftp-server")
    match = re.search(rb"(/[\w/.-]*sftp-server)\0", dropbear.data)
    path = match.group(1).decode() if match else "/usr/lib/sftp-server"
    if tree.get(path) is None:
        tree.link(path, "/" + real)
    return path


def _system_files(tree: Tree, python: str, host_key: Ed25519PrivateKey, client_pub: str) -> None:
    tree.file("init", INIT.encode(), 0o755)
    for path, (text, mode) in ETC.items():
        tree.file(path, text.encode(), mode)
    tree.file(HOST_KEY, dropbear_ed25519(host_key), 0o600)
    tree.dir("root", 0o700)
    tree.dir("root/.ssh", 0o700)
    tree.file("root/.ssh/authorized_keys", (client_pub + " boardtrace-qemu-client\n").encode(), 0o600)
    if tree.get("usr/bin/python3") is None:
        tree.link("usr/bin/python3", f"python{python}")
    for d in ("proc", "sys", "dev", "tmp", "run", "var/log", "mnt"):
        tree.dir(d)
    tree.dir("tmp", 0o1777)
    tree.node("dev/console", stat.S_IFCHR | 0o600, 5, 1)
    tree.node("dev/null", stat.S_IFCHR | 0o666, 1, 3)
