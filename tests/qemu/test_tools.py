"""The agent's tools on real foreign kernels (the four QEMU boards): strace against the board's
own strace (Debian's, in the image), the function tracers against the kernel's `trace` text,
dmesg against records written to /dev/kmsg, and a whole capture pulled home."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import pytest

import host.qemu
from host.capture import CaptureRequest
from host.profiles import load_board
from host.sessions import capture
from host.toolchain import build_program
from tests.agent.strace_ref import VOLATILE
from tests.agent.test_strace_engine import (per_process, process_diff, timing_free, traced_lines,
                                            without_unequal_futex)
from tests.qemu.conftest import BOARDS, REPO, board_on

pytestmark = pytest.mark.qemu

CORPUS = REPO / "tests" / "qemu" / "progs" / "tools_corpus.c"
INJECT = ("-e", "inject=close:error=EACCES:when=3+")



def upload_corpus(transport, built_for, out_dir):
    """tools_corpus.c built with built_for's toolchain, uploaded to the board's workdir."""
    name = f"tools_corpus-{built_for.arch}"
    try:
        exe = build_program(built_for, CORPUS, out_dir / name)
    except Exception as e:  # the cross compiler is missing here
        pytest.skip(f"cannot build the corpus for {built_for.name}: {e}")
    transport.put(exe, name)
    return "./" + name


@pytest.fixture(scope="module")
def corpus(on_board, tmp_path_factory):
    board, transport, _ = on_board
    return upload_corpus(transport, board, tmp_path_factory.mktemp(board.name))


def traced(on_board, corpus, tmp_path, opts):
    """Run the real strace and ours with opts -o FILE on the corpus; their -f lines."""
    _, transport, agent = on_board
    ref = transport.run(["strace", *opts, "-o", "ref.txt", corpus], timeout=120)
    ours = agent.run(["strace", *opts, "-o", "ours.txt", corpus])
    assert ref.code == 0, ref.stderr.decode()
    assert ours.code == ref.code, ours.stderr.decode()
    for name in ("ref.txt", "ours.txt"):
        transport.get(name, tmp_path / name)
    return traced_lines(str(tmp_path / "ours.txt")), traced_lines(str(tmp_path / "ref.txt"))


def comparable(lines):
    """Each process's lines, random bytes masked (getrandom)."""
    return {label: [re.sub(r'"[^"]*"', '"..."', t) if VOLATILE.match(t) else t for t in seq]
            for label, seq in per_process(timing_free(lines)).items()}


@pytest.mark.parametrize("opts", [("-f",), ("-f", *INJECT)], ids=["plain", "inject"])
def test_strace_lines_match_the_real_strace(on_board, corpus, tmp_path, opts):
    ours, ref = traced(on_board, corpus, tmp_path, list(opts))
    mine, theirs = comparable(ours), comparable(ref)
    assert len(theirs.get("P0", [])) > 40 and len(theirs) == 3, "the corpus should run 3 processes"
    without_unequal_futex(mine, theirs)
    assert mine == theirs, process_diff(theirs, mine)
    if INJECT[1] in opts:
        injected = [t for seq in mine.values() for t in seq if t.endswith("EACCES (Permission denied) (INJECTED)")]
        assert len(injected) == sum(t.endswith("(INJECTED)") for seq in theirs.values() for t in seq) > 3


def test_armhf_program_on_the_arm64_kernel(on_board, tmp_path):
    """A 32-bit EABI program on the 64-bit kernel (CONFIG_COMPAT): its syscalls come with
    AUDIT_ARCH_ARM and arm's numbers and layouts; our lines equal those of the board's aarch64
    strace (which warns that it has no mpers support, and still decodes these)."""
    board, transport, _ = on_board
    if board.arch != "aarch64":
        pytest.skip("32-bit arm programs on a 64-bit kernel: the aarch64 board's case")
    exe = upload_corpus(transport, load_board("qemu-armhf"), tmp_path)
    ours, ref = traced(on_board, exe, tmp_path, ["-f"])
    mine, theirs = comparable(ours), comparable(ref)
    assert any(t.startswith("set_tls(") for t in theirs["P0"]), "not run as an arm program"
    without_unequal_futex(mine, theirs)
    assert mine == theirs, process_diff(theirs, mine)


# -- ftrace -------------------------------------------------------------------------------------

def flight_record(on_board, tmp_path, options):
    """start/ls //stop/show/extract/reset on the board; (kernel's trace lines, our decode of the
    extracted pages) -- or the start's error."""
    _, transport, agent = on_board
    agent.run(["ftrace", "reset", "--name", "qt"])  # a previous run's leftover
    top_before = top_level_state(transport)
    started = agent.run(["ftrace", "start", *options, "--name", "qt"])
    if started.code != 0:
        return started.stderr.decode().strip(), None
    try:
        assert transport.run(["sh", "-c", "ls / >/dev/null"]).code == 0
        assert agent.run(["ftrace", "stop", "--name", "qt"]).code == 0
        shown = agent.run(["ftrace", "show", "--name", "qt"])
        assert shown.code == 0, shown.stderr.decode()
        transport.run(["rm", "-rf", "qt-capture", "qt-capture.tar"])
        extracted = agent.run(["ftrace", "extract", "--name", "qt", "-o", "qt-capture"])
        assert extracted.code == 0, extracted.stderr.decode()
    finally:
        reset = agent.run(["ftrace", "reset", "--name", "qt"])
    assert reset.code == 0, reset.stderr.decode()
    assert top_level_state(transport) == top_before
    assert transport.run(["tar", "-cf", "qt-capture.tar", "qt-capture"]).code == 0
    transport.get("qt-capture.tar", tmp_path / "capture.tar")
    with tarfile.open(tmp_path / "capture.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    report = subprocess.run([sys.executable, "-m", "target", "ftrace", "report", str(tmp_path / "qt-capture")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    kernel = [line for line in shown.stdout.decode().splitlines() if not line.startswith("#")]
    return kernel, report.stdout.splitlines()


def top_level_state(transport):
    shown = transport.run(["sh", "-c", "cd /sys/kernel/tracing && cat tracing_on current_tracer set_event "
                                       "trace_clock set_graph_function max_graph_depth"])
    assert shown.code == 0, shown.stderr.decode()
    return shown.stdout.decode()


def first_differences(kernel, ours):
    wrong = [(i, k, o) for i, (k, o) in enumerate(zip(kernel, ours)) if k != o]
    return f"{len(kernel)} kernel lines, {len(ours)} ours; first differences: " + \
        "".join(f"\n  line {i}:\n    kernel {k!r}\n    ours   {o!r}" for i, k, o in wrong[:3])


def test_function_tracer_text_matches_the_kernel(on_board, tmp_path):
    kernel, ours = flight_record(on_board, tmp_path, ["-p", "function", "-l", "vfs_*"])
    assert ours is not None, f"ftrace start failed: {kernel}"
    assert len(kernel) > 50 and any(" vfs_" in line for line in kernel)
    assert any(line.lstrip().startswith("ls-") for line in kernel), "the workload is not in the trace"
    assert ours == kernel, first_differences(kernel, ours)


# Linux 6.1 lists only function and nop in an instance's available_tracers: function_graph runs
# at the top level there (the same path tests/agent/test_ftrace_top_level.py takes with blk).
# riscv64's 6.12 has it in instances, but set_graph_function and max_graph_depth only at the top.

def test_function_graph_text_matches_the_kernel(on_board, tmp_path):
    # nested calls, not only leaves
    kernel, ours = flight_record(on_board, tmp_path, ["-p", "function_graph", "-l", "vfs_*", "-l", "rw_verify_area",
                                                      "-l", "ksys_read", "-l", "security_file_permission",
                                                      "-l", "*_read_iter"])
    assert ours is not None, f"ftrace start failed: {kernel}"
    # graph lines, task-switch separators and the empty line after them
    assert len(kernel) > 10 and all(re.match(r"^( \d\) | -{42}$|$)", line) for line in kernel), kernel[:5]
    assert any(line.endswith("{") for line in kernel), kernel[:20]
    assert ours == kernel, first_differences(kernel, ours)


def test_function_graph_with_roots_and_depth(on_board, tmp_path):
    kernel, ours = flight_record(on_board, tmp_path,
                                 ["-p", "function_graph", "-g", "vfs_read", "--max-graph-depth", "3"])
    assert ours is not None, f"ftrace start failed: {kernel}"
    calls = [line for line in kernel if line.endswith(("{", ";"))]
    assert any(line.endswith("vfs_read() {") for line in calls), kernel[:20]
    # depth 3 below the root: no call is indented more than the root's three levels
    depths = sorted({len(line.split("|", 1)[1]) - len(line.split("|", 1)[1].lstrip()) for line in calls})
    assert len(depths) <= 3, depths
    assert ours == kernel, first_differences(kernel, ours)


# -- dmesg --------------------------------------------------------------------------------------

def test_dmesg_shows_records_written_to_kmsg(on_board):
    _, transport, agent = on_board
    word = f"bt-qemu-{id(on_board):x}"
    wrote = transport.run(["sh", "-c", f"echo '<3>{word} one' > /dev/kmsg && echo '<14>{word} two' > /dev/kmsg"])
    assert wrote.code == 0, wrote.stderr.decode()
    shown = agent.run(["dmesg", "--json"])
    assert shown.code == 0, shown.stderr.decode()
    records = json.loads(shown.stdout)["dmesg"]
    mine = [(r["msg"], r["level"], r["facility"], r["pri"]) for r in records if word in r["msg"]]
    # a record without a facility written by user space gets LOG_USER (pri 3 -> 11)
    assert mine == [(f"{word} one", "err", "user", 11), (f"{word} two", "info", "user", 14)]
    text = agent.run(["dmesg", "-x"])
    assert text.code == 0, text.stderr.decode()
    lines = [line for line in text.stdout.decode().splitlines() if word in line]
    assert [re.sub(r"\[ *\d+\.\d+\]", "[T]", line) for line in lines] == [
        f"user  :err   : [T] {word} one", f"user  :info  : [T] {word} two"]


# -- a whole capture, pulled home ---------------------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_capture_is_pulled_home(booted, name, tmp_path, monkeypatch, capsys):
    board, _, _ = board_on(booted, name)
    monkeypatch.setattr(host.qemu, "STATE", booted[1])  # open_transport finds the session's board
    request = CaptureRequest(cmd=("ls", "/"), strace=("-f",), ftrace=("-p", "function", "-l", "vfs_*"), dmesg=True)
    code = capture([board], request, home=tmp_path)
    assert code == 0, capsys.readouterr().err
    session = tmp_path / name / request.session_id
    strace = (session / "strace.txt").read_text()
    assert re.search(r'^(\d+ +)?execve\("[^"]*/ls", \["ls", "/"\]', strace, re.M), strace[:300]
    ftrace = (session / "ftrace.txt").read_text().splitlines()
    assert any(re.search(r": vfs_\w+ <-", line) for line in ftrace), ftrace[:5]
    assert (session / "trace.dat").read_bytes()[:10] == b"\x17\x08Dtracing"
    assert "Linux version" in (session / "dmesg.txt").read_text()
