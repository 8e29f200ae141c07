"""The mount table, from /proc/self/mountinfo (proc(5))."""

import os
import re

MOUNTINFO = "/proc/self/mountinfo"

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field):
    """Undo the kernel's octal escapes (\\040 for a space, \\011, \\012, \\134)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_line(line):
    """One mountinfo line as a dict; raises ValueError when it is malformed."""
    fields = line.split()
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise ValueError("mountinfo line without ' - ' separator: %r" % line)
    if len(fields) < sep + 3:
        raise ValueError("mountinfo line too short: %r" % line)
    options = fields[5].split(",")
    return {
        "id": int(fields[0]),
        "parent": int(fields[1]),
        "device": fields[2],
        "root": unescape(fields[3]),
        "mount_point": unescape(fields[4]),
        "options": options,
        "optional": fields[6:sep],
        "fstype": fields[sep + 1],
        "source": unescape(fields[sep + 2]),
        "super_options": fields[sep + 3].split(",") if len(fields) > sep + 3 else [],
    }


def read_mounts(path=MOUNTINFO):
    """Every mount of this process's namespace, in table order."""
    with open(path) as f:
        return [parse_line(line) for line in f if line.strip()]


def _under(path, mount_point):
    if mount_point == "/":
        return True
    return path == mount_point or path.startswith(mount_point + "/")


def find_mount(path, mounts=None):
    """The mount holding path: the longest matching mount point; at equal length the
    later entry wins, since a later mount on the same point hides the earlier one."""
    path = os.path.realpath(path)
    mounts = read_mounts() if mounts is None else mounts
    best = None
    for m in mounts:
        if _under(path, m["mount_point"]):
            if best is None or len(m["mount_point"]) >= len(best["mount_point"]):
                best = m
    if best is None:
        raise ValueError("%s: no mount in the mount table holds it" % path)
    return best


def mounts_of_type(fstype, mounts=None):
    """Mount points of every mount of that filesystem type, in table order."""
    mounts = read_mounts() if mounts is None else mounts
    return [m["mount_point"] for m in mounts if m["fstype"] == fstype]


def describe_workdir(path):
    """Facts for `info`: the mount a directory lives on, noexec and writability."""
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise ValueError("%s: not a directory" % path)
    m = find_mount(real)
    fs = os.statvfs(real)
    return {
        "path": real,
        "mount_point": m["mount_point"],
        "fstype": m["fstype"],
        "source": m["source"],
        "options": m["options"],
        "noexec": "noexec" in m["options"],
        "read_only": "ro" in m["options"],
        "writable": os.access(real, os.W_OK),
        "free_bytes": fs.f_bavail * fs.f_frsize,
    }
