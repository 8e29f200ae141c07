#!/usr/bin/env python3
"""Benchmark: capture at a high event rate on a board, our recorder against `trace-cmd record`.

    .venv/bin/python bench/ftrace_board.py [--board qemu-aarch64] [--duration 2] [--reps 3]

This machine's sandbox refuses `trace-cmd record`; a QEMU board's kernel does not (the images
carry Debian's trace-cmd). On the board, for each run and recorder in turn: `dd bs=1` from
/dev/zero (a syscall-heavy load) starts, then the recorder records `-e sched -e raw_syscalls`
with the same per-CPU buffer for --duration seconds; its CPU time is the user+sys of the whole
recorder process tree (getrusage(RUSAGE_CHILDREN) around it, measured on the board; dd is
reaped after), and its start-up CPU (`ftrace list -t`, `trace-cmd list -t`, without the load)
is printed apart: under TCG, starting Python costs seconds. Both leave their own pids out (ours: set_event_notrace_pid, trace-cmd: its
default filter). The captures come home: events are counted by decoding them (ours with our
report, trace-cmd's with the host's `trace-cmd report`), lost events from meta.json (ours) and
from the `[N EVENTS DROPPED]` and `[LOST N EVENTS]` lines of trace-cmd's report. Prints the
median of --reps runs and the ratios ours / trace-cmd.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from host.deploy import AGENT_FLAGS, deploy  # noqa: E402
from host.profiles import load_board  # noqa: E402
from host.transport import open_transport  # noqa: E402

EVENTS = ["-e", "sched", "-e", "raw_syscalls"]
BUFFER_KB = 1408  # a fresh instance's size on these kernels; trace-cmd gets the same
WORK = "/tmp/bt-bench"
MEASURE = r"""
import json, resource, subprocess, sys, time
load = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=1000000000"],
                        stderr=subprocess.DEVNULL)
time.sleep(0.3)
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.monotonic()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
wall = time.monotonic() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
load.kill()
load.wait()
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"code": done.returncode, "cpu": cpu, "wall": wall,
                  "output": done.stdout.decode(errors="replace")[-1500:]}))
"""
DROPPED = re.compile(r"\[(\d+) EVENTS DROPPED\]|\[LOST (\d+) EVENTS\]")


def measured(transport, argv, timeout):
    """Run argv on the board under the load: {"code", "cpu", "wall", "output"}."""
    done = transport.run(["python3", "-c", MEASURE, *argv], timeout=timeout)
    if done.code != 0:
        sys.exit("bench: the board's measuring script failed: " + done.stderr.decode()[-500:])
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if result["code"] != 0:
        sys.exit("bench: %s failed on the board: %s" % (argv[0], result["output"].strip()[-300:]))
    return result


def fetch(transport, remote, local):
    """A board directory home, as one tar."""
    assert transport.run(["tar", "-cf", remote + ".tar", "-C", os.path.dirname(remote),
                          os.path.basename(remote)]).code == 0
    transport.get(remote + ".tar", local / "capture.tar")
    with tarfile.open(local / "capture.tar") as tar:
        tar.extractall(local, filter="data")
    return local / os.path.basename(remote)


def ours(transport, agent, duration, home):
    out = WORK + "/ours"
    transport.run(["rm", "-rf", out, out + ".tar"])
    run = measured(transport, [agent.python, *AGENT_FLAGS, agent.path, "ftrace", "record", "-o", out,
                               "-b", str(BUFFER_KB), *EVENTS, "--duration", str(duration)],
                   timeout=duration + 300)
    capture = fetch(transport, out, home)
    report = subprocess.run([sys.executable, "-m", "target", "ftrace", "report", str(capture)],
                            cwd=REPO, capture_output=True, text=True, check=True)
    lost = sum(json.loads((capture / "meta.json").read_text())["lost"].values())
    events = sum(1 for line in report.stdout.splitlines() if not line.startswith("CPU:"))
    return events, lost, run["cpu"], run["wall"]


def trace_cmd(transport, duration, home):
    dat = WORK + "/tc.dat"
    transport.run(["rm", "-f", dat])
    run = measured(transport, ["trace-cmd", "record", "-o", dat, "-b", str(BUFFER_KB), *EVENTS,
                               "sleep", str(duration)], timeout=duration + 300)
    transport.get(dat, home / "tc.dat")
    report = subprocess.run(["trace-cmd", "report", "-i", str(home / "tc.dat")],
                            capture_output=True, text=True, check=True).stdout
    events = lost = 0
    for line in report.splitlines():
        dropped = DROPPED.search(line)
        if dropped:
            lost += int(dropped.group(1) or dropped.group(2))
        elif re.match(r"^\s*\S.*\[\d+\]\s+\d+\.\d+:", line):
            events += 1
    return events, lost, run["cpu"], run["wall"]


def start_up(transport, argv, reps):
    """Median CPU seconds of a command that only starts and lists tracers, without the load."""
    cpus = []
    for _ in range(reps):
        done = transport.run(["python3", "-c", MEASURE.replace('["dd"', '["true"'), *argv], timeout=300)
        cpus.append(json.loads(done.stdout.decode().strip().splitlines()[-1])["cpu"])
    return statistics.median(cpus)


def median_row(runs):
    return [statistics.median(column) for column in zip(*runs)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--board", default="qemu-aarch64")
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if shutil.which("trace-cmd") is None:
        sys.exit("bench/ftrace_board.py: needs the host's trace-cmd (apt-get install trace-cmd)")
    transport = open_transport(load_board(args.board))
    try:
        agent = deploy(transport)
        transport.run(["mkdir", "-p", WORK])
        facts = transport.run(["sh", "-c", "uname -r; nproc; trace-cmd --version 2>&1 | grep version"])
        if facts.code != 0:
            sys.exit(f"bench: board {args.board} has no trace-cmd (rebuild its image)")
        kernel, cpus, version = facts.stdout.decode().split("\n")[:3]
        print(f"ftrace capture on board {args.board}: kernel {kernel}, {cpus} CPUs, {version.strip()}; "
              f"{' '.join(EVENTS)} with {BUFFER_KB} KB per CPU for {args.duration:g} s under "
              f"`dd if=/dev/zero of=/dev/null bs=1`; median of {args.reps} runs")
        rows = {"ours": [], "trace-cmd record": []}
        with tempfile.TemporaryDirectory(prefix="bench-ftrace-board-") as home:
            for rep in range(args.reps):
                for name, fn in (("ours", lambda h: ours(transport, agent, args.duration, h)),
                                 ("trace-cmd record", lambda h: trace_cmd(transport, args.duration, h))):
                    where = Path(home) / f"{rep}-{name.split()[0]}"
                    where.mkdir()
                    rows[name].append(fn(where))
        starts = {"ours": start_up(transport, [agent.python, *AGENT_FLAGS, agent.path, "ftrace", "list", "-t"],
                                   args.reps),
                  "trace-cmd record": start_up(transport, ["trace-cmd", "list", "-t"], args.reps)}
        print()
        print("%-18s %9s %8s %10s %7s %9s %7s" % ("recorder", "events", "lost", "events/s", "CPU",
                                                 "start-up", "wall"))
        med = {}
        for name, runs in rows.items():
            events, lost, cpu, wall = med[name] = median_row(runs)
            print("%-18s %9d %8d %10.0f %6.2fs %8.2fs %6.2fs" % (name, events, lost, events / args.duration, cpu,
                                                                starts[name], wall))
        (n, lost, cpu, _), (tn, tlost, tcpu, _) = med["ours"], med["trace-cmd record"]
        work, twork = cpu - starts["ours"], tcpu - starts["trace-cmd record"]
        print()
        print("ratio ours / trace-cmd: events %.2fx, lost %s, CPU %.2fx, CPU beyond start-up %.2fx, "
              "that per event %.2fx" % (n / tn, "%.2fx" % (lost / tlost) if tlost else "%d vs 0" % lost,
                                        cpu / tcpu, work / twork, (work / n) / (twork / tn)))
        print("runs (events, lost, CPU s, wall s): %s" % json.dumps(
            {k: [[round(x, 2) for x in r] for r in v] for k, v in rows.items()}))
    finally:
        transport.run(["rm", "-rf", WORK])
        transport.close()


if __name__ == "__main__":
    main()
