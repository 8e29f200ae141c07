"""Per-architecture facts, keyed by the names target.arch.elf.elf_arch() returns."""

import os
import sys

from target.arch.elf import arch_name, elf_arch, elf_header

__all__ = ["arch_name", "elf_arch", "elf_header", "interpreter_arch", "describe",
           "SECCOMP_SYSCALL", "AUDIT_ARCH", "audit_arch_name"]

# seccomp(2) syscall number per architecture (x86_64 syscall_64.tbl, i386 syscall_32.tbl,
# arm syscall.tbl, asm-generic unistd.h for aarch64 and riscv)
SECCOMP_SYSCALL = {
    "x86_64": 317,
    "x32": 0x40000000 + 317,
    "i386": 354,
    "aarch64": 277,
    "riscv64": 277,
    "riscv32": 277,
    "armhf": 383,
    "armel": 383,
}

# AUDIT_ARCH_* values (linux/audit.h), as PTRACE_GET_SYSCALL_INFO reports them
AUDIT_ARCH = {
    "x86_64": 0xC000003E,
    "i386": 0x40000003,
    "aarch64": 0xC00000B7,
    "armhf": 0x40000028,
    "riscv64": 0xC00000F3,
    "riscv32": 0x400000F3,
}


def audit_arch_name(value):
    """Name for an AUDIT_ARCH_* value (arm for both 32-bit ARM flavours)."""
    if value == AUDIT_ARCH["armhf"]:
        return "arm"
    for name, number in AUDIT_ARCH.items():
        if number == value:
            return name
    return "unknown:0x%x" % value


def interpreter_arch():
    """Architecture of the running Python interpreter, from its ELF header."""
    return elf_arch(os.path.realpath(sys.executable))


def describe(path=None):
    """Facts for `info`: the interpreter's ELF architecture next to uname's machine."""
    path = os.path.realpath(path or sys.executable)
    header = elf_header(path)
    machine = os.uname().machine
    return {
        "name": arch_name(header),
        "file": path,
        "bits": header["bits"],
        "endian": header["endian"],
        "e_machine": header["machine"],
        "e_flags": "0x%x" % header["flags"],
        "uname_machine": machine,
    }
