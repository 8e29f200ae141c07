"""host.outputs: a session's dmesg and ftrace outputs, compared byte for byte with what the
agent prints for the same input, from REAL data (this machine's /dev/kmsg and tracefs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host.outputs import render_session
from target.dmesg.record import format_kmsg, parse_kmsg
from tests.agent.ftrace_helpers import ftrace, tracefs_dir  # noqa: F401 (fixture)
from tests.agent.kmsg import KMSG, inject, marker, writable_kmsg  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k != "BOARDTRACE_DEBUG"}
ENV["PYTHONIOENCODING"] = "utf-8"       # the rendered files are UTF-8 whatever the locale
TRACE_CMD = shutil.which("trace-cmd")
OUTPUTS = ("dmesg.txt", "dmesg.json", "ftrace.txt", "ftrace.jsonl", "trace.dat")


def agent(*args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([sys.executable, "-m", "target", *args], cwd=REPO, env=ENV,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def kmsg_records() -> list[bytes]:
    """Every record /dev/kmsg has (from SEEK_DATA, like dmesg), as read() returns them."""
    fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    found = []
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
        while True:
            try:
                found.append(os.read(fd, 8193))
            except BlockingIOError:
                return found
            except BrokenPipeError:
                continue
    finally:
        os.close(fd)


def small_kmsg(path: Path) -> None:
    path.write_bytes(b"".join(format_kmsg(parse_kmsg(b"6,%d,%d,-;hello %d" % (i, i * 1000, i)))
                              + b"\0" for i in range(3)))


@pytest.fixture(scope="module")
def capture(tracefs_dir, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("cap") / "ftrace"
    done = ftrace(tracefs_dir, "record", "-e", "sched", "-e", "irq", "-o", str(out),
                  "--", "sh", "-c", "ls / >/dev/null; sleep 0.1")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def session(capture, tmp_path):
    shutil.copytree(capture, tmp_path / "ftrace")
    return tmp_path


def test_dmesg_is_what_the_agent_prints(writable_kmsg, tmp_path):  # noqa: F811
    word = marker()
    inject([(3, b"boardtrace-outputs-test %s %d" % (word.encode(), i)) for i in range(3)])
    records = [format_kmsg(parse_kmsg(r)) + b"\0" for r in kmsg_records()]
    kmsg = tmp_path / "dmesg.kmsg"
    kmsg.write_bytes(b"".join(records) + b"not a record\0")

    rendered = render_session(tmp_path)

    assert rendered.files == (tmp_path / "dmesg.txt", tmp_path / "dmesg.json")
    text = agent("dmesg", "-K", str(kmsg), "--color=never")
    assert (tmp_path / "dmesg.txt").read_bytes() == text.stdout
    assert (tmp_path / "dmesg.json").read_bytes() == agent("dmesg", "-K", str(kmsg),
                                                           "--json").stdout
    assert b"skipped 1 malformed records" in text.stderr
    assert "dmesg: skipped 1 malformed records" in rendered.notes
    mine = [line for line in text.stdout.splitlines() if word.encode() in line]
    assert [line.endswith(b"] boardtrace-outputs-test %s %d" % (word.encode(), i))
            for i, line in enumerate(mine)] == [True] * 3
    objects = json.loads((tmp_path / "dmesg.json").read_bytes().decode("utf-8", "replace"))
    assert len(objects["dmesg"]) == len([r for r in records if b";\n" not in r])
    assert sum(word in o["msg"] for o in objects["dmesg"]) == 3


def test_ftrace_is_what_the_agent_reports(session):
    rendered = render_session(session)

    assert rendered.files == tuple(session / n for n in ("ftrace.txt", "ftrace.jsonl",
                                                         "trace.dat"))
    cap = str(session / "ftrace")
    text = (session / "ftrace.txt").read_bytes()
    assert text == agent("ftrace", "report", cap).stdout
    assert (session / "ftrace.jsonl").read_bytes() == agent("ftrace", "report", cap,
                                                            "--json").stdout
    assert b" sched_process_exec: " in text
    assert rendered.notes == ()      # a short capture: nothing lost, nothing corrupt


@pytest.mark.skipif(TRACE_CMD is None, reason="trace-cmd is not installed")
def test_tracedat_has_the_same_events(session):
    render_session(session)
    done = subprocess.run([TRACE_CMD, "report", str(session / "trace.dat")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = [line for line in done.stdout.splitlines()[1:] if "EVENTS DROPPED]" not in line]
    ours = [line for line in (session / "ftrace.txt").read_text().splitlines()
            if not line.startswith("CPU:")]
    assert len(report) == len(ours) > 0
    assert [re.search(r" (\d+\.\d+): ", line)[1] for line in report] == \
        [re.search(r" (\d+\.\d+): ", line)[1] for line in ours]


def test_strace_only_session_renders_nothing(tmp_path):
    (tmp_path / "strace.txt").write_text("execve(...) = 0\n")
    (tmp_path / "strace.jsonl").write_text("{}\n")
    assert render_session(tmp_path).files == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strace.jsonl", "strace.txt"]


@pytest.mark.parametrize("damage", ["no header_page", "garbage raw"])
def test_broken_ftrace_is_a_note_and_dmesg_still_renders(session, damage):
    small_kmsg(session / "dmesg.kmsg")
    if damage == "no header_page":
        (session / "ftrace" / "header_page").unlink()
    else:
        (session / "ftrace" / "cpu0.raw").write_bytes(b"\xff" * 5000)

    rendered = render_session(session)

    assert rendered.files[:2] == (session / "dmesg.txt", session / "dmesg.json")
    assert (session / "dmesg.txt").read_bytes().count(b"hello") == 3
    assert session / "trace.dat" not in rendered.files
    assert not (session / "trace.dat").exists()
    what = "header_page is missing" if damage == "no header_page" else "truncated"
    assert [n for n in rendered.notes
            if n.startswith("ftrace: cannot render: trace.dat: ") and what in n], rendered.notes
    if damage == "garbage raw":
        assert [n for n in rendered.notes if "corrupt pages" in n], rendered.notes
    assert not list(session.glob("*.part")) and not list(session.glob(".*.tmp"))


def test_unreadable_capture_is_one_line_per_output(tmp_path):
    small_kmsg(tmp_path / "dmesg.kmsg")
    (tmp_path / "ftrace").mkdir()
    rendered = render_session(tmp_path)
    assert rendered.files == (tmp_path / "dmesg.txt", tmp_path / "dmesg.json")
    assert len(rendered.notes) == 2
    assert all(n.startswith("ftrace: cannot render: ") and "meta.json" in n
               and "\n" not in n for n in rendered.notes)


def test_rendering_twice_gives_the_same_files(session):
    small_kmsg(session / "dmesg.kmsg")
    first = render_session(session)
    contents = {p: p.read_bytes() for p in first.files}
    (session / "ftrace.txt").write_text("stale\n")
    second = render_session(session)
    assert second == first
    assert [p.name for p in first.files] == list(OUTPUTS)
    assert {p: p.read_bytes() for p in second.files} == contents
    assert sorted(p.name for p in session.iterdir()) == sorted(OUTPUTS + ("dmesg.kmsg",
                                                                          "ftrace"))


def test_a_function_graph_capture_renders_as_the_graph(tmp_path):
    from tests.agent.test_ftrace_graph import GRAPH_LINES, write_graph_capture

    (tmp_path / "ftrace").mkdir()
    write_graph_capture(tmp_path / "ftrace")
    render_session(tmp_path)
    assert (tmp_path / "ftrace.txt").read_text().splitlines() == GRAPH_LINES
    assert len((tmp_path / "ftrace.jsonl").read_text().splitlines()) == 4
