"""The running kernel's build configuration: /proc/config.gz or /boot/config-<release>."""

import gzip
import os
import zlib

# The options boardtrace's tools depend on, in the order `info` reports them.
RELEVANT = (
    "TRACING", "FTRACE", "EVENT_TRACING", "FTRACE_SYSCALLS", "FUNCTION_TRACER",
    "FUNCTION_GRAPH_TRACER", "DYNAMIC_FTRACE", "DYNAMIC_EVENTS", "KPROBES", "KPROBE_EVENTS",
    "UPROBE_EVENTS", "HIST_TRIGGERS", "SYNTH_EVENTS", "TRACER_SNAPSHOT", "STACK_TRACER",
    "HAVE_SYSCALL_TRACEPOINTS", "HAVE_ARCH_TRACEHOOK", "SECCOMP", "SECCOMP_FILTER",
    "PRINTK", "PRINTK_TIME", "PRINTK_CALLER", "LOG_BUF_SHIFT", "KALLSYMS", "KALLSYMS_ALL",
    "DEBUG_FS", "IKCONFIG_PROC", "SECURITY_LOCKDOWN_LSM", "SECURITY_YAMA",
)

NOT_SET = "not set"


def candidates(release=None):
    """Where the config may be, in the order they are tried."""
    release = release or os.uname().release
    return ["/proc/config.gz", "/boot/config-%s" % release]


def parse(lines):
    """{NAME: value} from .config lines (NAME without CONFIG_). Values: "y", "m", an int
    for decimal numbers, a string otherwise (quotes removed), "not set" for
    `# CONFIG_X is not set`."""
    options = {}
    for line in lines:
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[len("# CONFIG_"):-len(" is not set")]] = NOT_SET
        elif line.startswith("CONFIG_") and "=" in line:
            name, value = line[len("CONFIG_"):].split("=", 1)
            options[name] = _value(value)
    return options


def _value(text):
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def read(path):
    """All options of one config file (gzip when its name ends in .gz)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        return parse(f)


def load(paths=None):
    """(path, options) from the first readable config, or (None, reason)."""
    paths = candidates() if paths is None else paths
    tried = []
    for path in paths:
        try:
            return path, read(path)
        except OSError as e:
            tried.append("%s: %s" % (path, os.strerror(e.errno) if e.errno else e))
        except (EOFError, zlib.error) as e:
            tried.append("%s: corrupt: %s" % (path, e))
    return None, "no kernel config available (%s); enable CONFIG_IKCONFIG_PROC for " \
        "/proc/config.gz" % "; ".join(tried)


def describe(paths=None, names=RELEVANT):
    """Facts for `info`: the relevant options with their values, and where they came from.
    An option missing from the file is "not set", as Kconfig treats it."""
    source, options = load(paths)
    if source is None:
        return {"source": None, "reason": options, "options": None}
    return {"source": source, "options": {n: options.get(n, NOT_SET) for n in names}}
