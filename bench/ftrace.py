#!/usr/bin/env python3
"""Benchmark: our ftrace against trace-cmd, measured in the same run.

    sudo .venv/bin/python bench/ftrace.py [--duration 1] [--reps 3] [--python /usr/bin/python3]

1. Decode: records sched, raw_syscalls and irq:* events for --duration seconds under a
   syscall-heavy load (`dd bs=1`), writes trace.dat from that capture (host/tracedat.py),
   then times `trace-cmd report -i trace.dat`, our `report DIR` and `report DIR --json`
   (median of --reps runs, stdout to /dev/null) and prints events/s and the ratio
   ours / trace-cmd. A naive baseline parses our text output (the kernel's `trace` text, line
   for line) with a regex per line, in this process.
2. Capture: all sched + raw_syscalls events for --duration seconds under the same load:
   events recorded, events lost (meta.json "lost") and the recorder's CPU time (user+sys of
   the child, getrusage), then the same with `trace-cmd record` when it can run here.

The recorder is run with `-f 'common_pid != <its own pid>'` on raw_syscalls (see
docs/BENCHMARKS.md: without it, its own reads feed the buffer it reads). The tracefs mount
state and the top-level tracing files are checked before and after.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from common import deployed_agent, timed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=100000000"]
TOP_FILES = ("tracing_on", "current_tracer", "buffer_size_kb", "trace_clock", "set_event")
LINE = re.compile(r"^\s*(.*)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+\.\d+):\s+(\w+):\s?(.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


def tracefs_state():
    """Whether /sys/kernel/tracing is mounted, the top-level files that say what tracing is
    doing, and our instances (other mounts come and go with other users of the machine)."""
    top = "/sys/kernel/tracing"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "tracefs"]
    state = {"mounted": top in mounts}
    if not mounts:
        return state
    for name in TOP_FILES:
        try:
            with open(os.path.join(mounts[0], name)) as f:
                state[name] = f.read()
        except OSError:
            pass
    state["instances"] = sorted(os.listdir(os.path.join(mounts[0], "instances")))
    return state


def changes(before, after):
    """What differs, leaving out instances of other runs that came and went meanwhile."""
    diff = {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
            if k != "instances" and before.get(k) != after.get(k)}
    if "instances" in before and "instances" in after:
        left = sorted(set(after["instances"]) - set(before["instances"]))
        if left:
            diff["new instances"] = left
    return diff


def cpu_of_child(cmd, **kw):
    """Run cmd; (CompletedProcess, its user+sys CPU seconds, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=REPO, **kw)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def record(agent, out, events, duration):
    """Our recorder under the load, excluding its own syscalls: (meta, cpu, wall, stderr)."""
    script = "exec \"$@\" -f \"common_pid != $$\""   # $$ is the recorder's pid after exec
    cmd = ["sh", "-c", script, "sh"] + agent + ["ftrace", "record", "-o", out,
                                                "--duration", str(duration)] + events
    load = subprocess.Popen(LOAD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done, cpu, wall = cpu_of_child(cmd)
    finally:
        load.kill()
        load.wait()
    if done.returncode != 0:
        sys.exit("bench/ftrace.py: record failed: %s" % done.stderr.strip())
    with open(os.path.join(out, "meta.json")) as f:
        return json.load(f), cpu, wall, done.stderr


def count_events(agent, capture):
    done = subprocess.run(agent + ["ftrace", "report", capture, "--json"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    return done.stdout.count(b'"type":"event"')



def regex_parse(path):
    """The naive way: a regex per line of the kernel's text, then one per field."""
    count = 0
    start = time.perf_counter()
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                dict(FIELD.findall(m.group(7)))
                count += 1
    return count, time.perf_counter() - start


def decode_bench(agent, work, duration, reps):
    capture = os.path.join(work, "decode")
    events = ["-e", "sched", "-e", "irq:*", "-e", "raw_syscalls"]
    meta, _, _, _ = record(agent, capture, events, duration)
    sys.path.insert(0, REPO)
    from host.tracedat import write_tracedat
    dat = os.path.join(work, "trace.dat")
    write_tracedat(capture, dat)
    n = count_events(agent, capture)
    text = os.path.join(work, "trace.txt")
    with open(text, "w") as f:
        subprocess.run(agent + ["ftrace", "report", capture], cwd=REPO, stdout=f,
                       stderr=subprocess.DEVNULL, check=True)
    raw = sum(os.path.getsize(os.path.join(capture, "cpu%d.raw" % c)) for c in meta["cpus"])
    print("1. decode: %d events (%.1f MB of pages, %d lost) from `record %s` for %gs under `%s`"
          % (n, raw / 1e6, sum(meta["lost"].values()), " ".join(events), duration,
             " ".join(LOAD[:4])))
    print()
    print("%-40s %9s %12s %8s" % ("decoder", "time", "events/s", "ratio"))
    ref = timed(["trace-cmd", "report", "-i", dat], reps)
    rows = [("trace-cmd report -i trace.dat", ref),
            ("ours: report DIR", timed(agent + ["ftrace", "report", capture], reps)),
            ("ours: report DIR --json",
             timed(agent + ["ftrace", "report", capture, "--json"], reps))]
    parsed, regex = regex_parse(text)
    rows.append(("regex per line of the text (in-process)", regex))
    for name, t in rows:
        print("%-40s %8.2fs %12.0f %7.2fx" % (name, t, n / t, t / ref))
    if parsed != n:
        print("(the regex matched %d of the %d lines)" % (parsed, n))
    shutil.rmtree(capture, ignore_errors=True)


def trace_cmd_record(work, events, duration):
    """trace-cmd record under the same load: (events, lost, cpu) or the error line."""
    dat = os.path.join(work, "tc.dat")
    args = []
    for e in events:
        args += ["-e", e]
    load = subprocess.Popen(LOAD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done, cpu, _ = cpu_of_child(["trace-cmd", "record", "-o", dat] + args
                                    + ["sleep", str(duration)], timeout=duration + 120)
    finally:
        load.kill()
        load.wait()
    if done.returncode != 0 or not os.path.exists(dat):
        lines = [l.strip() for l in done.stderr.splitlines() if l.strip()]
        return " / ".join(lines[-2:]) or "exit status %d" % done.returncode
    report = subprocess.run(["trace-cmd", "report", "-i", dat], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, universal_newlines=True).stdout
    n = lost = 0
    for line in report.splitlines():
        m = re.search(r"\[(\d+) EVENTS DROPPED\]", line)
        if m:
            lost += int(m.group(1))
        elif LINE.match(line):
            n += 1
    return n, lost, cpu


def capture_bench(agent, work, duration):
    events = ["sched", "raw_syscalls"]
    out = os.path.join(work, "capture")
    args = []
    for e in events:
        args += ["-e", e]
    meta, cpu, wall, _ = record(agent, out, args, duration)
    n = count_events(agent, out)
    lost = sum(meta["lost"].values())
    print()
    print("2. capture: -e %s for %gs under `%s` (default buffer)"
          % (" -e ".join(events), duration, " ".join(LOAD[:4])))
    print()
    print("%-24s %10s %10s %9s %8s %8s" % ("recorder", "events", "lost", "events/s",
                                         "CPU", "wall"))
    print("%-24s %10d %10d %9.0f %7.2fs %7.2fs" % ("ours", n, lost, n / duration, cpu, wall))
    theirs = trace_cmd_record(work, events, duration)
    if isinstance(theirs, str):
        print("trace-cmd record: not possible here (%s)" % theirs)
    else:
        tn, tlost, tcpu = theirs
        print("%-24s %10d %10d %9.0f %7.2fs" % ("trace-cmd record", tn, tlost, tn / duration,
                                                tcpu))
        print("ratio ours/trace-cmd: events %.2fx, lost %s, CPU %.2fx" % (
            n / tn, "%.2fx" % (lost / tlost) if tlost else "%d vs 0" % lost, cpu / tcpu))
    shutil.rmtree(out, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--python", default="/usr/bin/python3", help="interpreter that runs our agent")
    args = p.parse_args()
    if os.geteuid() != 0 or shutil.which("trace-cmd") is None:
        sys.exit("bench/ftrace.py: needs root and trace-cmd")
    before = tracefs_state()
    work = tempfile.mkdtemp(prefix="bench-ftrace-")
    try:
        agent = deployed_agent(args.python, work)[0]
        print("ftrace benchmark: %s; ours on %s; kernel %s, %d CPUs; median of %d runs" % (
            subprocess.run(["trace-cmd", "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True
                           ).stdout.strip().splitlines()[0],
            subprocess.run([args.python, "--version"], stdout=subprocess.PIPE,
                           universal_newlines=True).stdout.strip(),
            os.uname().release, os.cpu_count(), args.reps))
        print()
        decode_bench(agent, work, args.duration, args.reps)
        capture_bench(agent, work, args.duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        diff = changes(before, tracefs_state())
        print()
        print("tracefs state after the run: %s" % ("as before" if not diff else
                                                   "CHANGED: %r" % diff))


if __name__ == "__main__":
    main()
