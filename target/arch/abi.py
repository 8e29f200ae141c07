"""Syscall ABIs (personalities) the tracer knows: name, AUDIT_ARCH id, word size, names.

The name tables are generated modules under target.arch.syscalls; each is imported on first
use, so an agent that never prints a syscall name never loads one. x32 (x86_64 numbers with
bit 0x40000000) has no table: its numbers print as unknown.
"""

import importlib

from target.arch import AUDIT_ARCH, interpreter_arch


class Abi:
    """One syscall ABI. names ({nr: name}) and numbers ({name: nr}) load lazily."""

    def __init__(self, name, audit_arch, word, endian="little"):
        self.name = name
        self.audit_arch = audit_arch
        self.word = word
        self.endian = endian
        self._names = None
        self._numbers = None

    def __repr__(self):
        return "Abi(%r)" % self.name

    @property
    def names(self):
        if self._names is None:
            self._names = importlib.import_module("target.arch.syscalls." + self.name).NAMES
        return self._names

    @property
    def numbers(self):
        if self._numbers is None:
            self._numbers = {name: nr for nr, name in self.names.items()}
        return self._numbers

    def syscall_name(self, nr):
        """The name strace prints for nr; syscall_0x<hex> for numbers it does not know."""
        name = self.names.get(nr)
        return name if name is not None else "syscall_0x%x" % nr


ABIS = {abi.name: abi for abi in (
    Abi("x86_64", AUDIT_ARCH["x86_64"], 8),
    Abi("i386", AUDIT_ARCH["i386"], 4),
    Abi("aarch64", AUDIT_ARCH["aarch64"], 8),
    Abi("arm", AUDIT_ARCH["armhf"], 4),
    Abi("riscv64", AUDIT_ARCH["riscv64"], 8),
)}

# target.arch.interpreter_arch() names -> ABI names
_INTERPRETER_ABI = {"armhf": "arm", "armel": "arm"}


def by_audit_arch(value):
    """The Abi whose AUDIT_ARCH_* id is value (PTRACE_GET_SYSCALL_INFO's arch), or None."""
    for abi in ABIS.values():
        if abi.audit_arch == value:
            return abi
    return None


def by_arch_name(arch):
    """The Abi for a target.arch name (x86_64, i386, aarch64, armhf, armel, arm, riscv64),
    or None for architectures without a table (x32, riscv32, unknown:N)."""
    return ABIS.get(_INTERPRETER_ABI.get(arch, arch))


def native():
    """The Abi of the running Python interpreter, or None when it has no table."""
    return by_arch_name(interpreter_arch())
