"""--json: one JSON object per line for every syscall, signal and exit (schema in
docs/strace-json.md). Times are CLOCK_MONOTONIC nanoseconds, the clock of the whole capture,
with the wall-clock time next to them."""

import json
import os
import time

from target.strace import decode

SCHEMA = {"type": "header", "schema": "boardtrace-strace", "version": 1}


def thread_group(tid):
    """The pid of the process thread tid belongs to (itself for a process's main thread)."""
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


class JsonLines(object):
    def __init__(self, stream):
        self.stream = stream
        self.wall_offset = time.time() - time.monotonic()
        self.write(dict(SCHEMA, clock="monotonic", pid=os.getpid()))

    def write(self, obj):
        self.stream.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    def stamp(self, obj, tracee, ns):
        if tracee.tgid is None:
            tracee.tgid = thread_group(tracee.pid)
        obj["pid"] = tracee.tgid
        obj["tid"] = tracee.pid
        obj["ts_ns"] = ns
        obj["wall"] = round(ns / 1e9 + self.wall_offset, 6)
        return obj

    def syscall(self, tracee, call, entry_ns, duration_ns, injected=False):
        obj = {"type": "syscall"}
        obj.update(decode.call_json(call))
        obj["duration_ns"] = duration_ns
        if injected:
            obj["injected"] = True
        self.write(self.stamp(obj, tracee, entry_ns))

    def signal(self, tracee, info):
        obj = {"type": "signal"}
        obj.update(info)
        self.write(self.stamp(obj, tracee, time.monotonic_ns()))

    def ended(self, tracee, status):
        if os.WIFEXITED(status):
            obj = {"type": "exit", "code": os.WEXITSTATUS(status)}
        else:
            obj = {"type": "killed", "signal": decode.signal_name(os.WTERMSIG(status)),
                   "core_dumped": bool(os.WCOREDUMP(status))}
        self.write(self.stamp(obj, tracee, time.monotonic_ns()))

    def close(self):
        self.stream.close()
