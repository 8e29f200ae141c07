"""Finding, mounting and reading tracefs."""

import os

from target import libc, mounts

TRACING = "/sys/kernel/tracing"
DEBUG_TRACING = "/sys/kernel/debug/tracing"
FILESYSTEMS = "/proc/filesystems"


class Tracefs:
    """One tracefs directory: the top level or an instance. Names are relative to path;
    errors are OSError with the full path as filename."""

    def __init__(self, path):
        self.path = path

    def __repr__(self):
        return "Tracefs(%r)" % self.path

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self, name):
        return os.path.exists(self.file(name))

    def read(self, name):
        with open(self.file(name)) as f:
            return f.read()

    def write(self, name, value, append=False):
        """Write value in one write(2), as `echo value > file` (or >> with append)."""
        path = self.file(name)
        fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
        try:
            os.write(fd, value.encode() if isinstance(value, str) else value)
        except OSError as e:
            raise OSError(e.errno, e.strerror, path) from None
        finally:
            os.close(fd)

    def instance(self, name):
        return Tracefs(os.path.join(self.path, "instances", name))

    def instances(self):
        """Names of the existing instances ([] when the kernel has no instances/)."""
        try:
            return sorted(os.listdir(self.file("instances")))
        except FileNotFoundError:
            return []


def _has_files(path):
    try:
        return bool(os.listdir(path))
    except OSError:
        return False


def locate(override=None, table=None):
    """Where tracefs is: {"path", "mounted", "found_by"}.

    Order: the override path; a tracefs entry of the mount table (/sys/kernel/tracing
    preferred); /sys/kernel/tracing or /sys/kernel/debug/tracing when they have files;
    else /sys/kernel/tracing, not mounted.
    """
    table = mounts.read_mounts() if table is None else table
    points = mounts.mounts_of_type("tracefs", table)
    if override:
        path = os.path.realpath(override)
        return {"path": path, "mounted": path in points or _has_files(path),
                "found_by": "argument"}
    if points:
        path = TRACING if TRACING in points else points[0]
        return {"path": path, "mounted": True, "found_by": "mountinfo"}
    for path in (TRACING, DEBUG_TRACING):
        if _has_files(path):
            return {"path": path, "mounted": True, "found_by": "directory"}
    return {"path": TRACING, "mounted": False, "found_by": None}


def supported():
    """Whether the kernel knows the tracefs filesystem (CONFIG_TRACING)."""
    with open(FILESYSTEMS) as f:
        return any(line.split()[-1:] == ["tracefs"] for line in f)


def mount_tracefs(target=TRACING):
    """Mount tracefs at target unless a tracefs is mounted there already.
    Returns True if it mounted; raises OSError (EPERM when not root)."""
    if target in mounts.mounts_of_type("tracefs"):
        return False
    libc.mount("nodev", target, "tracefs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    return True


def umount_tracefs(target=TRACING):
    libc.umount2(target)


def tracers(tracefs):
    """The tracers this kernel offers (available_tracers)."""
    return tracefs.read("available_tracers").split()


def event_count(tracefs):
    """How many trace events there are (lines of available_events)."""
    with open(tracefs.file("available_events"), "rb") as f:
        return sum(1 for line in f if line.strip())
