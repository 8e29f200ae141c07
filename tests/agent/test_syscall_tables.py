"""The generated syscall tables: equal to what the kernel headers say, and, for x86_64 and
i386, to the names the real strace prints for every number from 0 to 599."""

import ast
import os
import re
import shutil
import subprocess

import pytest

from tests.agent import i386

from host import syscalltables
from target.arch import AUDIT_ARCH, abi as abis
from target.arch import interpreter_arch

TABLE_DIR = syscalltables.OUT_DIR
UNKNOWN_UP_TO = 600

# Calls every syscall number in [lo, hi) with zero arguments under a seccomp filter that
# makes each fail with ENOSYS before it runs (only exit_group is let through), so none of
# them does anything. The tracer still sees every entry: ptrace stops before seccomp runs.
# x86_64 uretprobe (335) and uprobe (336) bypass seccomp (Linux >= 6.11) and would SIGILL.
EVERY_SYSCALL_PROGRAM = r"""
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long lo = strtol(argv[1], 0, 0), hi = strtol(argv[2], 0, 0);
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 38),
	};
	struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 2;
	for (long nr = lo; nr < hi; nr++)
		if (nr != SYS_exit_group && !(sizeof(long) == 8 && (nr == 335 || nr == 336)))
			syscall(nr, 0, 0, 0, 0, 0, 0);
	syscall(SYS_exit_group, 0);
	return 0;
}
"""
SKIPPED = {"x86_64": {335, 336}, "i386": set()}
EXIT_GROUP = {"x86_64": 231, "i386": 252}


def missing_header_packages():
    missing = [s.package for s in syscalltables.SOURCES
               if not os.path.exists(os.path.join(s.include, s.header))]
    if shutil.which("cpp") is None:
        missing.append("cpp")
    if shutil.which("dpkg-query") is None:
        missing.append("dpkg-query")
    return missing


@pytest.fixture(scope="module")
def generated():
    missing = missing_header_packages()
    if missing:
        pytest.skip("the headers to regenerate from need: apt-get install %s" % " ".join(missing))
    return syscalltables.generate()


def test_committed_tables_equal_the_kernel_headers(generated):
    assert syscalltables.check(generated) == []
    assert syscalltables.main(["--check"]) == 0


def test_check_reports_a_changed_number(generated):
    path = TABLE_DIR / "aarch64.py"
    changed = {path: generated[path].replace('56: "openat"', '56: "opened"')}
    [problem] = syscalltables.check(changed)
    assert "1 numbers differ" in problem and "56: openat -> opened" in problem


def test_each_table_is_one_names_dict_with_its_provenance():
    for source in syscalltables.SOURCES:
        text = (TABLE_DIR / (source.abi + ".py")).read_text()
        assert "`python -m host.syscalltables`" in text and source.package in text
        tree = ast.parse(text)
        assert [type(n).__name__ for n in tree.body] == ["Expr", "Assign"]
        names = syscalltables.names_of(text)
        assert all(isinstance(nr, int) and re.match(r"^[a-z_][a-z0-9_]*$", name)
                   for nr, name in names.items())
        assert len(set(names.values())) == len(names), "a name appears twice"


def test_evaluate_reads_the_header_expressions():
    assert syscalltables.evaluate("(0 + 322)") == 322
    assert syscalltables.evaluate("((0 +0x0f0000)+5)") == 0x0F0005
    assert syscalltables.evaluate("(244 + 15)") == 259
    assert syscalltables.evaluate("(0x40000000 + 512UL)") == 0x40000200
    with pytest.raises(syscalltables.BoardtraceError):
        syscalltables.evaluate("__NR_undefined + 1")


@pytest.mark.parametrize("abi,expected", [
    ("x86_64", {257: "openat", 59: "execve", 231: "exit_group", 110: "getppid",
                262: "newfstatat", 23: "select", 435: "clone3"}),
    ("i386", {295: "openat", 11: "execve", 252: "exit_group", 64: "getppid", 140: "_llseek",
              142: "_newselect", 82: "select", 300: "fstatat64", 173: "rt_sigreturn"}),
    ("aarch64", {56: "openat", 221: "execve", 94: "exit_group", 173: "getppid",
                 79: "newfstatat", 139: "rt_sigreturn", 38: "renameat", 435: "clone3"}),
    ("riscv64", {56: "openat", 221: "execve", 94: "exit_group", 173: "getppid",
                 259: "riscv_flush_icache", 38: "renameat"}),
    ("arm", {322: "openat", 11: "execve", 248: "exit_group", 64: "getppid", 140: "_llseek",
             142: "_newselect", 270: "fadvise64_64", 341: "sync_file_range2", 13: "time",
             102: "socketcall", 7: "waitpid", 189: "putpmsg", 0x0F0002: "cacheflush",
             0x0F0005: "set_tls", 403: "clock_gettime64"}),
])
def test_known_numbers(abi, expected):
    names = abis.ABIS[abi].names
    assert {nr: names.get(nr) for nr in expected} == expected


def test_arm_holes_stay_unknown_as_in_strace():
    arm = abis.ABIS["arm"]
    assert [arm.syscall_name(nr) for nr in (222, 223, 254, 255, 402)] == [
        "syscall_0xde", "syscall_0xdf", "syscall_0xfe", "syscall_0xff", "syscall_0x192"]


def test_abi_lookups():
    x86_64 = abis.ABIS["x86_64"]
    assert abis.by_audit_arch(AUDIT_ARCH["x86_64"]) is x86_64
    assert abis.by_audit_arch(AUDIT_ARCH["armhf"]).name == "arm"
    assert abis.by_audit_arch(0x12345678) is None
    assert x86_64.numbers["openat"] == 257 and x86_64.syscall_name(1000) == "syscall_0x3e8"
    assert x86_64.syscall_name(0x40000000 + 257) == "syscall_0x40000101"  # x32: unknown
    assert (x86_64.word, abis.ABIS["arm"].word, x86_64.endian) == (8, 4, "little")
    assert abis.by_arch_name("armel") is abis.by_arch_name("armhf") is abis.ABIS["arm"]
    assert abis.by_arch_name("x32") is None
    assert abis.native() is abis.by_arch_name(interpreter_arch())


def test_tables_load_only_when_asked():
    fresh = abis.Abi("riscv64", AUDIT_ARCH["riscv64"], 8)
    assert fresh._names is None
    assert fresh.syscall_name(56) == "openat" and fresh._names is not None


# --- the real strace ---------------------------------------------------------------------

def build(tmp_path, flags):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "every.c"
    src.write_text(EVERY_SYSCALL_PROGRAM)
    exe = tmp_path / ("every" + "".join(flags))
    cc = i386.CC if "-m32" in flags else ["gcc"]
    done = subprocess.run([*cc, "-O2", *[f for f in flags if f != "-m32"], "-o", str(exe), str(src)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if done.returncode != 0:
        why = i386.MISSING if "-m32" in flags else "gcc cannot build"
        pytest.skip("%s: %s" % (why, done.stdout.strip().splitlines()[-1]))
    return str(exe)


def strace_names(exe, tmp_path):
    """The syscall names strace printed after the seccomp filter went in, in order."""
    out = tmp_path / "strace.out"
    done = subprocess.run(["strace", "-qq", "-o", str(out), exe, "0", str(UNKNOWN_UP_TO)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    lines = out.read_text().splitlines()
    if done.returncode == 2 and any("PR_SET_SECCOMP" in line and "= -1" in line for line in lines):
        pytest.skip("seccomp filters are not allowed here")
    assert done.returncode == 0, done.stdout
    start = next(i for i, line in enumerate(lines) if "PR_SET_SECCOMP" in line) + 1
    return [m.group(1) for m in (re.match(r"^(\w+)\(", line) for line in lines[start:]) if m]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("abi,flags", [("x86_64", ()), ("i386", ("-m32",))])
def test_every_number_is_named_as_strace_names_it(abi, flags, tmp_path):
    if interpreter_arch() != "x86_64":
        pytest.skip("the strace comparison runs on x86_64")
    names = strace_names(build(tmp_path, flags), tmp_path)
    numbers = [nr for nr in range(UNKNOWN_UP_TO)
               if nr != EXIT_GROUP[abi] and nr not in SKIPPED[abi]] + [EXIT_GROUP[abi]]
    assert len(names) == len(numbers), "strace printed %d calls for %d numbers" % (
        len(names), len(numbers))
    table = abis.ABIS[abi]
    ours = [table.syscall_name(nr) for nr in numbers]
    differ = [(nr, theirs, mine) for nr, theirs, mine in zip(numbers, names, ours)
              if theirs != mine]
    assert differ == []
