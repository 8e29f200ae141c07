"""`agent info`: facts about the machine the agent runs on, as one JSON object.

Every section comes from its own probe; a probe that fails records {"error": "..."} in its
place and the others still run. The keys are documented in docs/info.md.
"""

import errno
import json
import os
import platform
import sys
import time

import target
from target import arch, kconfig, libc, mounts
from target.cli import AgentError, Parser
from target.ftrace import probe as ftrace_probe
from target.ftrace import tracefs
from target.strace import probe as strace_probe

KMSG = "/dev/kmsg"
CPU_ONLINE = "/sys/devices/system/cpu/online"
CLOCKS = ("realtime", "monotonic", "monotonic_raw", "boottime")
NOT_MOUNTED = ("tracefs is not mounted: rerun as root with --mount-tracefs, or mount it: "
               "mount -t tracefs nodev /sys/kernel/tracing")


def error_text(e):
    """'EPERM: Operation not permitted: /path' for OSError, 'Type: message' otherwise."""
    if isinstance(e, OSError) and e.errno:
        where = ": %s" % e.filename if e.filename else ""
        return "%s: %s%s" % (errno.errorcode.get(e.errno, e.errno), os.strerror(e.errno), where)
    return "%s: %s" % (type(e).__name__, e)


def safe(probe, *args):
    """Run one probe; its failure becomes {"error": ...} instead of ending the report."""
    try:
        return probe(*args)
    except Exception as e:
        return {"error": error_text(e)}


def read_text(path):
    """A /proc or /sys value as a stripped string, or None when the file does not exist."""
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def agent_archive():
    """The .pyz the agent runs from, or None when it runs from a source tree."""
    path = os.path.dirname(os.path.abspath(__file__))
    while os.path.dirname(path) != path:
        if os.path.isfile(path):
            return path
        path = os.path.dirname(path)
    return None


def default_workdir():
    archive = agent_archive()
    return os.path.dirname(archive) if archive else os.getcwd()


def cpu_list_count(text):
    """Number of CPUs in a kernel cpu list such as '0-3,6,8-9'."""
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


# --- sections -------------------------------------------------------------------------

def kernel_facts():
    u = os.uname()
    return {"release": u.release, "version": u.version, "hostname": u.nodename,
            "page_size": os.sysconf("SC_PAGE_SIZE")}


def python_facts():
    return {"version": platform.python_version(), "implementation": sys.implementation.name,
            "executable": sys.executable, "executable_real": os.path.realpath(sys.executable),
            "bits": 64 if sys.maxsize > 2 ** 32 else 32}


def user_facts():
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "egid": os.getegid(), "root": os.geteuid() == 0}


def cpu_facts():
    online = read_text(CPU_ONLINE)
    return {"count": os.cpu_count(), "online_list": online,
            "online": cpu_list_count(online) if online else None,
            "affinity": len(os.sched_getaffinity(0))}


def clock_facts():
    clocks = {}
    for name in CLOCKS:
        clock = getattr(time, "CLOCK_" + name.upper(), None)
        if clock is None:
            continue
        try:
            clocks[name] = {"resolution_ns": round(time.clock_getres(clock) * 1e9)}
        except OSError as e:
            clocks[name] = {"error": error_text(e)}
    return clocks


def kmsg_facts(path=KMSG):
    result = {"path": path, "exists": os.path.exists(path), "readable": False, "error": None,
              "dmesg_restrict": read_text("/proc/sys/kernel/dmesg_restrict"),
              "printk_devkmsg": read_text("/proc/sys/kernel/printk_devkmsg")}
    if result["dmesg_restrict"] is not None:
        result["dmesg_restrict"] = int(result["dmesg_restrict"])
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        result["readable"] = True
    except OSError as e:
        result["error"] = error_text(e)
    try:
        result["syslog_buffer_size"] = libc.klogctl(libc.SYSLOG_ACTION_SIZE_BUFFER)
    except OSError as e:
        result["syslog_buffer_size"] = {"error": error_text(e)}
    return result


def _probe_tracefs(facts):
    t = tracefs.Tracefs(facts["path"])
    facts["tracers"] = safe(tracefs.tracers, t)
    facts["events"] = safe(tracefs.event_count, t)
    facts["instances"] = t.exists("instances")
    facts["function_tracer"] = safe(ftrace_probe.function_tracer_works, t)


def ftrace_facts(override=None, mount=False):
    """Where tracefs is, what it offers, whether the function tracer works. With mount,
    an unmounted tracefs is mounted for the probes and unmounted after."""
    facts = tracefs.locate(override)
    facts.update(supported=safe(tracefs.supported), tracers=None, events=None,
                 instances=None, function_tracer=None)
    mount_id = None
    if mount and not facts["mounted"]:
        try:
            if tracefs.mount_tracefs(facts["path"]):
                mount_id = _top_mount_id(facts["path"])
            facts.update(mounted=True, mounted_by_agent=mount_id is not None)
        except OSError as e:
            facts["mount_error"] = error_text(e)
    try:
        if facts["mounted"]:
            _probe_tracefs(facts)
        else:
            facts["hint"] = NOT_MOUNTED
    finally:
        if mount_id is not None:
            facts["unmounted_after"] = _umount_own(facts["path"], mount_id, facts)
    return facts


def _top_mount_id(path):
    return mounts.find_mount(path)["id"]


def _umount_own(path, mount_id, facts):
    """Unmount path only while our mount is still the top one there."""
    try:
        if _top_mount_id(path) != mount_id:
            facts["umount_error"] = "another mount covers ours at %s; left in place" % path
            return False
        tracefs.umount_tracefs(path)
        return True
    except OSError as e:
        facts["umount_error"] = error_text(e)
        return False


def basic(start_ns=None):
    """The sections that only read: what a capture's manifest records (the probes that try
    features take seconds on a slow board)."""
    start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) if start_ns is None else start_ns
    return {
        "agent": {"version": target.VERSION, "archive": agent_archive(),
                  "start_monotonic_ns": start_ns},
        "arch": safe(arch.describe),
        "kernel": safe(kernel_facts),
        "python": safe(python_facts),
        "user": safe(user_facts),
        "cpus": safe(cpu_facts),
        "clocks": safe(clock_facts),
        "kconfig": safe(kconfig.describe),
    }


def collect(workdir, tracefs_path=None, mount_tracefs=False, start_ns=None):
    """The whole report as a dict."""
    report = basic(start_ns)
    start_ns = report["agent"]["start_monotonic_ns"]
    report.update({
        "ftrace": safe(ftrace_facts, tracefs_path, mount_tracefs),
        "ptrace": safe(strace_probe.ptrace_probe),
        "seccomp": safe(strace_probe.seccomp_probe, report["arch"].get("name")),
        "kmsg": safe(kmsg_facts),
        "workdir": safe(mounts.describe_workdir, workdir),
    })
    report["agent"]["elapsed_ns"] = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - start_ns
    return report


def parse_args(argv):
    p = Parser(prog="info", description="Print facts about this machine as one JSON object "
               "(keys: docs/info.md).")
    p.add_argument("--workdir", metavar="DIR",
                   help="directory whose mount to report (default: the directory of the "
                   "agent .pyz, or the current directory when run from source)")
    p.add_argument("--tracefs", metavar="DIR",
                   help="use this tracefs directory instead of discovering it")
    p.add_argument("--mount-tracefs", action="store_true",
                   help="when tracefs is not mounted, mount it for the probes and unmount "
                   "it after (needs root)")
    p.add_argument("--compact", action="store_true",
                   help="one line of JSON instead of indented output")
    return p.parse_args(argv)


def main(argv):
    start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    args = parse_args(argv)
    workdir = args.workdir or default_workdir()
    if not os.path.isdir(workdir):
        raise AgentError("--workdir %s: not a directory" % workdir)
    if args.tracefs and not os.path.isdir(args.tracefs):
        raise AgentError("--tracefs %s: not a directory" % args.tracefs)
    report = collect(workdir, args.tracefs, args.mount_tracefs, start_ns)
    if args.compact:
        text = json.dumps(report, sort_keys=True, separators=(",", ":"))
    else:
        text = json.dumps(report, sort_keys=True, indent=2)
    sys.stdout.write(text + "\n")
    return 0
