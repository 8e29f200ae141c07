"""Generate target/arch/syscalls/<abi>.py from the kernel UAPI headers Debian packages.

For each ABI the C preprocessor lists the __NR_* (and ARM's __ARM_NR_*) macros of that
architecture's <asm/unistd.h> (`cpp -dM`), then expands each one, so the numbers are exactly
what the kernel headers say. Where strace prints a name other than the macro's, STRACE_NAMES
says so; the tables hold the names strace prints.

    python -m host.syscalltables           regenerate every table
    python -m host.syscalltables --check   exit 1 if a committed table differs from the headers
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from host import REPO
from host.errors import BoardtraceError

OUT_DIR = REPO / "target" / "arch" / "syscalls"
COMMAND = "python -m host.syscalltables"
LINE_WIDTH = 99


@dataclass(frozen=True)
class Source:
    """Where one ABI's numbers come from: a Debian package's include dir, a header in it,
    and the -D options that select this ABI as the target compiler would."""

    abi: str
    package: str
    include: str
    header: str
    defines: tuple[str, ...] = ()


SOURCES = (
    Source("x86_64", "linux-libc-dev:amd64", "/usr/include/x86_64-linux-gnu", "asm/unistd_64.h"),
    Source("i386", "linux-libc-dev-i386-cross", "/usr/i686-linux-gnu/include", "asm/unistd_32.h"),
    Source("aarch64", "linux-libc-dev-arm64-cross", "/usr/aarch64-linux-gnu/include",
           "asm/unistd.h", ("__aarch64__", "__LP64__")),
    Source("arm", "linux-libc-dev-armhf-cross", "/usr/arm-linux-gnueabihf/include",
           "asm/unistd.h", ("__arm__", "__ARM_EABI__")),
    Source("riscv64", "linux-libc-dev-riscv64-cross", "/usr/riscv64-linux-gnu/include",
           "asm/unistd.h", ("__riscv", "__riscv_xlen=64", "__LP64__", "__SIZEOF_POINTER__=8")),
)

# The old ABI's header of ARM: numbers that EABI dropped (time, socketcall, ipc, ...) still
# have names in strace, which shares one table between both ABIs and prints them that way.
ARM_OABI = Source("arm", "linux-libc-dev-armhf-cross", "/usr/arm-linux-gnueabihf/include",
                  "asm/unistd.h", ("__arm__",))
ARM_SYSCALL_MASK = 0x0FFFFF

# Macros of that form that are not syscalls: bases, masks, counts. (asm-generic's
# __NR3264_* helpers do not match SYSCALL_MACRO; the __NR_* names built on them do.)
NOT_SYSCALLS = re.compile(r"^__NR_(SYSCALL_BASE|OABI_SYSCALL_BASE|SYSCALL_MASK|syscalls|"
                          r"arch_specific_syscall)$|^__ARM_NR_BASE$")
SYSCALL_MACRO = re.compile(r"^#define (__NR_\w+|__ARM_NR_\w+)\s")

# Numbers whose printed name is not (or not only) the kernel macro's name, or that the
# kernel header lacks but strace names, per ABI. From strace's src/linux/<arch>/syscallent.h.
STRACE_NAMES = {
    "arm": {
        270: "fadvise64_64",  # __NR_arm_fadvise64_64
        341: "sync_file_range2",  # __NR_arm_sync_file_range and __NR_sync_file_range2
    },
    "riscv64": {38: "renameat"},  # strace's table is shared with aarch64, which has it
}
# strace's arm table names the low numbers that ARM never implemented (waitpid, break,
# oldstat, ..., putpmsg) as i386 does, up to 254 where the two part ways.
ARM_I386_NAMES_BELOW = 254


def package_version(package: str) -> str:
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                capture_output=True, text=True)
    except FileNotFoundError:
        raise BoardtraceError("dpkg-query not found: the syscall tables come from Debian packages")
    if result.returncode != 0 or not result.stdout:
        raise BoardtraceError(f"{package} is not installed: apt-get install {package}")
    return result.stdout


def cpp(source: Source, text: str, *options: str) -> str:
    """Run the C preprocessor on text with only the source's include dir and defines."""
    if shutil.which("cpp") is None:
        raise BoardtraceError("cpp not found: apt-get install cpp")
    args = ["cpp", "-undef", "-nostdinc", "-P", f"-I{source.include}", *options]
    args += [f"-D{d}" for d in source.defines]
    result = subprocess.run(args + ["-"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise BoardtraceError(f"cpp failed on {source.include}/{source.header}: "
                              f"{result.stderr.strip().splitlines()[0]}")
    return result.stdout


def macro_names(source: Source) -> list[str]:
    """Every syscall macro the header defines (cpp -dM lists them unexpanded)."""
    defined = cpp(source, f"#include <{source.header}>\n", "-dM")
    names = [m.group(1) for m in map(SYSCALL_MACRO.match, defined.splitlines()) if m]
    return sorted(n for n in names if not NOT_SYSCALLS.search(n))


def evaluate(expression: str) -> int:
    """The value of an expanded macro: integer literals, + - << | and parentheses only."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expression)
    return _value(ast.parse(text.strip(), mode="eval").body, expression)


def _value(node: ast.AST, expression: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand, expression)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, expression), _value(node.right, expression)
        operations = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.LShift: int.__lshift__,
                      ast.BitOr: int.__or__}
        if type(node.op) in operations:
            return operations[type(node.op)](left, right)
    raise BoardtraceError(f"cannot evaluate syscall number expression {expression!r}")


def macro_values(source: Source) -> dict[str, int]:
    """Macro name -> number, each macro expanded by cpp itself."""
    names = macro_names(source)
    text = f"#include <{source.header}>\n" + "".join(f"@@ {i} {n}\n" for i, n in enumerate(names))
    values = {}
    for line in cpp(source, text).splitlines():
        if line.startswith("@@ "):
            _, index, expression = line.split(" ", 2)
            values[names[int(index)]] = evaluate(expression)
    return values


def syscall_name(macro: str) -> str:
    return macro[len("__ARM_NR_"):] if macro.startswith("__ARM_NR_") else macro[len("__NR_"):]


def header_table(source: Source) -> dict[int, str]:
    """Number -> name as strace prints it. Fails on two names for one number unless
    STRACE_NAMES decides."""
    overrides = STRACE_NAMES.get(source.abi, {})
    names: dict[int, str] = {}
    for macro, nr in sorted(macro_values(source).items()):
        name = syscall_name(macro)
        if nr in names and names[nr] != name and nr not in overrides:
            raise BoardtraceError(f"{source.abi}: syscall {nr} is both {names[nr]} and {name}; "
                                  f"say which strace prints in STRACE_NAMES")
        names[nr] = name
    names.update(overrides)
    return names


def arm_table(eabi: dict[int, str], i386: dict[int, str]) -> dict[int, str]:
    """ARM's EABI names, then the names of the numbers EABI dropped (from the OABI header)
    and of those ARM never had, as strace prints them."""
    names = dict(eabi)
    for macro, nr in macro_values(ARM_OABI).items():
        if macro.startswith("__NR_"):
            names.setdefault(nr & ARM_SYSCALL_MASK, syscall_name(macro))
    for nr, name in i386.items():
        if nr < ARM_I386_NAMES_BELOW:
            names.setdefault(nr, name)
    return names


def tables() -> dict[str, dict[int, str]]:
    """ABI -> {nr: name}, sorted by number."""
    result = {source.abi: header_table(source) for source in SOURCES}
    result["arm"] = arm_table(result["arm"], result["i386"])
    return {abi: dict(sorted(names.items())) for abi, names in result.items()}


def render(source: Source, names: dict[int, str], version: str) -> str:
    """The module text: a provenance header and one NAMES dict literal."""
    lines = [
        f"# Generated by `{COMMAND}` from {source.include}/{source.header}",
        f"# of the Debian package {source.package} {version}. Do not edit.",
        f'"""{source.abi} syscall names by number, as strace prints them."""',
        "",
        "NAMES = {",
    ]
    line = "   "
    for nr, name in names.items():
        entry = f' {nr if nr < 0x1000 else hex(nr)}: "{name}",'
        if len(line) + len(entry) > LINE_WIDTH:
            lines.append(line)
            line = "   "
        line += entry
    lines += [line, "}", ""]
    return "\n".join(lines)


INIT = f'''# Generated by `{COMMAND}`. Do not edit.
"""Syscall names by number, one module per ABI: {", ".join(s.abi for s in SOURCES)}.

Each module defines NAMES = {{nr: name}}; target.arch.abi loads them on first use.
"""
'''


def generate() -> dict[Path, str]:
    """Every generated file's path and text, made from the installed headers."""
    versions = {source.abi: package_version(source.package) for source in SOURCES}
    names = tables()
    files = {OUT_DIR / "__init__.py": INIT}
    for source in SOURCES:
        text = render(source, names[source.abi], versions[source.abi])
        files[OUT_DIR / f"{source.abi}.py"] = text
    return files


def names_of(text: str) -> dict:
    """The NAMES dict of a generated module's text (without importing it)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["NAMES"]:
            return ast.literal_eval(node.value)
    return {}


def check(files: dict[Path, str]) -> list[str]:
    """Differences between the committed tables and freshly generated ones. Only the tables
    count: a newer package version that changes no number is reported but is no difference."""
    problems, notes = [], []
    for path, text in files.items():
        shown = path.relative_to(REPO)
        if not path.exists():
            problems.append(f"{shown}: missing")
            continue
        committed = path.read_text()
        if committed == text:
            continue
        old, new = names_of(committed), names_of(text)
        if old != new:
            changed = sorted(nr for nr in old.keys() | new.keys() if old.get(nr) != new.get(nr))
            sample = ", ".join(f"{nr}: {old.get(nr)} -> {new.get(nr)}" for nr in changed[:5])
            problems.append(f"{shown}: {len(changed)} numbers differ ({sample})")
        elif path.name == "__init__.py":
            problems.append(f"{shown}: differs")
        else:
            notes.append(f"{shown}: same table, other header comment (package version?)")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return problems


def write(files: dict[Path, str]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.syscalltables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed tables instead of writing them")
    args = parser.parse_args(argv)
    try:
        files = generate()
    except BoardtraceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.check:
        write(files)
        return 0
    problems = check(files)
    for problem in problems:
        print(f"out of date: {problem}", file=sys.stderr)
    if problems:
        print(f"run `{COMMAND}` to regenerate", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
