#!/usr/bin/env python3
"""Benchmark: our `dmesg` against util-linux's, measured in the same run.

    sudo .venv/bin/python bench/dmesg.py [--reps 20] [--records 10000] [--python /usr/bin/python3]

Fills the kernel log with --records records through /dev/kmsg (printk_devkmsg set to "on"
for the duration and restored), then times each command --reps times (median, wall clock,
stdout to /dev/null) and prints the ratio ours / util-linux. The ring buffer keeps only the
newest records (its descriptor array holds buffer_size/32 of them: 4096 for 128 KiB), so
the same number of records is also written to a syslog-format file and read with -F, which
reads all of them. Interpreter start-up is measured on its own for context.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from common import deployed_agent, timed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVKMSG_SETTING = "/proc/sys/kernel/printk_devkmsg"


def fill_kernel_log(count):
    with open(DEVKMSG_SETTING) as f:
        old = f.read().strip().strip("[]")
    with open(DEVKMSG_SETTING, "w") as f:
        f.write("on\n")
    try:
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            for i in range(count):
                # the newline finalises the record (an open record is invisible to readers)
                os.write(fd, b"<13>bench %05d: an ordinary kernel log line\n" % i)
        finally:
            os.close(fd)
    finally:
        with open(DEVKMSG_SETTING, "w") as f:
            f.write(old + "\n")


def live_records():
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    count = 0
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
        while True:
            try:
                os.read(fd, 8193)
                count += 1
            except BlockingIOError:
                return count
            except BrokenPipeError:
                continue
    finally:
        os.close(fd)


def write_syslog_file(path, count):
    with open(path, "wb") as f:
        for i in range(count):
            f.write(b"<%d>[%5d.%06d] bench %05d: an ordinary kernel log line\n"
                    % (8 + i % 8, 100 + i // 1000, i % 1000 * 997, i))



def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--records", type=int, default=10000)
    p.add_argument("--python", default=sys.executable, help="interpreter that runs our agent")
    args = p.parse_args()
    if os.geteuid() != 0 or shutil.which("dmesg") is None:
        sys.exit("bench/dmesg.py: needs root (to fill /dev/kmsg) and util-linux dmesg")

    env = dict(os.environ, LC_ALL="C.UTF-8")
    work_dir = tempfile.mkdtemp(prefix="bench-dmesg-")
    log_file = os.path.join(work_dir, "syslog.txt")

    fill_kernel_log(args.records)
    write_syslog_file(log_file, args.records)
    ul_version = subprocess.run(["dmesg", "--version"], stdout=subprocess.PIPE,
                                universal_newlines=True).stdout.strip()
    py_version = subprocess.run([args.python, "--version"], stdout=subprocess.PIPE,
                                universal_newlines=True).stdout.strip()
    deployed, plain = deployed_agent(args.python, work_dir)

    print("dmesg benchmark: %d records written, %d live in the ring buffer, %d in the -F file"
          % (args.records, live_records(), args.records))
    print("%s; ours on %s (%s); median of %d runs"
          % (ul_version, py_version, args.python, args.reps))
    print("ours: %s dmesg  (the agent as deployed: with bytecode made by that Python)"
          % " ".join(deployed))
    print("no-pyc: %s dmesg  (the bare zipapp: every run compiles the agent)" % " ".join(plain))
    print()
    print("%-34s %10s %10s %10s %8s" % ("case", "util-linux", "ours", "no-pyc", "ratio"))
    cases = [("dmesg", []), ("dmesg --json", ["--json"]), ("dmesg -x -T", ["-x", "-T"]),
             ("dmesg -F FILE (%d records)" % args.records, ["-F", log_file])]
    for name, opts in cases:
        ref = timed(["dmesg"] + opts, args.reps, env)
        mine = timed(deployed + ["dmesg"] + opts, args.reps, env)
        bare = timed(plain + ["dmesg"] + opts, args.reps, env)
        print("%-34s %8.1fms %8.1fms %8.1fms %7.1fx" % (name, ref * 1e3, mine * 1e3,
                                                       bare * 1e3, mine / ref))
    start = timed(deployed[:-1] + ["-c", "pass"], args.reps, env)
    start_imports = timed(deployed[:-1] + ["-c", "import argparse"], args.reps, env)
    print()
    print("for scale: `%s -c pass` %.1fms, `-c 'import argparse'` %.1fms"
          % (" ".join(deployed[:-1]), start * 1e3, start_imports * 1e3))
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
