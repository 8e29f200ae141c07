"""strace -P: which syscalls name a selected file. Our strace against the real one on a program
that touches files by path, by descriptor, as a directory descriptor, through fd arrays and
fd_sets (tests/agent/progs/paths_corpus.c), natively and as i386; and decode.path_args on
argument blocks in our own memory for what the program cannot reach (other ABIs, limits)."""

import ctypes
import mmap
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.agent import i386

from target import libc
from target.arch import abi as abis
from target.strace import decode
from target.strace.memory import Memory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(REPO, "tests", "agent", "progs", "paths_corpus.c")
ADDR = re.compile(r"0x[0-9a-f]+")
RESULT = re.compile(r"^(\w+)\(.*\) += (-?\w+)")
# calls our decoder prints raw for now: compared by name and result only
NOT_DECODED = ("fanotify_mark", "fsconfig")

needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="the reference strace is not installed (apt-get install strace)")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler to build the test program (apt-get install gcc)")


def build(outdir, *flags):
    exe = os.path.join(str(outdir), "paths_corpus" + "".join(flags))
    cc = i386.CC if "-m32" in flags else ["cc"]
    try:
        done = subprocess.run(cc + ["-O1"] + [f for f in flags if f != "-m32"] + ["-o", exe, CORPUS],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        return None
    return exe if done.returncode == 0 else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("progs"))


@pytest.fixture(scope="module")
def corpus32(tmp_path_factory):
    exe = build(tmp_path_factory.mktemp("progs"), "-m32")
    if exe is None or abis.native() is not abis.ABIS["x86_64"]:
        pytest.skip("no i386 build of the corpus: x86_64 only; " + i386.MISSING)
    return exe


def run(tracer, exe, workdir, selected):
    """Trace exe on a fresh directory with -P DIR/NAME for each name; (lines, stderr lines),
    with the directory written DIR and addresses 0xADDR."""
    os.mkdir(workdir)
    with open(os.path.join(workdir, "file1"), "w"):
        pass
    os.symlink("file1", os.path.join(workdir, "alias"))
    out = os.path.join(workdir + ".out")
    args = ["-qq", "-o", out]
    for name in selected:
        args += ["-P", os.path.join(workdir, name)]
    done = subprocess.run(tracer + args + [exe, workdir], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stderr

    def clean(text):
        return ADDR.sub("0xADDR", text.replace(workdir, "DIR"))
    with open(out) as f:
        return [clean(line.rstrip("\n")) for line in f], clean(done.stderr).splitlines()


def both(exe, tmp_path, selected):
    # directories of the same length: readlink returns the length of a name in them
    ref = run(["strace"], exe, str(tmp_path / "ref"), selected)
    ours = run([sys.executable, "-m", "target", "strace"], exe, str(tmp_path / "our"), selected)
    return ref, ours


def results(lines):
    """(syscall, result) of each line: what -P decides, whatever the arguments print as."""
    found = [RESULT.match(line) for line in lines]
    assert all(found), lines
    return [match.groups() for match in found]


def comparable(lines):
    return [line if not line.startswith(NOT_DECODED) else "%s() = %s" % RESULT.match(line).groups()
            for line in lines]


@needs_strace
@needs_cc
@pytest.mark.parametrize("selected", [("file1",), ("sub", "target"), ("other",), ("alias",)],
                         ids=["file", "directory-and-later-file", "dup-target", "symlink"])
def test_same_calls_as_strace(corpus, tmp_path, selected):
    (ref_lines, ref_err), (our_lines, our_err) = both(corpus, tmp_path, selected)
    assert ref_lines, "strace selected nothing: the corpus is not exercising -P"
    assert comparable(our_lines) == comparable(ref_lines)
    assert our_err == ref_err


@needs_strace
@needs_cc
def test_symlink_is_resolved_with_strace_notice(corpus, tmp_path):
    (ref_lines, ref_err), (our_lines, our_err) = both(corpus, tmp_path, ("alias",))
    assert ref_err == ['strace: Requested path "DIR/alias" resolved into "DIR/file1"']
    assert our_err == ref_err
    assert any('"DIR/file1"' in line for line in our_lines)


@needs_strace
def test_same_calls_as_strace_for_i386(corpus32, tmp_path):
    """i386: mmap2, _llseek, _newselect, old select and old mmap (their arguments in memory),
    fanotify_mark's mask in two arguments."""
    (ref_lines, ref_err), (our_lines, our_err) = both(corpus32, tmp_path, ("file1", "sub"))
    names = [name for name, _ in results(ref_lines)]
    assert "select" in names and "mmap" in names and "fanotify_mark" in names
    assert results(our_lines) == results(ref_lines)
    assert our_err == ref_err


DELETED_FD = r"""
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int fd = open(argv[1], O_CREAT | O_RDWR, 0600);
    unlink(argv[1]);
    write(fd, "a", 1);
    close(fd);
    return 0;
}
"""


@needs_strace
@needs_cc
def test_descriptor_of_unlinked_file_still_matches(tmp_path):
    source = tmp_path / "deleted.c"
    source.write_text(DELETED_FD)
    exe = str(tmp_path / "deleted")
    subprocess.run(["cc", "-o", exe, str(source)], check=True)
    path = str(tmp_path / "gone")
    lines = []
    for tracer in (["strace"], [sys.executable, "-m", "target", "strace"]):
        done = subprocess.run(tracer + ["-qq", "-P", path, exe, path], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
        lines.append([line.split("(")[0] for line in done.stderr.splitlines()])
    assert lines[0] == ["openat", "unlink", "write", "close"]
    assert lines[1] == lines[0]


# --- decode.path_args on argument blocks in our own memory -----------------------------------

MEM = Memory(os.getpid())
KEEP = []          # buffers whose addresses are in use
MAP_32BIT = 0x40


def addr_of(data):
    buf = ctypes.create_string_buffer(data)
    KEEP.append(buf)
    return ctypes.addressof(buf)


def low_addr_of(data):
    """data at an address that fits in 32 bits, for pointers inside i386 and arm blocks."""
    if abis.native() is not abis.ABIS["x86_64"]:
        pytest.skip("the test places data below 4 GiB with x86_64's MAP_32BIT")
    area = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_32BIT)
    area.write(data)
    view = ctypes.c_char.from_buffer(area)
    KEEP.append(view)
    return ctypes.addressof(view)


def words(abi_name, *values):
    fmt = ctypes.c_uint64 if abis.ABIS[abi_name].word == 8 else ctypes.c_uint32
    block = (fmt * len(values))(*[v & ((1 << 8 * ctypes.sizeof(fmt)) - 1) for v in values])
    KEEP.append(block)
    return ctypes.addressof(block)


def path_args(abi_name, name, *args):
    abi = abis.ABIS[abi_name]
    call = decode.Call(os.getpid(), abi, abi.numbers[name], list(args) + [0] * (6 - len(args)))
    return decode.path_args(call, MEM)


def test_paths_and_descriptors_by_syscall():
    a, b = addr_of(b"/a"), addr_of(b"/b")
    assert path_args("x86_64", "openat", 2**64 - 100, a, 0) == ([b"/a"], [-100])
    assert path_args("x86_64", "rename", a, b) == ([b"/a"], [])      # strace: the old name only
    assert path_args("x86_64", "link", a, b) == ([b"/a", b"/b"], [])
    assert path_args("x86_64", "symlink", a, b) == ([b"/b"], [])
    assert path_args("x86_64", "symlinkat", a, 7, b) == ([b"/b"], [7])
    assert path_args("x86_64", "renameat2", 3, a, 4, b, 0) == ([b"/a", b"/b"], [3, 4])
    assert path_args("x86_64", "getcwd", a, 10) == ([b"/a"], [])     # read at entry, as strace
    assert path_args("x86_64", "epoll_ctl", 3, 1, 5, 0) == ([], [5])
    assert path_args("x86_64", "mmap", 0, 4096, 1, 1, 2**32 - 1, 0) == ([], [-1])
    assert path_args("i386", "mmap2", 0, 4096, 1, 1, 6, 0) == ([], [6])
    assert path_args("x86_64", "copy_file_range", 3, 0, 4, 0, 1, 0) == ([], [3, 4])
    assert path_args("x86_64", "close", 9) == ([], [9])
    assert path_args("x86_64", "connect", 5, 0, 0) == ([], [5])
    assert path_args("x86_64", "socket", 2, 1, 0) == ([], [])
    assert path_args("x86_64", "pipe2", a, 0) == ([], [])
    assert path_args("x86_64", "getpid") == ([], [])
    assert path_args("x86_64", "kill", 1, 9) == ([], [])


def test_fanotify_mark_mask_takes_two_arguments_on_32_bit_abis():
    a = addr_of(b"/a")
    assert path_args("x86_64", "fanotify_mark", 3, 1, 32, 5, a) == ([b"/a"], [5])
    assert path_args("aarch64", "fanotify_mark", 3, 1, 32, 5, a) == ([b"/a"], [5])
    assert path_args("arm", "fanotify_mark", 3, 1, 32, 0, 5, a) == ([b"/a"], [5])
    assert path_args("i386", "fanotify_mark", 3, 1, 32, 0, 5, a) == ([b"/a"], [5])


def test_fsconfig_names_a_file_only_for_path_and_fd_commands():
    a = addr_of(b"/a")
    assert path_args("x86_64", "fsconfig", 3, 3, 0, a, 4) == ([b"/a"], [4])   # SET_PATH
    assert path_args("x86_64", "fsconfig", 3, 4, 0, a, 4) == ([b"/a"], [4])   # SET_PATH_EMPTY
    assert path_args("x86_64", "fsconfig", 3, 5, 0, 0, 4) == ([], [4])        # SET_FD
    assert path_args("x86_64", "fsconfig", 3, 1, 0, a, 4) == ([], [])         # SET_STRING


def test_old_select_and_old_mmap_take_their_arguments_from_memory():
    fdset = low_addr_of(bytes([0b00100100, 0, 0, 0]))
    for abi_name in ("i386", "arm"):
        block = words(abi_name, 6, fdset, 0, fdset, 0)
        assert path_args(abi_name, "select", block) == ([], [2, 5, 2, 5])
        assert path_args(abi_name, "mmap", words(abi_name, 0, 4096, 1, 1, 7, 0)) == ([], [7])
        assert path_args(abi_name, "select", 0x10) == ([], [])        # unreadable block
    assert path_args("x86_64", "select", 6, fdset, 0, 0, 0) == ([], [2, 5])


def test_select_takes_nfds_bits_of_each_set():
    fdset = addr_of(bytes([0xFF] * 8))
    assert path_args("x86_64", "pselect6", 3, fdset, 0, fdset, 0, 0) == ([], [0, 1, 2] * 2)
    assert path_args("x86_64", "select", 0, fdset, 0, 0, 0) == ([], [])
    assert path_args("x86_64", "select", 2**32 - 1, fdset, 0, 0, 0) == ([], [])   # nfds -1
    assert path_args("x86_64", "select", 3, 0x10, fdset, 0, 0) == ([], [0, 1, 2])


def test_poll_stops_at_the_first_unreadable_pollfd():
    page = mmap.PAGESIZE
    area = mmap.mmap(-1, 2 * page)
    view = (ctypes.c_char * (2 * page)).from_buffer(area)
    start = ctypes.addressof(view)
    libc.syscall(abis.native().numbers["munmap"], start + page, page)
    try:
        last = start + page - 16          # two pollfds, then the unmapped page
        ctypes.memmove(last, bytes([3, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0]), 16)
        assert path_args("x86_64", "poll", last, 5, 0) == ([], [3, -1])
        assert path_args("x86_64", "ppoll", last, 1, 0, 0, 8) == ([], [3])
        assert path_args("x86_64", "poll", last, 0, 0) == ([], [])
    finally:
        del view
        area.close()


def test_a_path_must_end_within_path_max():
    longest = addr_of(b"/" * 4096)                    # 4096 bytes and the NUL: read
    too_long = addr_of(b"/" * 4097)
    assert path_args("x86_64", "unlink", longest) == ([b"/" * 4096], [])
    assert path_args("x86_64", "unlink", too_long) == ([], [])
    assert path_args("x86_64", "unlink", 0) == ([], [])
    assert path_args("x86_64", "unlink", 0x10) == ([], [])


@needs_strace
def test_resolution_notice_quotes_like_strace(tmp_path):
    target = tmp_path / 'q"\u00e9'
    target.write_text("")
    link = tmp_path / 'l"n'
    link.symlink_to(target)
    notes = []
    for tracer in (["strace"], [sys.executable, "-m", "target", "strace"]):
        done = subprocess.run(tracer + ["-P", str(link), "true"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        notes.append(done.stderr.splitlines()[0])
    assert notes[1] == notes[0] and '\\"\\303\\251"' in notes[0]
