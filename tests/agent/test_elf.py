"""target.arch.elf against real ELF files, cross-checked with readelf and file(1)."""

import os
import platform
import re
import shutil
import struct
import subprocess
import sys

import pytest

from target import arch
from target.arch import elf

# readelf -h "Machine:" text for each of our arch names
READELF_MACHINE = {
    "x86_64": "Advanced Micro Devices X86-64",
    "i386": "Intel 80386",
    "aarch64": "AArch64",
    "armhf": "ARM",
    "armel": "ARM",
    "riscv64": "RISC-V",
    "riscv32": "RISC-V",
}

# uname -m values a kernel of each userland arch may report (a 32-bit userland may run on a
# 64-bit kernel of the same family)
UNAME_FAMILY = {
    "x86_64": {"x86_64"},
    "i386": {"i386", "i486", "i586", "i686", "x86_64"},
    "aarch64": {"aarch64", "arm64"},
    "armhf": {"armv6l", "armv7l", "armv8l", "aarch64"},
    "armel": {"armv5tel", "armv6l", "armv7l", "aarch64"},
    "riscv64": {"riscv64"},
    "riscv32": {"riscv32", "riscv64"},
}

# cross toolchains and sysroots that hold real foreign ELF files
FOREIGN = {
    "aarch64": ("aarch64-linux-gnu-gcc", "/usr/aarch64-linux-gnu"),
    "riscv64": ("riscv64-linux-gnu-gcc", "/usr/riscv64-linux-gnu"),
    "armhf": ("arm-linux-gnueabihf-gcc", "/usr/arm-linux-gnueabihf"),
    "armel": ("arm-linux-gnueabi-gcc", "/usr/arm-linux-gnueabi"),
    "i386": ("i686-linux-gnu-gcc", "/usr/i686-linux-gnu"),
}


def readelf_header(path):
    """{field: value} from `readelf -h path`."""
    out = subprocess.run(["readelf", "-h", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=True).stdout
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None,
                                   reason="readelf (binutils) is not installed")


def assert_matches_readelf(path):
    name = elf.elf_arch(path)
    header = elf.elf_header(path)
    fields = readelf_header(path)
    assert fields["Class"] == "ELF%d" % header["bits"]
    assert ("little endian" if header["endian"] == "little" else "big endian") in fields["Data"]
    assert fields["Machine"] == READELF_MACHINE[name]
    flags = fields["Flags"]
    assert int(flags.split(",")[0], 16) == header["flags"]
    if name == "armhf":
        assert "hard-float ABI" in flags
    if name == "armel":
        assert "hard-float ABI" not in flags
    return name


def interpreter():
    return os.path.realpath(sys.executable)


def test_interpreter_arch_agrees_with_uname():
    name = elf.elf_arch(interpreter())
    assert name in UNAME_FAMILY, name
    assert platform.machine() in UNAME_FAMILY[name]
    expected_bits = 64 if sys.maxsize > 2 ** 32 else 32
    assert elf.elf_header(interpreter())["bits"] == expected_bits
    assert elf.elf_header(interpreter())["endian"] == sys.byteorder


@needs_readelf
def test_interpreter_matches_readelf():
    assert assert_matches_readelf(interpreter()) == arch.interpreter_arch()


@pytest.mark.skipif(shutil.which("file") is None, reason="file(1) is not installed")
def test_interpreter_matches_file():
    out = subprocess.run(["file", "-bL", interpreter()], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    words = {"x86_64": "x86-64", "i386": "Intel 80386", "aarch64": "ARM aarch64",
             "armhf": "ARM, EABI5", "armel": "ARM", "riscv64": "RISC-V", "riscv32": "RISC-V"}
    name = elf.elf_arch(interpreter())
    assert words[name] in out
    assert ("%d-bit" % elf.elf_header(interpreter())["bits"]) in out


@needs_readelf
def test_system_libraries_match_readelf():
    """The C library and a shared object of the stdlib, mapped into this very process."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if ".so" in line.split()[-1]})
    assert paths, "no shared objects mapped (static interpreter?)"
    for path in paths[:5]:
        assert assert_matches_readelf(path) == elf.elf_arch(interpreter())


def is_elf(path):
    """By its magic, read here directly (sysroots hold linker scripts named libc.so)."""
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def foreign_elf(name):
    """A real ELF file built for arch name, or the reason there is none here."""
    compiler, sysroot = FOREIGN[name]
    if os.path.isdir(sysroot):
        for root, _, files in os.walk(sysroot):
            for f in sorted(files):
                path = os.path.join(root, f)
                if ".so" in f and not os.path.islink(path) and is_elf(path):
                    return path, None
    cc = shutil.which(compiler)
    if cc:
        return cc, "compile"
    return None, "no %s ELF file here: %s is not on PATH and %s does not exist" % (
        name, compiler, sysroot)


@needs_readelf
@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_binaries(name, tmp_path):
    path, how = foreign_elf(name)
    if path is None:
        pytest.skip(how)
    if how == "compile":
        src = tmp_path / "t.c"
        src.write_text("int f(double x) { return (int)(x * 2); }\n")
        obj = str(tmp_path / "t.o")
        subprocess.run([path, "-c", "-o", obj, str(src)], check=True)
        path = obj
    assert elf.elf_arch(path) == name
    assert assert_matches_readelf(path) == name


def header(bits, endian, machine, flags):
    """A complete ELF header with no program or section headers (readelf accepts it)."""
    order = "<" if endian == "little" else ">"
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if endian == "little" else 2,
                                1, 0]) + bytes(8)
    if bits == 64:
        rest = struct.pack(order + "HHIQQQIHHHHHH", 2, machine, 1, 0, 0, 0, flags, 64,
                           0, 0, 0, 0, 0)
    else:
        rest = struct.pack(order + "HHIIIIIHHHHHH", 2, machine, 1, 0, 0, 0, flags, 52,
                           0, 0, 0, 0, 0)
    return ident + rest


HEADERS = [
    ("x86_64", 64, "little", 62, 0),
    ("i386", 32, "little", 3, 0),
    ("aarch64", 64, "little", 183, 0),
    ("aarch64", 64, "big", 183, 0),
    ("armhf", 32, "little", 40, 0x05000400),
    ("armel", 32, "little", 40, 0x05000200),
    ("armel", 32, "big", 40, 0x05000000),
    ("riscv64", 64, "little", 243, 0x5),
    ("riscv32", 32, "little", 243, 0x1),
    ("unknown:21", 64, "big", 21, 0),
]


@pytest.mark.parametrize("name,bits,endian,machine,flags", HEADERS)
def test_built_headers(tmp_path, name, bits, endian, machine, flags):
    path = str(tmp_path / name.replace(":", "_"))
    with open(path, "wb") as f:
        f.write(header(bits, endian, machine, flags))
    assert elf.elf_arch(path) == name
    assert elf.elf_header(path) == {"bits": bits, "endian": endian, "machine": machine,
                                    "flags": flags}
    if shutil.which("readelf") and not name.startswith("unknown"):
        assert assert_matches_readelf(path) == name


@pytest.mark.parametrize("data,message", [
    (b"", "not an ELF file: only 0 bytes"),
    (b"#!/bin/sh\necho not elf\n", "not an ELF file: magic"),
    (b"\x7fELF\x03\x01" + bytes(58), "bad ELF class 3"),
    (b"\x7fELF\x02\x07" + bytes(58), "bad ELF data encoding 7"),
    (header(64, "little", 183, 0)[:40], "truncated ELF header: 40 bytes, want 64"),
    (header(32, "little", 40, 0x400)[:51], "truncated ELF header: 51 bytes, want 52"),
])
def test_malformed(tmp_path, data, message):
    path = str(tmp_path / "bad")
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ValueError) as info:
        elf.elf_arch(path)
    assert str(info.value).startswith(path + ": ")
    assert message in str(info.value)


def test_this_text_file_is_not_elf():
    with pytest.raises(ValueError, match=r"test_elf\.py: not an ELF file"):
        elf.elf_arch(__file__)


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        elf.elf_arch(str(tmp_path / "absent"))


def test_describe_reports_both_views():
    facts = arch.describe()
    assert facts["file"] == interpreter()
    assert facts["name"] == elf.elf_arch(interpreter())
    uname_m = subprocess.run(["uname", "-m"], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.strip()
    assert facts["uname_machine"] == uname_m
    assert re.match(r"^0x[0-9a-f]+$", facts["e_flags"])


def test_seccomp_syscall_number_known_for_every_arch():
    for name in READELF_MACHINE:
        assert isinstance(arch.SECCOMP_SYSCALL[name], int)
    assert arch.audit_arch_name(0xC000003E) == "x86_64"
    assert arch.audit_arch_name(0x40000028) == "arm"
    assert arch.audit_arch_name(0x1234) == "unknown:0x1234"
