"""Shared by the ftrace record/cli tests: a private tracefs mount, the CLI as a subprocess,
and the top-level tracing state that must be the same before and after."""

import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = "import sys; from target.cli import run; from target.ftrace.cli import main; " \
    "sys.exit(run('ftrace', main, sys.argv[1:]))"
TOP_FILES = ("tracing_on", "current_tracer", "set_event", "buffer_size_kb", "trace_clock",
             "tracing_thresh", "set_event_pid")


@pytest.fixture(scope="module")
def tracefs_dir():
    where = tempfile.mkdtemp(prefix="bt-tracefs-")
    try:
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", where],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if done.returncode:
            pytest.skip("cannot mount tracefs: %s" % done.stdout.strip())
        try:
            yield where
        finally:
            subprocess.run(["umount", where], check=True)
    finally:
        os.rmdir(where)


def command(tracefs_dir, *args):
    return [sys.executable, "-c", RUNNER, "--tracefs", tracefs_dir] + list(args)


def ftrace(tracefs_dir, *args, timeout=60):
    return subprocess.run(command(tracefs_dir, *args), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def spawn(tracefs_dir, *args):
    return subprocess.Popen(command(tracefs_dir, *args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def top_state(tracefs_dir):
    state = {}
    for name in TOP_FILES:
        with open(os.path.join(tracefs_dir, name)) as f:
            state[name] = f.read()
    return state


def instances_of(tracefs_dir, pid):
    """Session instances owned by pid (boardtrace-<pid>-<start>)."""
    pattern = re.compile(r"^boardtrace-%d-\d+$" % pid)
    return [n for n in os.listdir(os.path.join(tracefs_dir, "instances")) if pattern.match(n)]


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def tracing_in(tracefs_dir, pid):
    """The instance of pid once it traces (tracing_on 1), else None."""
    for name in instances_of(tracefs_dir, pid):
        try:
            with open(os.path.join(tracefs_dir, "instances", name, "tracing_on")) as f:
                if f.read().strip() == "1":
                    return name
        except OSError:
            pass
    return None
