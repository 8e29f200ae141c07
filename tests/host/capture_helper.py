"""Make a REAL capture directory (the recorder/decoder/trace.dat contract) from this
machine's tracefs, for the trace.dat writer's tests.

It mounts its own tracefs at a private temporary directory (same kernel state as
/sys/kernel/tracing, so it neither needs nor disturbs anyone else's mount), works in a
private instance `instances/boardtrace-test-<random>` with trace_clock mono, enables
sched:*, raw_syscalls:* and irq:*, runs a small workload and writes a few trace_marker
lines (so formats/ftrace/print/format is part of the capture), stops tracing, saves the
kernel's own `trace` text as trace.txt, then drains per_cpu/cpuN/trace_pipe_raw into
cpuN.raw and copies the metadata files. The instance is removed and the private mount
unmounted afterwards, whatever happens.

Failures to set this up raise CaptureUnavailable(reason) so tests can skip with it.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from target.arch import interpreter_arch

SYSTEMS = ("sched", "raw_syscalls", "irq")
BUFFER_KB = 8192
MARKS = 3


class CaptureUnavailable(Exception):
    """This machine cannot make a capture; the message says why."""


def _mount_private():
    where = tempfile.mkdtemp(prefix="bt-capture-tracefs-")
    done = subprocess.run(["mount", "-t", "tracefs", "nodev", where],
                          capture_output=True, text=True)
    if done.returncode != 0:
        os.rmdir(where)
        raise CaptureUnavailable("cannot mount tracefs: %s" % (done.stderr.strip() or "mount failed"))
    return where


def _unmount_private(where):
    subprocess.run(["umount", where], check=True)
    os.rmdir(where)


def _write(path, value):
    with open(path, "w") as f:
        f.write(value)


def _page_size(inst):
    subbuf = inst / "buffer_subbuf_size_kb"
    if subbuf.exists():
        return int(subbuf.read_text()) * 1024
    return os.sysconf("SC_PAGE_SIZE")


def _commit_size(header_page):
    """The kernel's long size: the size of the commit field of events/header_page."""
    for line in header_page.splitlines():
        if "commit;" in line:
            for part in line.split(";"):
                part = part.strip()
                if part.startswith("size:"):
                    return int(part[5:])
    raise CaptureUnavailable("no commit field in header_page")


def _workload():
    """A little of everything: forks (sched_process_*), wakeups over a pipe, syscalls."""
    script = ("import os\n"
              "for i in range(20):\n"
              "    r, w = os.pipe()\n"
              "    pid = os.fork()\n"
              "    if pid == 0:\n"
              "        os.read(r, 1); os._exit(0)\n"
              "    os.write(w, b'x'); os.waitpid(pid, 0); os.close(r); os.close(w)\n")
    subprocess.run([sys.executable, "-c", script], check=True)


def _drain(pipe_raw, page_size):
    """Every page trace_pipe_raw hands out, until it has none (tracing is off)."""
    fd = os.open(pipe_raw, os.O_RDONLY | os.O_NONBLOCK)
    pages = []
    try:
        while True:
            try:
                page = os.read(fd, page_size)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                raise
            if not page:
                break
            if len(page) != page_size:
                raise CaptureUnavailable("trace_pipe_raw returned %d bytes, not a %d-byte page"
                                         % (len(page), page_size))
            pages.append(page)
    finally:
        os.close(fd)
    return b"".join(pages)


def _lost(stats_text):
    fields = dict(line.split(":", 1) for line in stats_text.splitlines() if ":" in line)
    return sum(int(fields.get(k, "0").strip() or 0) for k in ("overrun", "dropped events"))


def _record(top, inst, out, name):
    page_size = _page_size(inst)
    _write(inst / "buffer_size_kb", str(BUFFER_KB))
    _write(inst / "trace_clock", "mono")
    _write(inst / "options/overwrite", "0")
    for system in SYSTEMS:
        _write(inst / "events" / system / "enable", "1")
    start = time.monotonic_ns()
    _write(inst / "tracing_on", "1")
    _workload()
    for i in range(MARKS):
        _write(inst / "trace_marker", "boardtrace-test mark %d" % i)
    _write(inst / "tracing_on", "0")
    stop = time.monotonic_ns()
    for system in SYSTEMS:
        _write(inst / "events" / system / "enable", "0")

    (out / "trace.txt").write_text((inst / "trace").read_text())
    cpus = sorted(int(d[3:]) for d in os.listdir(inst / "per_cpu") if d.startswith("cpu"))
    (out / "stats").mkdir()
    lost = {}
    for cpu in cpus:
        per_cpu = inst / "per_cpu" / ("cpu%d" % cpu)
        (out / ("cpu%d.raw" % cpu)).write_bytes(_drain(per_cpu / "trace_pipe_raw", page_size))
        stats = (per_cpu / "stats").read_text()
        (out / "stats" / ("cpu%d" % cpu)).write_text(stats)
        lost[str(cpu)] = _lost(stats)

    header_page = (inst / "events/header_page").read_text()
    (out / "header_page").write_text(header_page)
    shutil.copyfile(inst / "events/header_event", out / "header_event")
    events = []
    for system in SYSTEMS:
        for event in sorted(os.listdir(inst / "events" / system)):
            fmt = inst / "events" / system / event / "format"
            if fmt.is_file():
                dest = out / "formats" / system / event
                dest.mkdir(parents=True)
                shutil.copyfile(fmt, dest / "format")
                events.append("%s:%s" % (system, event))
    print_format = out / "formats" / "ftrace" / "print"  # trace_marker was used
    print_format.mkdir(parents=True)
    shutil.copyfile(inst / "events/ftrace/print/format", print_format / "format")
    shutil.copyfile(top / "saved_cmdlines", out / "saved_cmdlines")
    if (top / "saved_tgids").exists():
        shutil.copyfile(top / "saved_tgids", out / "saved_tgids")

    meta = {"format": "boardtrace-ftrace", "version": 1, "page_size": page_size, "cpus": cpus,
            "clock": "mono", "tracer": "nop", "events": events,
            "kernel": os.uname().release, "arch": interpreter_arch(),
            "long_size": _commit_size(header_page), "big_endian": sys.byteorder == "big",
            "lost": lost, "instance": name,
            "start_monotonic_ns": start, "stop_monotonic_ns": stop}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def make_capture(out):
    """Fill the (new or empty) directory out with a real capture; returns out as a Path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise CaptureUnavailable("needs root to mount tracefs and create an instance")
    mount = _mount_private()
    try:
        top = Path(mount)
        name = "boardtrace-test-" + uuid.uuid4().hex[:8]
        inst = top / "instances" / name
        try:
            inst.mkdir()
        except OSError as e:
            raise CaptureUnavailable("cannot create a tracefs instance: %s" % e) from None
        try:
            _record(top, inst, out, name)
        finally:
            inst.rmdir()
    finally:
        _unmount_private(mount)
    return out


if __name__ == "__main__":
    print(make_capture(sys.argv[1]))
