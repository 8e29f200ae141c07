"""Board and toolchain profiles: load and validate boards/*.yaml, boards/groups.yaml, toolchains/*.yaml.

Every profile becomes a frozen dataclass. Anything wrong in a file is one `ProfileError` line that
names the file, the line and the key path: "boards/rpi4.yaml:7: transport.port: expected an
integer, got 'twenty-two'". The schema is documented in docs/profiles.md; the key lists below are
the single source of truth for which keys exist.
"""

from __future__ import annotations

import platform
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Iterator, Literal

from yaml.nodes import MappingNode

from host import REPO
from host.errors import BoardtraceError
from host.yamlnodes import Mapping, NodeError, compose, describe, line_of

BOARDS_DIR: Final = REPO / "boards"
TOOLCHAINS_DIR: Final = REPO / "toolchains"
GROUPS_FILE: Final = "groups.yaml"

ARCHES: Final = ("x86_64", "aarch64", "riscv64", "armhf")
MACHINE_ARCH: Final = {  # platform.machine() -> our arch name, for `arch: auto`
    "x86_64": "x86_64", "amd64": "x86_64",
    "aarch64": "aarch64", "arm64": "aarch64",
    "armv7l": "armhf", "armv8l": "armhf",
    "riscv64": "riscv64",
}
QEMU_USER: Final = {"x86_64": "qemu-x86_64", "aarch64": "qemu-aarch64", "riscv64": "qemu-riscv64",
                    "armhf": "qemu-arm"}
QEMU_SYSTEM: Final = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64",
                      "riscv64": "qemu-system-riscv64", "armhf": "qemu-system-arm"}
QEMU_ACCELS: Final = ("kvm", "tcg")

BOARD_KEYS: Final = ("name", "description", "arch", "toolchain", "transport", "sudo", "python",
                     "workdir", "tracefs", "qemu")
LOCAL_TRANSPORT_KEYS: Final = ("kind",)
SSH_TRANSPORT_KEYS: Final = ("kind", "host", "port", "user", "key", "jump", "ssh_config", "host_key",
                             "connect_timeout")
QEMU_KEYS: Final = ("system", "machine", "cpu", "kvm_cpu", "accel", "bios", "console", "memory", "smp",
                    "append", "net_device", "modules", "kernel_package", "suite")
TOOLCHAIN_KEYS: Final = ("name", "triplet", "arch", "packages", "cc", "cflags", "qemu_user")
SCHEMA: Final[dict[str, tuple[str, ...]]] = {
    "board": BOARD_KEYS,
    "transport (local)": LOCAL_TRANSPORT_KEYS,
    "transport (ssh)": SSH_TRANSPORT_KEYS,
    "qemu": QEMU_KEYS,
    "toolchain": TOOLCHAIN_KEYS,
}
"""Every key the loader accepts, per section (docs/profiles.md documents each one)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WORD = re.compile(r"[^\s@]+")  # host names, users, aliases: no spaces, no '@'
_COMMAND = re.compile(r"[A-Za-z0-9_./+-]+")  # interpreter and compiler names
_HOP = re.compile(r"(?:(?P<user>[^@\s,]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@\s,:\[\]]+)(?::(?P<port>\d+))?")
_HOST_KEY = re.compile(r"(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)"
                       r"\s+[A-Za-z0-9+/]+={0,2}(\s.*)?")


# -- the profile objects ----------------------------------------------------------------------

@dataclass(frozen=True)
class LocalTransport:
    kind: Literal["local"] = "local"


@dataclass(frozen=True)
class SshTransport:
    host: str
    port: int = 22
    user: str | None = None
    key: str | None = None  # private key path, ~ expanded at use
    jump: str | None = None  # ProxyJump-style "user@host:port" (comma-separated hops)
    ssh_config: str | None = None  # Host alias looked up in ~/.ssh/config
    host_key: str | None = None  # pinned public key "ssh-ed25519 AAAA..." (else known_hosts)
    connect_timeout: float = 10.0
    kind: Literal["ssh"] = "ssh"


@dataclass(frozen=True)
class Toolchain:
    name: str
    triplet: str
    arch: str
    packages: tuple[str, ...]
    cc: str
    cflags: tuple[str, ...]
    qemu_user: str
    path: Path


@dataclass(frozen=True)
class QemuConfig:
    """How the QEMU runner boots this board (facts from shared/research/dmesg-and-qemu.md, Part B)."""
    system: str  # qemu-system-* binary
    machine: str  # -M
    cpu: str  # -cpu under TCG
    console: str  # console=<this> on the kernel command line
    kernel_package: str  # Debian meta package that depends on the current kernel image
    suite: str  # Debian suite the kernel and userland come from
    kvm_cpu: str | None = None  # -cpu under KVM (None: same as cpu)
    accel: tuple[str, ...] = ("tcg",)  # accelerators to try, in order
    bios: str | None = None  # -bios (riscv64: "default" = bundled OpenSBI)
    memory: int = 512  # MiB
    smp: int = 2
    append: str = "panic=-1"  # kernel command line besides console=
    net_device: str = "virtio-net-pci"
    modules: tuple[str, ...] = ()  # kernel modules the initramfs loads (dependencies added)


@dataclass(frozen=True)
class Board:
    name: str
    arch: str
    toolchain: Toolchain
    transport: LocalTransport | SshTransport
    sudo: bool
    python: tuple[str, ...]
    workdir: str
    tracefs: str | None
    qemu: QemuConfig | None
    description: str
    path: Path


class ProfileError(BoardtraceError):
    """A bad or missing profile. str() is one line: "<file>:<line>: <key path>: <problem>";
    the parts that do not apply are left out ("unknown board 'x' (known: ...)")."""

    def __init__(self, problem: str, file: Path | None = None, line: int | None = None, key: str = ""):
        self.problem = problem
        self.file = file
        self.line = line
        self.key = key
        where = ""
        if file is not None:
            where = display_path(file) + (f":{line}" if line is not None else "") + ": "
        super().__init__(where + (f"{key}: " if key else "") + problem)

    def __str__(self) -> str:
        return str(self.args[0])


def display_path(path: Path) -> str:
    """The path relative to the repo root when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# -- reading files ----------------------------------------------------------------------------

@contextmanager
def _in_file(path: Path) -> Iterator[None]:
    """Turn NodeErrors raised while reading `path` into ProfileErrors naming it."""
    try:
        yield
    except NodeError as e:
        raise ProfileError(e.problem, path, e.line, e.key) from None


def _document(path: Path, what: str) -> Mapping:
    """The top-level mapping of a YAML file (call inside _in_file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError(f"not UTF-8 text ({e.reason} at byte {e.start})", path) from None
    except OSError as e:
        raise ProfileError(f"cannot read: {e.strerror or e}", path) from None
    root = compose(text)
    if root is None:
        raise NodeError(f"empty file, expected a mapping ({what})")
    if not isinstance(root, MappingNode):
        raise NodeError(f"expected a mapping at the top level ({what}), got {describe(root)}",
                        line_of(root))
    return Mapping(root)


def _names(directory: Path) -> list[str]:
    """Profile names in a directory: the *.yaml file stems, sorted (groups.yaml excluded)."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if p.name != GROUPS_FILE)


def _name(m: Mapping, path: Path) -> str:
    name = m.string("name")
    if not _NAME.fullmatch(name):
        m.fail("name", f"expected letters, digits, '.', '_' or '-', got {name!r}")
    if name != path.stem:
        m.fail("name", f"{name!r} does not match the file name {path.name!r}")
    return name


def _arch(m: Mapping, key: str = "arch") -> str:
    arch = m.string(key)
    if arch not in ARCHES:
        m.fail(key, f"expected one of {', '.join(ARCHES)}, got {arch!r}")
    return arch


def _command(m: Mapping, key: str) -> str:
    value = m.string(key)
    if not _COMMAND.fullmatch(value):
        m.fail(key, f"expected a command name or path without spaces, got {value!r}")
    return value


def _absolute(m: Mapping, key: str, value: str | None) -> str | None:
    if value is not None and not value.startswith("/"):
        m.fail(key, f"expected an absolute path, got {value!r}")
    return value


# -- toolchains -------------------------------------------------------------------------------

def _parse_toolchain(path: Path) -> Toolchain:
    with _in_file(path):
        m = _document(path, "a toolchain profile")
        m.check_keys(TOOLCHAIN_KEYS)
        name = _name(m, path)
        triplet = m.string("triplet")
        arch = _arch(m)
        packages = m.strings("packages")
        cc = _command(m, "cc")
        cflags = m.strings("cflags", (), non_empty=False)
        qemu_user = _command(m, "qemu_user")
        if Path(qemu_user).name != QEMU_USER[arch]:
            m.fail("qemu_user", f"{qemu_user!r} does not run {arch} programs (expected {QEMU_USER[arch]})")
        return Toolchain(name=name, triplet=triplet, arch=arch, packages=packages, cc=cc,
                         cflags=cflags, qemu_user=qemu_user, path=path)


def load_toolchain(name: str, toolchains_dir: Path = TOOLCHAINS_DIR) -> Toolchain:
    known = _names(toolchains_dir)
    if name not in known:
        raise ProfileError(f"unknown toolchain {name!r} (known: {', '.join(known) or 'none'})")
    return _parse_toolchain(toolchains_dir / f"{name}.yaml")


def list_toolchains(toolchains_dir: Path = TOOLCHAINS_DIR) -> list[Toolchain]:
    """All toolchains, sorted by name; a broken file raises ProfileError."""
    return [_parse_toolchain(toolchains_dir / f"{n}.yaml") for n in _names(toolchains_dir)]


# -- boards -----------------------------------------------------------------------------------

def host_arch() -> str | None:
    """This machine's arch in our names (None when it is none of ARCHES)."""
    return MACHINE_ARCH.get(platform.machine().lower())


def _ssh_transport(t: Mapping) -> SshTransport:
    t.check_keys(SSH_TRANSPORT_KEYS)
    host = t.string("host")
    if not _WORD.fullmatch(host) or host.startswith("-"):
        t.fail("host", f"expected a host name or address (user goes in `user`), got {host!r}")
    user = t.optional_string("user")
    if user is not None and (not _WORD.fullmatch(user) or user.startswith("-")):
        t.fail("user", f"expected a user name without spaces or '@', got {user!r}")
    jump = t.optional_string("jump")
    for hop in (jump.split(",") if jump is not None else []):
        match = _HOP.fullmatch(hop.strip())
        if match is None or (match["port"] is not None and not 1 <= int(match["port"]) <= 65535):
            t.fail("jump", f"expected [user@]host[:port] hops separated by ',', got {jump!r}")
    alias = t.optional_string("ssh_config")
    if alias is not None and not _WORD.fullmatch(alias):
        t.fail("ssh_config", f"expected a Host alias without spaces, got {alias!r}")
    host_key = t.optional_string("host_key")
    if host_key is not None and not _HOST_KEY.fullmatch(host_key.strip()):
        t.fail("host_key", "expected a public key line like 'ssh-ed25519 AAAA...'")
    port = t.integer("port", 22, low=1, high=65535)
    return SshTransport(host=host, port=port, user=user, key=t.optional_string("key"),
                        jump=jump, ssh_config=alias, host_key=host_key.strip() if host_key else None,
                        connect_timeout=t.number("connect_timeout", 10.0))


def _transport(m: Mapping) -> LocalTransport | SshTransport:
    t = m.mapping("transport", required=True)
    assert t is not None
    kind = t.string("kind")
    if kind == "local":
        t.check_keys(LOCAL_TRANSPORT_KEYS)
        return LocalTransport()
    if kind == "ssh":
        return _ssh_transport(t)
    t.fail("kind", f"expected one of local, ssh, got {kind!r}")


def _qemu(m: Mapping, arch: str) -> QemuConfig | None:
    q = m.mapping("qemu")
    if q is None:
        return None
    q.check_keys(QEMU_KEYS)
    system = _command(q, "system")
    if Path(system).name != QEMU_SYSTEM[arch]:
        q.fail("system", f"{system!r} does not emulate {arch} (expected {QEMU_SYSTEM[arch]})")
    accel = q.strings("accel", ("tcg",))
    for i, a in enumerate(accel):
        if a not in QEMU_ACCELS or a in accel[:i]:
            raise NodeError(f"expected each of {', '.join(QEMU_ACCELS)} at most once, got {a!r}",
                            q.item_line("accel", i), f"{q.key_path('accel')}[{i}]")
    return QemuConfig(
        system=system, machine=q.string("machine"), cpu=q.string("cpu"), console=q.string("console"),
        kernel_package=q.string("kernel_package"), suite=q.string("suite"),
        kvm_cpu=q.optional_string("kvm_cpu"), accel=accel, bios=q.optional_string("bios"),
        memory=q.integer("memory", 512, low=32), smp=q.integer("smp", 2, low=1, high=256),
        append=q.string("append", "panic=-1", empty=True),
        net_device=q.string("net_device", "virtio-net-pci"),
        modules=q.strings("modules", (), non_empty=False))


def _board_toolchain(m: Mapping, arch: str, toolchains_dir: Path) -> Toolchain:
    name = m.string("toolchain")
    known = _names(toolchains_dir)
    if name == "auto":
        matching = [t for t in list_toolchains(toolchains_dir) if t.arch == arch]
        if len(matching) != 1:
            found = ", ".join(t.name for t in matching) or "none"
            m.fail("toolchain", f"'auto' needs exactly one toolchain for arch {arch}, found: {found}")
        return matching[0]
    if name not in known:
        m.fail("toolchain", f"unknown toolchain {name!r} (known: {', '.join(known) or 'none'})")
    toolchain = _parse_toolchain(toolchains_dir / f"{name}.yaml")
    if toolchain.arch != arch:
        m.fail("toolchain", f"toolchain {name!r} is for arch {toolchain.arch}, the board's arch is {arch}")
    return toolchain


def _parse_board(path: Path, toolchains_dir: Path) -> Board:
    with _in_file(path):
        m = _document(path, "a board profile")
        m.check_keys(BOARD_KEYS)
        name = _name(m, path)
        description = m.string("description", "", empty=True)
        transport = _transport(m)
        if m.string("arch") == "auto":
            if transport.kind != "local":
                m.fail("arch", "'auto' is only allowed with transport kind local")
            arch = host_arch()
            if arch is None:
                m.fail("arch", f"'auto': this machine's {platform.machine()!r} is none of "
                               f"{', '.join(ARCHES)}")
        else:
            arch = _arch(m)
        toolchain = _board_toolchain(m, arch, toolchains_dir)
        python = m.strings("python", ("python3",))
        for i, interpreter in enumerate(python):
            if not _COMMAND.fullmatch(interpreter):
                raise NodeError(f"expected an interpreter name or path without spaces, got {interpreter!r}",
                                m.item_line("python", i), f"python[{i}]")
        workdir = _absolute(m, "workdir", m.string("workdir", "/tmp/boardtrace"))
        assert workdir is not None
        return Board(name=name, arch=arch, toolchain=toolchain, transport=transport,
                     sudo=m.boolean("sudo", False), python=python, workdir=workdir,
                     tracefs=_absolute(m, "tracefs", m.optional_string("tracefs")),
                     qemu=_qemu(m, arch), description=description, path=path)


def load_board(name: str, boards_dir: Path = BOARDS_DIR, toolchains_dir: Path = TOOLCHAINS_DIR) -> Board:
    known = _names(boards_dir)
    if name not in known:
        raise ProfileError(f"unknown board {name!r} (known: {', '.join(known) or 'none'})")
    return _parse_board(boards_dir / f"{name}.yaml", toolchains_dir)


def list_boards(boards_dir: Path = BOARDS_DIR, toolchains_dir: Path = TOOLCHAINS_DIR) -> list[Board]:
    """All boards, sorted by name; a broken file raises ProfileError."""
    return [_parse_board(boards_dir / f"{n}.yaml", toolchains_dir) for n in _names(boards_dir)]


# -- groups -----------------------------------------------------------------------------------

def load_groups(boards_dir: Path = BOARDS_DIR) -> dict[str, tuple[str, ...]]:
    """boards/groups.yaml: group name -> board names (no file: no groups)."""
    path = boards_dir / GROUPS_FILE
    if not path.exists():
        return {}
    boards = _names(boards_dir)
    groups: dict[str, tuple[str, ...]] = {}
    with _in_file(path):
        m = _document(path, "group name -> list of boards")
        for group in m.keys():
            if not _NAME.fullmatch(group):
                m.fail(group, "expected a group name of letters, digits, '.', '_' or '-'")
            if group in boards:
                m.fail(group, f"group name clashes with board {group!r}")
            members = m.strings(group)
            for i, board in enumerate(members):
                where = (m.item_line(group, i), f"{group}[{i}]")
                if board not in boards:
                    raise NodeError(f"unknown board {board!r} (known: {', '.join(boards) or 'none'})", *where)
                if board in members[:i]:
                    raise NodeError(f"board {board!r} is listed twice", *where)
            groups[group] = members
    return groups


def resolve_boards(spec: str, boards_dir: Path = BOARDS_DIR,
                   toolchains_dir: Path = TOOLCHAINS_DIR) -> list[Board]:
    """Boards named by "a,b,group": board and group names, in order, each board once."""
    known = _names(boards_dir)
    groups = load_groups(boards_dir)
    listing = f"known: {', '.join(known) or 'none'}"
    if groups:
        listing += f"; groups: {', '.join(sorted(groups))}"
    names: list[str] = []
    for word in (w.strip() for w in spec.split(",")):
        if not word:
            continue
        if word in groups:
            names.extend(groups[word])
        elif word in known:
            names.append(word)
        else:
            raise ProfileError(f"unknown board {word!r} ({listing})")
    if not names:
        raise ProfileError(f"no board given ({listing})")
    return [load_board(n, boards_dir, toolchains_dir) for n in dict.fromkeys(names)]


# -- reachability -----------------------------------------------------------------------------

def _probe_address(transport: SshTransport) -> tuple[str, int]:
    """Where the first TCP connection goes: the first jump host if any, else the board."""
    if transport.jump:
        match = _HOP.fullmatch(transport.jump.split(",")[0].strip())
        assert match is not None  # validated at load
        return match["host"].strip("[]"), int(match["port"] or 22)
    return transport.host, transport.port


def reachable(boards: list[Board], timeout: float = 2.0) -> dict[str, bool]:
    """Board name -> whether it answers: local always; ssh when a TCP connect to host:port (or the
    first jump host) succeeds within `timeout`. All boards are probed at once in daemon threads,
    so the call returns after about `timeout` even when name lookups hang."""
    result = {b.name: isinstance(b.transport, LocalTransport) for b in boards}

    def probe(name: str, address: tuple[str, int]) -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                result[name] = True
        except OSError:
            pass

    threads = [threading.Thread(target=probe, args=(b.name, _probe_address(b.transport)), daemon=True,
                                name=f"reachable-{b.name}")
               for b in boards if isinstance(b.transport, SshTransport)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(result)
