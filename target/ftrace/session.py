"""A tracing session: a private tracefs instance, a journal of every write, and the undo.

Ownership. A session's instance is named `boardtrace-<pid>-<starttime>`: the owner's pid and
its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot). The owner is alive
when /proc/<pid>/stat exists and shows the same start time, so a recycled pid is not mistaken
for the owner. Any later session removes the instances of dead owners when it starts.

Flight-recorder instances (`agent ftrace start`) outlive the process that made them: they are
named `boardtrace-keep-<name>`, are never removed as stale, and belong to whoever runs
`agent ftrace stop/extract/reset` with the same name.

Every write goes through Session.write, which records how to undo it. Writes inside the
instance are undone by removing the instance (or, if that fails, one by one); writes that
had to go to the top level because this kernel has no per-instance file are undone one by
one at exit, newest first. The top-level ones are also kept in a journal file (JOURNALS),
so that when the owner is SIGKILLed the next session undoes them along with its instance.

Top-level sessions. A tracer the kernel offers only at the top level (function_graph before
Linux 6.6 or so) cannot run in an instance: such a session has no instance and works at the
top level, every write journaled and undone, and only when nobody else uses the top level.
"""

import contextlib
import errno
import json
import os
import re
import signal
import sys

from target.cli import AgentError
from target.ftrace import probe

PREFIX = "boardtrace-"
KEEP = PREFIX + "keep-"
OWNED = re.compile(r"^boardtrace-(\d+)-(\d+)$")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# tracefs file -> the Kconfig option without which it does not exist
CONFIG = {
    "set_ftrace_filter": "CONFIG_DYNAMIC_FTRACE",
    "set_ftrace_notrace": "CONFIG_DYNAMIC_FTRACE",
    "set_graph_function": "CONFIG_FUNCTION_GRAPH_TRACER",
    "set_graph_notrace": "CONFIG_FUNCTION_GRAPH_TRACER",
    "max_graph_depth": "CONFIG_FUNCTION_GRAPH_TRACER",
    "set_ftrace_pid": "CONFIG_FUNCTION_TRACER",
    "tracing_thresh": "CONFIG_TRACER_MAX_TRACE or CONFIG_FUNCTION_GRAPH_TRACER",
    "snapshot": "CONFIG_TRACER_SNAPSHOT",
    "kprobe_events": "CONFIG_KPROBE_EVENTS",
    "uprobe_events": "CONFIG_UPROBE_EVENTS",
    "dynamic_events": "CONFIG_DYNAMIC_EVENTS",
    "set_event_pid": "CONFIG_EVENT_TRACING (kernel 4.4 or later)",
    "error_log": "kernel 5.1 or later",
}
TRACER_CONFIG = {
    "function": "CONFIG_FUNCTION_TRACER",
    "function_graph": "CONFIG_FUNCTION_GRAPH_TRACER",
    "irqsoff": "CONFIG_IRQSOFF_TRACER",
    "preemptoff": "CONFIG_PREEMPT_TRACER",
    "preemptirqsoff": "CONFIG_IRQSOFF_TRACER and CONFIG_PREEMPT_TRACER",
    "wakeup": "CONFIG_SCHED_TRACER",
    "wakeup_rt": "CONFIG_SCHED_TRACER",
    "wakeup_dl": "CONFIG_SCHED_TRACER",
    "hwlat": "CONFIG_HWLAT_TRACER",
    "osnoise": "CONFIG_OSNOISE_TRACER",
    "timerlat": "CONFIG_TIMERLAT_TRACER",
    "mmiotrace": "CONFIG_MMIOTRACE",
    "blk": "CONFIG_BLK_DEV_IO_TRACE",
}


def start_time(pid):
    """The start time of a process (clock ticks since boot), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def own_name():
    pid = os.getpid()
    return "%s%d-%d" % (PREFIX, pid, start_time(pid))


def owner_alive(name):
    """Whether the process that owns this instance name still runs (True for names that
    are not ours to judge: flight-recorder and foreign instances)."""
    match = OWNED.match(name)
    if not match:
        return True
    pid, started = int(match.group(1)), int(match.group(2))
    return start_time(pid) == started


JOURNALS = ("/run/boardtrace-ftrace", "/tmp/boardtrace-ftrace")


def journal_path(name):
    """Where the top-level undo journal of instance name lives (/run, else /tmp)."""
    for where in JOURNALS:
        try:
            os.makedirs(where, mode=0o700, exist_ok=True)
            return os.path.join(where, name + ".undo")
        except OSError:
            continue
    return None


def replay_journal(tracefs, name):
    """Undo the top-level writes a dead session of that name left in its journal."""
    path = journal_path(name)
    if path is None or not os.path.exists(path):
        return
    with open(path) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    for entry in reversed(entries):
        try:
            tracefs.write(entry["file"], entry["value"], append=entry["append"])
        except OSError:
            pass
    os.unlink(path)


def journaled():
    """Names of the sessions that have a top-level journal."""
    names = set()
    for where in JOURNALS:
        try:
            names.update(n[:-len(".undo")] for n in os.listdir(where) if n.endswith(".undo"))
        except OSError:
            pass
    return sorted(names)


def remove_stale(tracefs):
    """Remove the instances of dead owners (sessions and probes) and undo the top-level
    writes they journaled (top-level sessions have only those). Returns their names."""
    removed = probe.remove_stale(tracefs)
    for name in sorted(set(tracefs.instances()) | set(journaled())):
        if OWNED.match(name) and not owner_alive(name):
            try:
                if os.path.isdir(tracefs.instance(name).path):
                    remove_instance(tracefs, name)
                replay_journal(tracefs, name)
                removed.append(name)
            except (OSError, ValueError):
                pass
    return removed


def top_level_user(tracefs):
    """Why the top level is in use by someone (a tracer, enabled events), or None."""
    tracer = tracefs.read("current_tracer").strip()
    if tracer != "nop":
        return "its current_tracer is %s" % tracer
    events = tracefs.read("set_event").split()
    if events:
        return "events are enabled there (%s%s)" % (
            " ".join(events[:3]), " ..." if len(events) > 3 else "")
    return None


def keep_at_top(name):
    """Whether flight recorder instance name runs at the top level (a journal, no instance)."""
    return name in journaled()


def remove_instance(tracefs, name):
    """Stop an instance's tracing and remove it (the kernel frees its buffers and events)."""
    inst = tracefs.instance(name)
    try:
        inst.write("tracing_on", "0")
    except OSError:
        pass
    os.rmdir(inst.path)


def ours(tracefs):
    """Names of every instance made by this tool (sessions, flight recorders, probes)."""
    return [n for n in tracefs.instances() if n.startswith(PREFIX)]


def explain(err, path, value, logs=(), config=None):
    """One line telling why writing value to path failed."""
    log = None
    if err.errno == errno.EINVAL:
        log = next(filter(None, (probe.last_error(t) for t in logs)), None)
    name = errno.errorcode.get(err.errno, str(err.errno))
    if config is None:
        config = CONFIG.get(os.path.basename(path))
    return "cannot write %r to %s: %s (%s)" % (
        value.strip(), path, probe.classify(err.errno, config, log), name)


def normalize(name, text):
    """The value to write back to restore a file from what reading it gave."""
    base = os.path.basename(name)
    if base == "trace_clock":
        return re.search(r"\[(\S+)\]", text).group(1)
    if base == "buffer_size_kb":
        # "7 (expanded: 1408)": the boot-time placeholder; tracing expands it to 1408
        expanded = re.search(r"expanded: (\d+)", text)
        return expanded.group(1) if expanded else text.split()[0]
    if base == "filter" and text.strip() == "none":
        return "0"
    lines = [line for line in text.splitlines()
             if line.strip() and not line.startswith("#") and line.strip() != "no pid"]
    return " ".join(lines) if lines else ""


class Session:
    """A private instance (or the top level, see above) plus the journal that undoes
    everything written for it. tracer: the one the session will set, to choose where."""

    def __init__(self, tracefs, name=None, tracer="nop"):
        self.top = tracefs
        self.name = name or own_name()
        self.tracer = tracer
        self.instance = tracefs.instance(self.name)
        self.buffer_kb = None  # a buffer size the session needs unless -b gives one
        self.journal = []  # (Tracefs, file, undo value, append)
        self.notes = []
        self.stopping = None  # the signal that asked to stop
        self.defer = False
        self.old_handlers = {}
        self.created = False

    def create(self):
        """Remove stale instances, then make ours, or go to the top level when the tracer
        exists only there."""
        self.stale = remove_stale(self.top)
        if not os.path.isdir(os.path.join(self.top.path, "instances")):
            raise AgentError("no tracefs instances/ at %s (kernel older than 3.10?): "
                             "private sessions are not possible" % self.top.path)
        try:
            with self.signals_held():
                os.mkdir(self.instance.path)
                self.created = True
        except FileExistsError:
            raise AgentError("instance %s exists already" % self.name) from None
        except OSError as e:
            raise AgentError("cannot create instance %s: %s" % (
                self.instance.path, probe.classify(e.errno))) from None
        if self.tracer not in self.instance.read("available_tracers").split() and \
                self.tracer in self.top.read("available_tracers").split():
            self.move_to_top()
        return self

    def move_to_top(self):
        fresh_kb = int(normalize("buffer_size_kb", self.instance.read("buffer_size_kb")))
        remove_instance(self.top, self.name)
        self.created = False
        busy = top_level_user(self.top)
        if busy:
            raise AgentError("this kernel offers the %s tracer only at the top level of "
                             "tracefs, and the top level is in use: %s (`trace-cmd reset` "
                             "frees it)" % (self.tracer, busy))
        self.instance, self.created = self.top, True
        self.keep_journal(None, None)  # marks the top level as ours even before a write
        with self.signals_held():
            self.top.write("trace", "")    # what the buffer held is not ours to record
        self.notes.append("the %s tracer exists only at the top level of this kernel's "
                          "tracefs: recording there (its buffer was cleared; every setting is "
                          "restored when the session ends)" % self.tracer)
        top_kb = int(normalize("buffer_size_kb", self.top.read("buffer_size_kb")))
        if top_kb < fresh_kb:
            # e.g. 7 KB: the boot-time placeholder stays once any instance was made
            self.buffer_kb = fresh_kb
            self.notes.append("the top-level buffer has %d KB per CPU: %d KB (an instance's) "
                              "while we record" % (top_kb, fresh_kb))

    @property
    def top_level(self):
        return self.instance is self.top

    # -- writing -----------------------------------------------------------------------

    def where(self, name, top_ok=True):
        """The directory that has this file: the instance, else the top level (noted)."""
        if self.instance.exists(name) or not top_ok or not self.top.exists(name):
            return self.instance
        self.notes.append("%s is not per instance on this kernel: set at the top level "
                          "and restored at exit" % name)
        return self.top

    def write(self, name, value, append=False, undo=None, top_ok=True, config=None):
        """Write value to name, recording how to undo it. undo: (value, append) to write
        back; by default, and at the top level unless it appends, the file's current value.
        Failures raise AgentError."""
        target = self.where(name, top_ok)
        if not target.exists(name):
            e = OSError(errno.ENOENT, "no such file")
            raise AgentError(explain(e, target.file(name), value, config=config))
        with self.signals_held():
            try:
                if undo is None or target is self.top and not undo[1]:
                    undo = (normalize(name, target.read(name)), False)
                target.write(name, value, append=append)
            except OSError as e:
                raise AgentError(explain(e, target.file(name), value,
                                         (self.instance, self.top), config)) from None
            self.journal.append((target, name, undo[0], undo[1]))
            if target is self.top:
                self.keep_journal(name, undo)

    def keep_journal(self, name, undo):
        """A top-level write, on disk too: a SIGKILLed session cannot undo it itself.
        name None: only make sure the journal exists."""
        path = journal_path(self.name)
        if path is not None:
            with open(path, "a") as f:
                if name is not None:
                    f.write(json.dumps({"file": name, "value": undo[0],
                                        "append": undo[1]}) + "\n")

    def undo(self, instance_too):
        """Undo the journal, newest first; returns the failures as lines."""
        failures = []
        while self.journal:
            target, name, value, append = self.journal.pop()
            if target is self.instance and not instance_too:
                continue
            try:
                target.write(name, value, append=append)
            except OSError as e:
                failures.append("restore %s: %s" % (target.file(name), os.strerror(e.errno)))
        return failures

    def close(self, remove=True):
        """Undo everything; remove the instance (unless remove is False). Returns failures."""
        self.defer = True
        failures = []
        removed = False
        if self.created and remove and not self.top_level:
            try:
                remove_instance(self.top, self.name)
                removed = True
            except OSError as e:
                failures.append("remove %s: %s" % (self.instance.path, os.strerror(e.errno)))
        if remove:
            failures += self.undo(instance_too=not removed)
            path = journal_path(self.name)
            if path is not None and os.path.exists(path):
                os.unlink(path)
        else:
            self.journal = []  # it outlives us: its on-disk journal is for `ftrace reset`
        self.restore_signals()
        return failures

    # -- signals -----------------------------------------------------------------------

    def _on_signal(self, signum, frame):
        self.stopping = signum
        if not self.defer:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def signals_held(self):
        """A stop signal waits until the block ends (a tracefs file open, a write not yet
        journaled, an instance not yet noted), then is raised, unless stops wait anyway."""
        held, self.defer = self.defer, True
        try:
            yield
        finally:
            self.defer = held
        if self.stopping and not held:
            raise Interrupted(self.stopping)

    def catch_signals(self):
        """SIGINT/SIGTERM/SIGHUP: set self.stopping; raise Interrupted unless self.defer."""
        for sig in SIGNALS:
            self.old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self):
        for sig, handler in self.old_handlers.items():
            signal.signal(sig, handler)
        self.old_handlers = {}

    def __enter__(self):
        self.catch_signals()
        try:
            return self.create()
        except BaseException:   # a stop signal or an error after mkdir: __exit__ is not called
            self.__exit__()
            raise

    def __exit__(self, *exc):
        failures = self.close()
        for line in failures:
            print("ftrace: warning: %s" % line, file=sys.stderr)


class Interrupted(BaseException):
    """A stop signal arrived outside a place that waits for it."""

    def __init__(self, signum):
        BaseException.__init__(self, signum)
        self.signum = signum
