"""The -c table against the real strace 6.1. strace cannot summarise a recorded trace, so a
program with a fixed sequence of syscalls runs twice: once under `strace -c` (the reference
table), once under `strace -f -T` whose lines (name, <duration>, error or not) are fed to our
Summary. Names, calls and errors must be equal, column for column; the order too, for every
sort that does not depend on timings; the header, separators, widths and total line exactly;
the time columns by format (the two runs take different times)."""

import re
import shutil
import subprocess

import pytest

from target.arch import abi as abis
from target.cli import AgentError
from target.strace import summary
from target.strace.summary import Summary

import test_strace_seccomp   # the hand-made i386 program

pytestmark = [
    pytest.mark.skipif(shutil.which("strace") is None,
                       reason="the reference strace is not installed (apt-get install strace)"),
]
needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler to build the test program (apt-get install gcc)")

PROGRAM = r"""
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    int i, fd = open("/dev/null", O_WRONLY);
    for (i = 0; i < 30; i++) syscall(SYS_getppid);
    for (i = 0; i < 20; i++) open("/nonexistent/file", O_RDONLY);
    for (i = 0; i < 10; i++) syscall(SYS_getpid);
    for (i = 0; i < 5; i++) close(-1);
    for (i = 0; i < 7; i++) write(fd, "x", 1);
    for (i = 0; i < 12; i++) syscall(SYS_sched_get_priority_max, 0);
    if (fork() == 0) {
        for (i = 0; i < 4; i++) syscall(SYS_getppid);
        for (i = 0; i < 2; i++) close(-1);
        _exit(0);
    }
    wait(NULL);
    return 0;
}
"""

RESULT = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>.*|(\w+)\(.*) = (.*) <(\d+\.\d+)>$")
TIME = {"time-percent": r" *\d+\.\d\d", "total-time": r" *\d+\.\d{6}", "min-time": r" *\d+\.\d{6}",
        "max-time": r" *\d+\.\d{6}", "avg-time": r" *\d+"}


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    directory = tmp_path_factory.mktemp("summary")
    (directory / "prog.c").write_text(PROGRAM)
    exe = str(directory / "prog")
    subprocess.run(["cc", "-O1", "-o", exe, str(directory / "prog.c")], check=True)
    return exe


def reference(options, argv, tmp_path):
    out = str(tmp_path / "summary.txt")
    subprocess.run(["strace", "-f", "-o", out] + options + argv, check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    with open(out) as f:
        return f.read()


def replayed(argv, tmp_path):
    """Summary fed from the -f -T lines of another run of argv."""
    out = str(tmp_path / "trace.txt")
    subprocess.run(["strace", "-f", "-qq", "-T", "-o", out] + argv, check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    result = Summary()
    with open(out) as f:
        for line in f:
            match = RESULT.match(line.rstrip("\n"))
            if match:
                pid, resumed, name, value, seconds = match.groups()
                result.add(int(pid), resumed or name, float(seconds), value.startswith("-1 "))
    return result


def cells(line, columns, widths):
    """A table line cut into its columns by the widths of the divider."""
    out, at = [], 0
    for i, width in enumerate(widths):
        out.append(line[at:at + width] if i < len(widths) - 1 else line[at:])
        at += width + 1
    return out


def compare(ours, theirs, columns):
    """Header and separators exactly; then row by row (the total line too) names, calls
    and errors exactly and the time columns by format and width."""
    ours_lines, their_lines = ours.splitlines(), theirs.splitlines()
    assert len(ours_lines) == len(their_lines)
    assert ours_lines[:2] == their_lines[:2]
    assert ours_lines[-2] == their_lines[-2]
    widths = [len(dashes) for dashes in their_lines[1].split(" ")]
    for mine, reference_line in zip(ours_lines[2:-2] + ours_lines[-1:],
                                    their_lines[2:-2] + their_lines[-1:]):
        pairs = zip(columns, cells(mine, columns, widths), cells(reference_line, columns, widths))
        for column, a, b in pairs:
            if column in TIME:
                assert re.match(TIME[column] + "$", a) and len(a) == len(b), (a, b)
            else:
                assert a == b, (column, mine, reference_line)


def names_in(table):
    return [line.split()[-1] for line in table.splitlines()[2:-2]]


@needs_cc
@pytest.mark.parametrize("sort_by", ["calls", "name", "errors", "nothing", "count", "syscall"])
def test_table_like_strace(sort_by, program, tmp_path):
    theirs = reference(["-c", "-w", "-S", sort_by], [program], tmp_path)
    ours = replayed([program], tmp_path).render(sort_by)
    compare(ours, theirs, summary.DEFAULT_COLUMNS)
    assert names_in(ours) == names_in(theirs)


ALL_COLUMNS = "time-percent,total-time,min-time,max-time,avg-time,calls,errors,name"


@needs_cc
@pytest.mark.parametrize("sort_by,column", [("time", 1), ("min-time", 2), ("max-time", 3),
                                            ("avg-time", 4)])
def test_timed_sorts_like_strace(sort_by, column, program, tmp_path):
    """Orders by time differ between two runs: the same rows, each table sorted by its own
    times, largest first."""
    theirs = reference(["-c", "-w", "-S", sort_by, "-U", ALL_COLUMNS], [program], tmp_path)
    ours = replayed([program], tmp_path).render(sort_by, columns=summary.parse_columns(ALL_COLUMNS))
    assert sorted(names_in(ours)) == sorted(names_in(theirs))
    for table in (ours, theirs):
        values = [float(line.split()[column]) for line in table.splitlines()[2:-2]]
        assert values == sorted(values, reverse=True)


@needs_cc
@pytest.mark.parametrize("columns", [
    ALL_COLUMNS, "name,calls", "calls", "calls,name,errors", "shortest,longest,count,error,syscall",
    "errors,time",
])
def test_columns_like_strace(columns, program, tmp_path):
    theirs = reference(["-c", "-w", "-S", "calls", "-U", columns], [program], tmp_path)
    chosen = summary.parse_columns(columns)
    ours = replayed([program], tmp_path).render("calls", columns=chosen)
    compare(ours, theirs, chosen)


@needs_cc
def test_system_time_table_like_strace(program, tmp_path):
    """Without -w strace sums system time; the layout is the same."""
    theirs = reference(["-c", "-S", "name"], [program], tmp_path)
    ours = replayed([program], tmp_path).render("name")
    compare(ours, theirs, summary.DEFAULT_COLUMNS)


def test_personalities_like_strace(tmp_path):
    """An i386 program: the x86_64 execve in the first table, its own calls in a second one
    headed "System call usage summary for 32 bit mode:"."""
    if getattr(abis.native(), "name", None) != "x86_64":
        pytest.skip("an x86_64 machine runs the i386 program")
    exe = test_strace_seccomp.i386_program(str(tmp_path / "getppid32"))
    if subprocess.run([exe]).returncode != 0:
        pytest.skip("this kernel cannot run i386 programs (CONFIG_IA32_EMULATION)")
    theirs = reference(["-c", "-w"], [exe], tmp_path)
    ours = Summary()
    ours.add(1, "execve", 0.000147, False)
    for _ in range(3):
        ours.add(1, "getppid", 0.000008, False, abi=abis.ABIS["i386"])
    mine = ours.render()
    assert [re.sub(r" *[\d.]+", " N", line) for line in mine.splitlines()] == \
           [re.sub(r" *[\d.]+", " N", line) for line in theirs.splitlines()]
    assert "System call usage summary for 32 bit mode:\n" in mine


def test_nothing_counted_prints_nothing(tmp_path):
    """strace -c with no syscall counted prints no table at all."""
    assert reference(["-c", "-e", "trace=none"], ["true"], tmp_path) == ""
    assert Summary().render() == ""


def test_numbers_as_strace_computes_them():
    """Percent of the total, average in whole microseconds (truncated), min, max, and the
    widths that grow with the values."""
    s = Summary()
    for ns in (1000, 2000, 4001):
        s.add(7, "read", ns / 1e9, False)
    s.add(7, "write", 3.0, True)
    s.add(8, "a_syscall_with_a_long_name", 12345.5, False)
    table = s.render("name", columns=summary.parse_columns(
        "time,total-time,min-time,max-time,avg-time,calls,errors,name"))
    lines = table.splitlines()
    assert [len(dashes) for dashes in lines[1].split(" ")] == [6, 12, 12, 12, 11, 9, 9, 27]
    assert lines[0] == " ".join(["% time", "seconds".rjust(12), "shortest".rjust(12),
                                 "longest".rjust(12), "usecs/call".rjust(11), "calls".rjust(9),
                                 "errors".rjust(9), "syscall"])
    assert [line.split() for line in lines[2:5]] == [
        ["99.98", "12345.500000", "12345.500000", "12345.500000", "12345500000", "1",
         "a_syscall_with_a_long_name"],
        ["0.00", "0.000007", "0.000001", "0.000004", "2", "3", "read"],
        ["0.02", "3.000000", "3.000000", "3.000000", "3000000", "1", "1", "write"]]
    assert lines[-1].split() == ["100.00", "12348.500007", "0.000001", "12345.500000",
                                 "2469700001", "5", "1", "total"]
    assert lines[3].endswith(" " * 10 + "read")       # no errors: an empty column


def test_per_process_tables():
    s = Summary()
    for pid, name, n in ((10, "getpid", 3), (11, "getpid", 2), (11, "close", 4), (10, "close", 1)):
        for _ in range(n):
            s.add(pid, name, 0.000001, name == "close")
    text = s.render("name", per_process=True)
    sections = text.split("System call usage summary for pid ")
    assert sections[0] == ""
    rows = [[line.split()[-3:] for line in section.splitlines()[3:5]] for section in sections[1:]]
    assert [section.splitlines()[0] for section in sections[1:]] == ["10:", "11:"]
    assert rows == [[["1", "1", "close"], ["1", "3", "getpid"]],
                    [["4", "4", "close"], ["1", "2", "getpid"]]]
    merged = s.render("name").splitlines()
    assert [line.split()[-3:] for line in merged[2:4]] == [["5", "5", "close"],
                                                          ["1", "5", "getpid"]]


def test_sort_and_column_errors_like_strace():
    for bad in ("foo", "TIME", "wall-total"):
        with pytest.raises(AgentError) as caught:
            summary.check_sort(bad)
        assert str(caught.value) == strace_error(["-S", bad])
    for bad in ("foo", "calls,", ",calls", "none", "calls,calls", "time,time-percent",
                "calls,calls,name"):
        with pytest.raises(AgentError) as caught:
            summary.parse_columns(bad)
        assert str(caught.value) == strace_error(["-U", bad])


def strace_error(options):
    run = subprocess.run(["strace", "-c", "-o", "/dev/null"] + options + ["true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert run.returncode == 1
    return run.stderr.splitlines()[0][len("strace: "):]
