#!/usr/bin/env python3
"""Benchmark: our strace against the real strace and python-ptrace, measured in the same run.

    .venv/bin/python bench/strace.py [--reps 3] [--python /usr/bin/python3] [--pin]

Workloads: 200,000 getppid() calls (a C program), `dd bs=1` copying 50,000 bytes, and
`python3 -c 'import email'`. For each: the untraced time, then the full trace (every syscall,
output to /dev/null) by strace, by us and by python-ptrace's strace.py (installed into
build/bench-ptrace with pip), then a filtered trace of one syscall (`-f -e trace=openat`), by
strace --seccomp-bpf and by us (seccomp by default). Median wall time of --reps runs; ratios
are ours / strace. --pin runs tracer and tracee on CPU 0 (taskset), which can halve the
ptrace round trip.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from common import deployed_agent, timed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GETPPID_C = r"""
#include <unistd.h>
int main(void) { for (int i = 0; i < 200000; i++) getppid(); return 0; }
"""



def python_ptrace(python):
    """strace.py from python-ptrace in a venv of its own, or None when pip cannot get it."""
    env_dir = os.path.join(REPO, "build", "bench-ptrace")
    script = os.path.join(env_dir, "bin", "strace.py")
    if not os.path.exists(script):
        subprocess.run([python, "-m", "venv", env_dir], check=True)
        done = subprocess.run([os.path.join(env_dir, "bin", "pip"), "install", "-q",
                               "python-ptrace==0.9.9"])
        if done.returncode != 0:
            return None
    return [os.path.join(env_dir, "bin", "python"), script]


def workloads(work):
    exe = os.path.join(work, "getppid")
    src = exe + ".c"
    with open(src, "w") as f:
        f.write(GETPPID_C)
    subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    return [
        ("200k getppid", [exe]),
        ("dd bs=1 50kB", ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=50000"]),
        ("python3 -c 'import email'", ["/usr/bin/python3", "-c", "import email"]),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--python", default="/usr/bin/python3", help="interpreter that runs our agent")
    p.add_argument("--pin", action="store_true", help="run everything on CPU 0")
    args = p.parse_args()
    if shutil.which("strace") is None or shutil.which("cc") is None:
        sys.exit("bench/strace.py: needs strace and a C compiler")
    pin = ["taskset", "-c", "0"] if args.pin else []
    work = tempfile.mkdtemp(prefix="bench-strace-")
    ours = pin + deployed_agent(args.python, work)[0] + ["strace"]
    theirs = pin + ["strace"]
    ptrace_py = python_ptrace(args.python)

    print("strace benchmark: %s; ours on %s; median of %d runs%s" % (
        subprocess.run(["strace", "-V"], stdout=subprocess.PIPE, universal_newlines=True
                       ).stdout.splitlines()[0],
        subprocess.run([args.python, "--version"], stdout=subprocess.PIPE,
                       universal_newlines=True).stdout.strip(),
        args.reps, ", pinned to CPU 0" if args.pin else ""))
    print()
    print("%-28s %9s %9s %9s %9s %7s %9s %9s %7s" % (
        "workload", "untraced", "strace", "ours", "ptrace.py", "ratio", "strace-f", "ours-f", "ratio"))
    for name, cmd in workloads(work):
        bare = timed(pin + cmd, args.reps)
        ref = timed(theirs + ["-o", "/dev/null"] + cmd, args.reps)
        mine = timed(ours + ["-o", "/dev/null"] + cmd, args.reps)
        other = timed(ptrace_py + ["-o", "/dev/null", "--"] + cmd, args.reps) if ptrace_py else None
        ref_f = timed(theirs + ["-f", "--seccomp-bpf", "-e", "trace=openat", "-o", "/dev/null"] + cmd,
                      args.reps)
        mine_f = timed(ours + ["-f", "-e", "trace=openat", "-o", "/dev/null"] + cmd, args.reps)
        print("%-28s %8.3fs %8.3fs %8.3fs %9s %6.2fx %8.3fs %8.3fs %6.2fx" % (
            name, bare, ref, mine, "%.3fs" % other if other else "n/a", mine / ref,
            ref_f, mine_f, mine_f / ref_f))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
