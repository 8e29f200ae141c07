"""The decoder against the real strace 6.1: the same corpus programs traced by strace and
by a minimal tracer using target.strace.decode, compared line by line after masking what
changes between runs (addresses, pids, ports, inode numbers, times)."""

import difflib
import json
import os

import pytest

import strace_ref as R
from target.strace import decode

needs_tools = pytest.mark.skipif(R.STRACE is None or R.GCC is None,
                                 reason="needs the real strace and gcc on PATH")
ENV = {"PATH": "/usr/bin:/bin", "A": "1", "B": "2", "TZ": "UTC"}
HEX = {"-x": "non-ascii", "-xx": "all"}


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    if R.STRACE is None or R.GCC is None:
        pytest.skip("needs the real strace and gcc on PATH")
    d = str(tmp_path_factory.mktemp("decode"))
    return d, {name: R.compile_prog(name, d) for name in ("decode_corpus", "decode_signals")}


def options(flags):
    return decode.DecodeOptions(string_limit=64, verbose="-v" in flags,
                                decode_fds="-y" in flags,
                                strings_in_hex=HEX.get(next((f for f in flags if f in HEX), None)))


def compare(progs, name, marker, flags, calls=None):
    d, exes = progs
    exe = exes[name]
    ref = R.strace([exe], d, ["-s", "64"] + flags, ENV)
    ours = R.trace([exe], d, options(flags), ENV, calls)
    ref = [line for line in ref if not line.startswith("+++")]
    ref = R.normalise(R.after_marker(ref, marker), "-v" in flags)
    ours = R.normalise(R.after_marker(ours, marker), "-v" in flags)
    diff = list(difflib.unified_diff(ref, ours, "strace", "ours", lineterm="", n=0))
    assert not diff, "\n".join(diff[:60])
    assert len(ours) > 10
    return ours


@needs_tools
@pytest.mark.parametrize("flags", [[], ["-v"], ["-y"], ["-x"], ["-xx"]],
                         ids=["plain", "v", "y", "x", "xx"])
def test_corpus_matches_strace(progs, flags):
    ours = compare(progs, "decode_corpus", "write(-1, ", flags)
    assert len(ours) > 200


@needs_tools
@pytest.mark.parametrize("argv", [["/bin/sh", "-c", "echo"], ["/bin/cat", "/etc/hostname"],
                                  ["/usr/bin/id"], ["/bin/ls", "-la", "/dev/null"]],
                         ids=lambda argv: os.path.basename(argv[0]))
def test_whole_program_matches_strace(progs, argv):
    """Everything from execve on, dynamic loader included."""
    if not os.path.exists(argv[0]):
        pytest.skip("%s is not installed" % argv[0])
    d = progs[0]
    ref = [line for line in R.strace(argv, d, [], ENV) if not line.startswith("+++")]
    ours = R.trace(argv, d, decode.DecodeOptions(), ENV)
    diff = list(difflib.unified_diff(R.normalise(ref), R.normalise(ours), "strace", "ours",
                                     lineterm="", n=0))
    assert not diff, "\n".join(diff[:60])


@needs_tools
def test_signal_lines_match_strace(progs):
    ours = compare(progs, "decode_signals", "write(-1, ", [])
    text = "\n".join(ours)
    for code in ("SI_QUEUE", "SI_KERNEL", "SI_TKILL", "SEGV_MAPERR, si_addr=0x10"):
        assert code in text


@needs_tools
def test_json_of_corpus_is_typed(progs):
    calls = []
    compare(progs, "decode_corpus", "write(-1, ", ["-y"], calls)
    start = [i for i, c in enumerate(calls) if c.name == "write" and c.int(0) == -1][0]
    by_name = {}
    for call in calls[start:]:
        obj = decode.call_json(call)
        json.dumps(obj)
        by_name.setdefault(obj["syscall"], []).append(obj)
    openat = by_name["openat"][0]
    assert openat["args"][0] == {"fd": "AT_FDCWD", "path": os.path.realpath(progs[0])}
    assert openat["args"][1] == "/etc/hostname"
    assert openat["args"][2] == {"flags": ["O_RDONLY", "O_CLOEXEC"], "value": 0o2000000}
    assert openat["return"] == {"fd": 3, "path": "/etc/hostname"}
    failed = by_name["open"][0]
    assert failed["retval"] == -1 and failed["error"] == "ENOENT"
    long_write = [c for c in by_name["write"] if c["args"][2] == 72][0]
    assert long_write["args"][1] == {"str": "0123456789abcdefghijklmnopqrstuvwxyz0123456789"
                                            "ABCDEFGHIJKLMNOPQR", "truncated": True}
    binary = [c for c in by_name["write"] if c["args"][2] == 48][0]
    assert binary["args"][1]["hex"].startswith("68656c6c6f0a")
    mmap = by_name["mmap"][0]
    assert mmap["args"][0] is None and mmap["return"].startswith("0x")
    fstat = by_name["fstat"][0]
    assert fstat["args"][1]["st_mode"] == 0o100644 and fstat["args"][1]["abbreviated"]
    poll = by_name["poll"][0]
    assert poll["return_comment"].startswith("[{fd=3, revents=POLLIN}")


def test_pid_masking_leaves_equal_numbers_elsewhere():
    # a run whose pid was 4096 once masked mprotect's length
    pids = {"4096": "PID"}
    assert R.mask_pids("mprotect(0xADDR, 4096, PROT_READ) = 0", pids) == \
        "mprotect(0xADDR, 4096, PROT_READ) = 0"
    assert R.mask_pids("read(3, \"\"..., 4096) = 4096", pids) == "read(3, \"\"..., 4096) = 4096"
    assert R.mask_pids("tgkill(4096, 4096, SIGUSR1) = 0", pids) == "tgkill(PID, PID, SIGUSR1) = 0"
    assert R.mask_pids("getpid() = 4096", pids) == "getpid() = PID"
    assert R.mask_pids("--- SIGUSR1 {si_signo=SIGUSR1, si_pid=4096, si_uid=0} ---", pids) == \
        "--- SIGUSR1 {si_signo=SIGUSR1, si_pid=PID, si_uid=0} ---"
