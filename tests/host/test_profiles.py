"""host/profiles.py: the shipped profiles load; every malformed file is one exact error line."""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from host import REPO
from host import profiles
from host.errors import BoardtraceError
from host.profiles import (Board, LocalTransport, ProfileError, SshTransport, list_boards, list_toolchains,
                           load_board, load_groups, load_toolchain, reachable, resolve_boards)

SHIPPED_BOARDS = ["beaglebone-black", "local", "qemu-aarch64", "qemu-armhf", "qemu-riscv64", "qemu-x86_64",
                  "rpi4", "visionfive2"]
SHIPPED_TOOLCHAINS = ["aarch64-linux-gnu", "arm-linux-gnueabihf", "riscv64-linux-gnu", "x86_64-linux-gnu"]
BOARD_KEY_LIST = "arch, description, name, python, qemu, sudo, toolchain, tracefs, transport, workdir"
HEAD = "name: x\narch: aarch64\ntoolchain: aarch64-linux-gnu\n"  # lines 1-3 of most test boards
QEMU_OK = ("qemu:\n  system: qemu-system-aarch64\n  machine: virt\n  cpu: cortex-a57\n"
           "  console: ttyAMA0\n  kernel_package: linux-image-cloud-arm64\n  suite: bookworm\n")


@pytest.fixture
def tree(tmp_path: Path) -> SimpleNamespace:
    """A boards/ and toolchains/ pair in tmp_path, the toolchains copied from the repo."""
    boards, toolchains = tmp_path / "boards", tmp_path / "toolchains"
    boards.mkdir()
    shutil.copytree(REPO / "toolchains", toolchains)
    return SimpleNamespace(boards=boards, toolchains=toolchains)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def board_error(tree: SimpleNamespace, text: str, name: str = "x") -> tuple[Path, str]:
    path = write(tree.boards, name, text)
    with pytest.raises(ProfileError) as caught:
        load_board(name, tree.boards, tree.toolchains)
    return path, str(caught.value)


# -- the shipped profiles ---------------------------------------------------------------------

def test_every_shipped_board_loads() -> None:
    boards = list_boards()
    assert [b.name for b in boards] == SHIPPED_BOARDS
    assert sorted(p.stem for p in (REPO / "boards").glob("*.yaml") if p.name != "groups.yaml") == SHIPPED_BOARDS
    for board in boards:
        assert board.toolchain.arch == board.arch
        assert board.path == REPO / "boards" / f"{board.name}.yaml"
        assert board.python and board.workdir.startswith("/")
        assert (board.qemu is not None) == board.name.startswith("qemu-")
        if board.qemu is not None:
            assert board.qemu.system == profiles.QEMU_SYSTEM[board.arch]
            assert isinstance(board.transport, SshTransport) and board.transport.host == "127.0.0.1"


def test_every_shipped_toolchain_loads() -> None:
    toolchains = list_toolchains()
    assert [t.name for t in toolchains] == SHIPPED_TOOLCHAINS
    assert sorted(p.stem for p in (REPO / "toolchains").glob("*.yaml")) == SHIPPED_TOOLCHAINS
    for t in toolchains:
        assert t.triplet == t.name and t.cc == f"{t.triplet}-gcc"
        assert t.qemu_user == profiles.QEMU_USER[t.arch]
        assert "-static" in t.cflags


def test_shipped_board_facts() -> None:
    rpi4 = load_board("rpi4")
    assert rpi4.transport == SshTransport(host="raspberrypi.local", port=22, user="pi")
    assert (rpi4.arch, rpi4.toolchain.name, rpi4.sudo, rpi4.python) == (
        "aarch64", "aarch64-linux-gnu", True, ("python3",))
    bbb = load_board("beaglebone-black")
    assert (bbb.arch, bbb.transport.user, bbb.sudo) == ("armhf", "debian", True)  # type: ignore[union-attr]
    assert load_board("visionfive2").arch == "riscv64"
    local = load_board("local")
    assert local.transport == LocalTransport()
    assert local.arch == profiles.host_arch() and local.toolchain.arch == local.arch
    assert local.workdir == "/tmp/boardtrace-local" and local.tracefs is None
    armhf = load_board("qemu-armhf").qemu
    assert armhf is not None and armhf.machine == "virt,highmem=off" and armhf.console == "ttyAMA0"
    riscv = load_board("qemu-riscv64").qemu
    assert riscv is not None and (riscv.bios, riscv.suite, riscv.cpu) == ("default", "trixie", "rv64")


def test_shipped_groups() -> None:
    groups = load_groups()
    assert groups["qemu"] == ("qemu-aarch64", "qemu-riscv64", "qemu-armhf", "qemu-x86_64")
    assert [b.name for b in resolve_boards("qemu")] == list(groups["qemu"])


def test_schema_keys_are_the_dataclass_fields() -> None:
    def fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)} - {"path"}

    assert set(profiles.BOARD_KEYS) == fields(Board)
    assert set(profiles.SSH_TRANSPORT_KEYS) == fields(SshTransport)
    assert set(profiles.LOCAL_TRANSPORT_KEYS) == fields(LocalTransport)
    assert set(profiles.QEMU_KEYS) == fields(profiles.QemuConfig)
    assert set(profiles.TOOLCHAIN_KEYS) == fields(profiles.Toolchain)


def test_docs_describe_every_key_the_loader_knows() -> None:
    docs = (REPO / "docs" / "profiles.md").read_text(encoding="utf-8")
    assert profiles.SCHEMA
    missing = [f"{section}: {key}" for section, keys in profiles.SCHEMA.items() for key in keys
               if not re.search(rf"^\| `{re.escape(key)}` \|", docs, re.MULTILINE)]
    assert missing == []


def test_every_shipped_file_uses_only_schema_keys() -> None:
    """Beyond loading: the top-level keys of each shipped file are in SCHEMA (none is ignored)."""
    import yaml
    for path in (REPO / "boards").glob("*.yaml"):
        if path.name == "groups.yaml":
            continue
        data = yaml.safe_load(path.read_text())
        assert set(data) <= set(profiles.BOARD_KEYS), path
        assert set(data["transport"]) <= set(profiles.SSH_TRANSPORT_KEYS), path
        assert set(data.get("qemu") or {}) <= set(profiles.QEMU_KEYS), path
    for path in (REPO / "toolchains").glob("*.yaml"):
        assert set(yaml.safe_load(path.read_text())) <= set(profiles.TOOLCHAIN_KEYS), path


# -- one exact line per mistake ---------------------------------------------------------------

BOARD_ERRORS = [
    # unknown keys
    (HEAD + "colour: red\ntransport: {kind: local}\n", f":4: colour: unknown key (known: {BOARD_KEY_LIST})"),
    (HEAD + "transport:\n  kind: local\n  host: h\n",
     ":6: transport.host: unknown key (known: kind)"),
    (HEAD + "transport: {kind: ssh, host: h, hostname: h}\n",
     ":4: transport.hostname: unknown key (known: connect_timeout, host, host_key, jump, key, kind, port, "
     "ssh_config, user)"),
    (HEAD + "transport: {kind: local}\n" + QEMU_OK + "  ram: 512\n",
     ":12: qemu.ram: unknown key (known: accel, append, bios, console, cpu, kernel_package, kvm_cpu, machine, "
     "memory, modules, net_device, smp, suite, system)"),
    # missing keys
    ("name: x\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n", ": arch: missing required key"),
    ("arch: aarch64\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n", ": name: missing required key"),
    (HEAD, ": transport: missing required key"),
    (HEAD + "transport:\n  kind: ssh\n  port: 22\n", ":4: transport.host: missing required key"),
    (HEAD + "transport:\n  host: h\n", ":4: transport.kind: missing required key"),
    (HEAD + "transport: {kind: local}\nqemu:\n  system: qemu-system-aarch64\n  machine: virt\n",
     ":5: qemu.cpu: missing required key"),
    # wrong types
    (HEAD + "transport:\n  kind: ssh\n  host: h\n  port: twenty-two\n",
     ":7: transport.port: expected an integer, got 'twenty-two'"),
    (HEAD + "transport: {kind: ssh, host: h, port: '22'}\n", ":4: transport.port: expected an integer, got '22'"),
    (HEAD + "transport: {kind: ssh, host: h, port: true}\n", ":4: transport.port: expected an integer, got true"),
    (HEAD + "transport: {kind: ssh, host: h, port: 22.5}\n", ":4: transport.port: expected an integer, got 22.5"),
    (HEAD + "transport: {kind: ssh, host: h, port: }\n", ":4: transport.port: expected an integer, got null"),
    (HEAD + "transport: {kind: ssh, host: h, connect_timeout: 10s}\n",
     ":4: transport.connect_timeout: expected a number, got '10s'"),
    (HEAD + "transport: {kind: ssh, host: h, connect_timeout: 0}\n",
     ":4: transport.connect_timeout: expected a positive number, got 0"),
    (HEAD + "transport: {kind: ssh, host: 22}\n", ":4: transport.host: expected a string, got 22"),
    (HEAD + "transport: {kind: ssh, host: h, user: [pi]}\n", ":4: transport.user: expected a string or null, got a list"),
    (HEAD + "transport: [local]\n", ":4: transport: expected a mapping, got a list"),
    (HEAD + "transport:\n", ":4: transport: expected a mapping, got null"),
    (HEAD + "transport: {kind: local}\nsudo: 1\n", ":5: sudo: expected true or false, got 1"),
    (HEAD + "transport: {kind: local}\nsudo: 'true'\n", ":5: sudo: expected true or false, got 'true'"),
    (HEAD + "transport: {kind: local}\npython: python3\n", ":5: python: expected a list of strings, got 'python3'"),
    (HEAD + "transport: {kind: local}\npython:\n  - python3\n  - 3.11\n", ":7: python[1]: expected a string, got 3.11"),
    (HEAD + "transport: {kind: local}\npython: []\n",
     ":5: python: expected a non-empty list of strings, got an empty list"),
    (HEAD + "transport: {kind: local}\nworkdir: 5\n", ":5: workdir: expected a string, got 5"),
    (HEAD + "transport: {kind: local}\ndescription: {a: b}\n", ":5: description: expected a string, got a mapping"),
    (HEAD + "transport: {kind: local}\ntracefs: [x]\n", ":5: tracefs: expected a string or null, got a list"),
    (HEAD + "transport: {kind: local}\nqemu: virt\n", ":5: qemu: expected a mapping, got 'virt'"),
    (HEAD + "transport: {kind: local}\n" + QEMU_OK + "  memory: 512M\n",
     ":12: qemu.memory: expected an integer, got '512M'"),
    ("name: x\narch: 64\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n",
     ":2: arch: expected a string, got 64"),
    # bad values
    (HEAD + "transport: {kind: ssh, host: h, port: 0}\n", ":4: transport.port: expected an integer in 1-65535, got 0"),
    (HEAD + "transport:\n  kind: ssh\n  host: h\n  port: 65536\n",
     ":7: transport.port: expected an integer in 1-65535, got 65536"),
    (HEAD + "transport: {kind: telnet}\n", ":4: transport.kind: expected one of local, ssh, got 'telnet'"),
    (HEAD + "transport: {kind: ssh, host: pi@h}\n",
     ":4: transport.host: expected a host name or address (user goes in `user`), got 'pi@h'"),
    (HEAD + "transport: {kind: ssh, host: h, jump: 'a@b:70000'}\n",
     ":4: transport.jump: expected [user@]host[:port] hops separated by ',', got 'a@b:70000'"),
    (HEAD + "transport: {kind: ssh, host: h, host_key: AAAA}\n",
     ":4: transport.host_key: expected a public key line like 'ssh-ed25519 AAAA...'"),
    ("name: x\narch: mips\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n",
     ":2: arch: expected one of x86_64, aarch64, riscv64, armhf, got 'mips'"),
    ("name: x\narch: auto\ntoolchain: auto\ntransport: {kind: ssh, host: h}\n",
     ":2: arch: 'auto' is only allowed with transport kind local"),
    ("name: y\narch: aarch64\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n",
     ":1: name: 'y' does not match the file name 'x.yaml'"),
    (HEAD + "transport: {kind: local}\nworkdir: tmp/boardtrace\n",
     ":5: workdir: expected an absolute path, got 'tmp/boardtrace'"),
    (HEAD + "transport: {kind: local}\npython: ['python3 -I']\n",
     ":5: python[0]: expected an interpreter name or path without spaces, got 'python3 -I'"),
    (HEAD + "transport: {kind: local}\n" + QEMU_OK.replace("qemu-system-aarch64", "qemu-system-arm"),
     ":6: qemu.system: 'qemu-system-arm' does not emulate aarch64 (expected qemu-system-aarch64)"),
    (HEAD + "transport: {kind: local}\n" + QEMU_OK + "  accel: [kvm, hvf]\n",
     ":12: qemu.accel[1]: expected each of kvm, tcg at most once, got 'hvf'"),
    # toolchains
    ("name: x\narch: aarch64\ntoolchain: armv9\ntransport: {kind: local}\n",
     ":3: toolchain: unknown toolchain 'armv9' (known: " + ", ".join(SHIPPED_TOOLCHAINS) + ")"),
    ("name: x\narch: riscv64\ntoolchain: aarch64-linux-gnu\ntransport: {kind: local}\n",
     ":3: toolchain: toolchain 'aarch64-linux-gnu' is for arch aarch64, the board's arch is riscv64"),
    # duplicates
    (HEAD + "transport: {kind: local}\nsudo: true\nsudo: false\n", ":6: sudo: duplicate key (first at line 5)"),
    (HEAD + "transport:\n  kind: ssh\n  host: a\n  host: b\n", ":7: transport.host: duplicate key (first at line 6)"),
    (HEAD + "transport: {kind: local}\n<<: {sudo: true}\n",
     ":5: merge keys (<<) are not supported; write the keys out"),
    (HEAD + "transport: {kind: local}\n1: one\n", ":5: expected a string key, got 1"),
    # YAML syntax, empty and non-mapping files
    (HEAD + "transport:\n  kind: local\n sudo: true\n", ":6: YAML syntax error: expected <block end>, but found "
     "'<block mapping start>'"),
    (HEAD + "transport: {kind: local\n", ":5: YAML syntax error: expected ',' or '}', but got '<stream end>'"),
    (HEAD + "transport:\n\tkind: local\n", ":5: YAML syntax error: found character '\\t' that cannot start any token"),
    (HEAD + "transport: {kind: local}\nsudo: true: false\n", ":5: YAML syntax error: mapping values are not allowed here"),
    (HEAD + "transport: {kind: local}\n---\nname: y\n",
     ":5: YAML syntax error: expected a single document in the stream, but found another document"),
    ("", ": empty file, expected a mapping (a board profile)"),
    ("# nothing but a comment\n\n", ": empty file, expected a mapping (a board profile)"),
    ("- name: x\n- arch: aarch64\n", ":1: expected a mapping at the top level (a board profile), got a list"),
    ("\nrpi4\n", ":2: expected a mapping at the top level (a board profile), got 'rpi4'"),
]


@pytest.mark.parametrize(("text", "expected"), BOARD_ERRORS)
def test_board_error_is_one_exact_line(tree: SimpleNamespace, text: str, expected: str) -> None:
    path, message = board_error(tree, text)
    assert message == f"{path}{expected}"
    assert "\n" not in message


def test_error_in_a_shipped_file_names_its_real_line(tree: SimpleNamespace) -> None:
    original = (REPO / "boards" / "rpi4.yaml").read_text()
    lines = original.splitlines()
    port_line = next(i for i, line in enumerate(lines, 1) if line.strip() == "port: 22")
    path, message = board_error(tree, original.replace("port: 22", "port: twenty-two"), "rpi4")
    assert message == f"{path}:{port_line}: transport.port: expected an integer, got 'twenty-two'"


def test_profile_error_paths_are_relative_to_the_repo() -> None:
    error = ProfileError("expected an integer, got 'x'", REPO / "boards" / "rpi4.yaml", 7, "transport.port")
    assert str(error) == "boards/rpi4.yaml:7: transport.port: expected an integer, got 'x'"
    assert isinstance(error, BoardtraceError)
    assert (error.line, error.key) == (7, "transport.port")
    assert str(ProfileError("unknown board 'x'")) == "unknown board 'x'"


def test_not_utf8(tree: SimpleNamespace) -> None:
    path = tree.boards / "x.yaml"
    path.write_bytes(b"name: x\ndescription: \xff\n")
    with pytest.raises(ProfileError, match=r"x\.yaml: not UTF-8 text"):
        load_board("x", tree.boards, tree.toolchains)


def test_unknown_board_lists_the_known_ones(tree: SimpleNamespace) -> None:
    write(tree.boards, "b", HEAD.replace("name: x", "name: b") + "transport: {kind: local}\n")
    write(tree.boards, "a", HEAD.replace("name: x", "name: a") + "transport: {kind: local}\n")
    with pytest.raises(ProfileError) as caught:
        load_board("rpi5", tree.boards, tree.toolchains)
    assert str(caught.value) == "unknown board 'rpi5' (known: a, b)"
    with pytest.raises(ProfileError) as caught:
        load_board("rpi5")
    assert str(caught.value) == f"unknown board 'rpi5' (known: {', '.join(SHIPPED_BOARDS)})"


def test_unknown_toolchain_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError) as caught:
        load_toolchain("armv9")
    assert str(caught.value) == f"unknown toolchain 'armv9' (known: {', '.join(SHIPPED_TOOLCHAINS)})"


def test_list_boards_stops_at_a_broken_file(tree: SimpleNamespace) -> None:
    write(tree.boards, "a", HEAD.replace("name: x", "name: a") + "transport: {kind: local}\n")
    assert [b.name for b in list_boards(tree.boards, tree.toolchains)] == ["a"]
    path = write(tree.boards, "b", HEAD.replace("name: x", "name: b") + "transport: {kind: lokal}\n")
    with pytest.raises(ProfileError) as caught:
        list_boards(tree.boards, tree.toolchains)
    assert str(caught.value) == f"{path}:4: transport.kind: expected one of local, ssh, got 'lokal'"


def test_defaults(tree: SimpleNamespace) -> None:
    write(tree.boards, "x", HEAD + "transport: {kind: ssh, host: h}\n")
    board = load_board("x", tree.boards, tree.toolchains)
    assert board.transport == SshTransport(host="h", port=22, user=None, key=None, jump=None, ssh_config=None,
                                           host_key=None, connect_timeout=10.0)
    assert (board.sudo, board.python, board.workdir, board.tracefs, board.qemu, board.description) == (
        False, ("python3",), "/tmp/boardtrace", None, None, "")
    write(tree.boards, "x", HEAD + "transport: {kind: local}\n" + QEMU_OK)
    qemu = load_board("x", tree.boards, tree.toolchains).qemu
    assert qemu == profiles.QemuConfig(system="qemu-system-aarch64", machine="virt", cpu="cortex-a57",
                                       console="ttyAMA0", kernel_package="linux-image-cloud-arm64",
                                       suite="bookworm", kvm_cpu=None, accel=("tcg",), bios=None, memory=512,
                                       smp=2, append="panic=-1", net_device="virtio-net-pci", modules=())


def test_every_ssh_key_is_read(tree: SimpleNamespace) -> None:
    write(tree.boards, "x", HEAD + (
        "transport:\n  kind: ssh\n  host: board.lab\n  port: 2222\n  user: me\n  key: ~/.ssh/id_ed25519\n"
        "  jump: admin@gw:2200,[::1]\n  ssh_config: lab-board\n  host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n"
        "  connect_timeout: 2.5\n") + "sudo: true\npython: [python3.11, /usr/bin/python3]\ntracefs: /sys/kernel/tracing\n")
    board = load_board("x", tree.boards, tree.toolchains)
    assert board.transport == SshTransport(host="board.lab", port=2222, user="me", key="~/.ssh/id_ed25519",
                                           jump="admin@gw:2200,[::1]", ssh_config="lab-board",
                                           host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", connect_timeout=2.5)
    assert (board.sudo, board.python, board.tracefs) == (True, ("python3.11", "/usr/bin/python3"),
                                                         "/sys/kernel/tracing")


def test_auto_arch_and_toolchain(tree: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tree.boards, "x", "name: x\narch: auto\ntoolchain: auto\ntransport: {kind: local}\n")
    monkeypatch.setattr(profiles.platform, "machine", lambda: "armv7l")
    board = load_board("x", tree.boards, tree.toolchains)
    assert (board.arch, board.toolchain.name) == ("armhf", "arm-linux-gnueabihf")
    monkeypatch.setattr(profiles.platform, "machine", lambda: "mips64")
    path, message = board_error(tree, "name: x\narch: auto\ntoolchain: auto\ntransport: {kind: local}\n")
    assert message == f"{path}:2: arch: 'auto': this machine's 'mips64' is none of x86_64, aarch64, riscv64, armhf"
    monkeypatch.setattr(profiles.platform, "machine", lambda: "arm64")
    shutil.copy(tree.toolchains / "aarch64-linux-gnu.yaml", tree.toolchains / "aarch64-linux-musl.yaml")
    (tree.toolchains / "aarch64-linux-musl.yaml").write_text(
        (tree.toolchains / "aarch64-linux-gnu.yaml").read_text().replace("name: aarch64-linux-gnu",
                                                                          "name: aarch64-linux-musl"))
    path, message = board_error(tree, "name: x\narch: auto\ntoolchain: auto\ntransport: {kind: local}\n")
    assert message == (f"{path}:3: toolchain: 'auto' needs exactly one toolchain for arch aarch64, "
                       "found: aarch64-linux-gnu, aarch64-linux-musl")


def test_broken_toolchain_names_the_toolchain_file(tree: SimpleNamespace) -> None:
    tc = tree.toolchains / "aarch64-linux-gnu.yaml"
    tc.write_text(tc.read_text().replace("qemu_user: qemu-aarch64", "qemu_user: qemu-arm"))
    line = next(i for i, text in enumerate(tc.read_text().splitlines(), 1) if text.startswith("qemu_user:"))
    _, message = board_error(tree, HEAD + "transport: {kind: local}\n")
    assert message == f"{tc}:{line}: qemu_user: 'qemu-arm' does not run aarch64 programs (expected qemu-aarch64)"


TOOLCHAIN_OK = ("name: t\ntriplet: aarch64-linux-gnu\narch: aarch64\npackages: [gcc-aarch64-linux-gnu]\n"
                "cc: aarch64-linux-gnu-gcc\nqemu_user: qemu-aarch64\n")


@pytest.mark.parametrize(("text", "expected"), [
    (TOOLCHAIN_OK + "cflags: -O2\n", ":7: cflags: expected a list of strings, got '-O2'"),
    (TOOLCHAIN_OK.replace("packages: [gcc-aarch64-linux-gnu]", "packages: []"),
     ":4: packages: expected a non-empty list of strings, got an empty list"),
    (TOOLCHAIN_OK.replace("arch: aarch64", "arch: auto"),
     ":3: arch: expected one of x86_64, aarch64, riscv64, armhf, got 'auto'"),
    (TOOLCHAIN_OK + "description: x\n",
     ":7: description: unknown key (known: arch, cc, cflags, name, packages, qemu_user, triplet)"),
    (TOOLCHAIN_OK.replace("cc: aarch64-linux-gnu-gcc\n", ""), ": cc: missing required key"),
])
def test_toolchain_error_is_one_exact_line(tree: SimpleNamespace, text: str, expected: str) -> None:
    path = write(tree.toolchains, "t", text)
    with pytest.raises(ProfileError) as caught:
        load_toolchain("t", tree.toolchains)
    assert str(caught.value) == f"{path}{expected}"
    assert load_toolchain("aarch64-linux-gnu", tree.toolchains).cflags == ("-O2", "-g", "-static")


# -- groups -----------------------------------------------------------------------------------

@pytest.fixture
def fleet(tree: SimpleNamespace) -> SimpleNamespace:
    for name in ("a", "b", "c"):
        write(tree.boards, name, HEAD.replace("name: x", f"name: {name}") + "transport: {kind: local}\n")
    return tree


def test_groups_and_resolve(fleet: SimpleNamespace) -> None:
    write(fleet.boards, "groups", "pair: [b, a]\nall:\n  - a\n  - b\n  - c\n")
    assert load_groups(fleet.boards) == {"pair": ("b", "a"), "all": ("a", "b", "c")}
    resolved = resolve_boards(" c, pair ,a,,all", fleet.boards, fleet.toolchains)
    assert [b.name for b in resolved] == ["c", "b", "a"]
    assert all(isinstance(b, Board) for b in resolved)
    with pytest.raises(ProfileError) as caught:
        resolve_boards("a,rpi5", fleet.boards, fleet.toolchains)
    assert str(caught.value) == "unknown board 'rpi5' (known: a, b, c; groups: all, pair)"
    with pytest.raises(ProfileError) as caught:
        resolve_boards(" , ", fleet.boards, fleet.toolchains)
    assert str(caught.value) == "no board given (known: a, b, c; groups: all, pair)"


def test_no_groups_file_means_no_groups(fleet: SimpleNamespace) -> None:
    assert load_groups(fleet.boards) == {}
    with pytest.raises(ProfileError) as caught:
        resolve_boards("qemu", fleet.boards, fleet.toolchains)
    assert str(caught.value) == "unknown board 'qemu' (known: a, b, c)"


@pytest.mark.parametrize(("text", "expected"), [
    ("pair: [a, b]\nqemu:\n  - a\n  - qemu-mips\n", ":4: qemu[1]: unknown board 'qemu-mips' (known: a, b, c)"),
    ("pair: [a, z]\n", ":1: pair[1]: unknown board 'z' (known: a, b, c)"),
    ("pair: [a, a]\n", ":1: pair[1]: board 'a' is listed twice"),
    ("pair: a\n", ":1: pair: expected a list of strings, got 'a'"),
    ("pair: []\n", ":1: pair: expected a non-empty list of strings, got an empty list"),
    ("b: [a]\n", ":1: b: group name clashes with board 'b'"),
    ("pair: [a]\npair: [b]\n", ":2: pair: duplicate key (first at line 1)"),
    ("[a, b]\n", ":1: expected a mapping at the top level (group name -> list of boards), got a list"),
    ("pair: [a\n", ":2: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
])
def test_group_error_is_one_exact_line(fleet: SimpleNamespace, text: str, expected: str) -> None:
    path = write(fleet.boards, "groups", text)
    for call in (lambda: load_groups(fleet.boards), lambda: resolve_boards("a", fleet.boards, fleet.toolchains)):
        with pytest.raises(ProfileError) as caught:
            call()
        assert str(caught.value) == f"{path}{expected}"
    assert [b.name for b in list_boards(fleet.boards, fleet.toolchains)] == ["a", "b", "c"]  # not a board


# -- reachability -----------------------------------------------------------------------------

def ssh_board(name: str, port: int, jump: str | None = None, host: str = "127.0.0.1") -> Board:
    board = load_board("rpi4")
    return dataclasses.replace(board, name=name, transport=SshTransport(host=host, port=port, jump=jump))


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connect is refused
    return port


def test_reachable_real_sockets(listener: int, closed_port: int) -> None:
    boards = [load_board("local"), ssh_board("up", listener), ssh_board("down", closed_port),
              ssh_board("via-jump", closed_port, jump=f"me@127.0.0.1:{listener}"),
              ssh_board("via-dead-jump", listener, jump=f"127.0.0.1:{closed_port}")]
    assert reachable(boards, timeout=2.0) == {"local": True, "up": True, "down": False, "via-jump": True,
                                              "via-dead-jump": False}
    assert reachable([]) == {}


def test_reachable_probes_in_parallel_and_keeps_its_deadline() -> None:
    """A listener whose accept queue is full drops SYNs, so connects hang until the timeout:
    four such boards must take about one timeout, not four."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue until a connect hangs
            c = socket.socket()
            c.settimeout(0.3)
            fillers.append(c)
            try:
                c.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.fail("the accept queue never filled")
        start = time.monotonic()
        result = reachable([ssh_board(f"hang{i}", port) for i in range(4)], timeout=0.5)
        elapsed = time.monotonic() - start
        assert result == {f"hang{i}": False for i in range(4)}
        assert elapsed < 1.6, elapsed  # one after another would take >= 2.0 s
    finally:
        for c in fillers:
            c.close()
        server.close()
