"""A capture session: a spec in, a bundle out (sessions/<id>/), running detached.

The session process (the supervisor) runs the requested tools together on CLOCK_MONOTONIC:
ftrace as a forked `ftrace record` (started first, so the command's events are caught),
strace as a forked `strace` that starts the command (or the command alone), and the kernel
log read here, in the supervisor's own loop, from /dev/kmsg. Everything is written as it
comes. state.json says how far it got (rewritten every second); manifest.json, written last,
lists every file with its size and sha256. The layout is in docs/capture.md.
"""

import hashlib
import json
import os
import re
import select
import signal
import sys
import time

from target import VERSION
from target.cli import AgentError, run as run_tool

SESSIONS = "sessions"
FORMAT = {"format": "boardtrace-session", "version": 1}
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KMSG = "/dev/kmsg"
KMSG_READ = 8192 + 1
TICK = 1.0            # seconds between state.json updates
READY_TIMEOUT = 60.0  # for ftrace to configure its instance and turn tracing on
STOP_TIMEOUT = 30.0   # for a tool to finish after it was asked to stop
# how each part is asked to stop: strace kills the command it started (and detaches from -p
# processes); ftrace stops recording, writes its metadata and undoes its tracefs changes
STOP_SIGNALS = {"strace": signal.SIGTERM, "command": signal.SIGTERM, "ftrace": signal.SIGINT}
# options the session sets itself, for each tool
RESERVED = {"strace": ("-o", "--json", "--json-output"), "ftrace": ("-o", "--duration", "--ready-fd")}


# -- the spec ---------------------------------------------------------------------------

def check_spec(spec):
    """The spec with defaults, or AgentError naming what is wrong with it."""
    if not isinstance(spec, dict):
        raise AgentError("the spec must be a JSON object")
    unknown = sorted(set(spec) - {"id", "cmd", "strace", "ftrace", "dmesg", "duration"})
    if unknown:
        raise AgentError("unknown spec key %r" % unknown[0])
    out = {"id": spec.get("id") or new_id(), "cmd": spec.get("cmd"), "strace": spec.get("strace"),
           "ftrace": spec.get("ftrace"), "dmesg": bool(spec.get("dmesg")),
           "duration": spec.get("duration")}
    if not isinstance(out["id"], str) or not ID.match(out["id"]):
        raise AgentError("bad session id %r: letters, digits, '.', '_' and '-' only" % out["id"])
    for key in ("cmd", "strace", "ftrace"):
        value = out[key]
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            raise AgentError("spec %s: must be a list of strings" % key)
    if out["cmd"] == []:
        raise AgentError("spec cmd: empty command")
    for tool, reserved in RESERVED.items():
        for option in out[tool] or ():
            if option.split("=", 1)[0] in reserved or option == "--":
                raise AgentError("%s option %s: a capture sets it itself" % (tool, option))
    duration = out["duration"]
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or duration <= 0):
        raise AgentError("spec duration: must be a positive number of seconds")
    if out["strace"] is None and out["ftrace"] is None and not out["dmesg"]:
        raise AgentError("nothing to capture: ask for strace, ftrace or dmesg")
    if out["strace"] is not None and not out["cmd"] and not any(
            o == "-p" or o.startswith("-p") for o in out["strace"]):
        raise AgentError("strace needs a command or -p PID")
    if out["strace"] is not None:
        from target.strace.cli import parser
        parser().parse_args(out["strace"])   # bad usage: strace's one line and exit 2
    if out["ftrace"] is not None:
        from target.ftrace.cli import parser
        parser().parse_args(["record"] + out["ftrace"])
    if out["cmd"]:
        from target.strace.cli import find_program
        find_program(out["cmd"][0])
    return out


def new_id():
    return "%s-%s" % (time.strftime("%Y%m%d-%H%M%S"), os.urandom(2).hex())


# -- files --------------------------------------------------------------------------------

def write_json(path, obj):
    """Replace path atomically: a reader sees the old or the new content, never half."""
    part = path + ".part"
    with open(part, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(part, path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_files(directory):
    """Every regular file under directory but manifest.json, as sorted relative paths."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            path = os.path.relpath(os.path.join(root, name), directory)
            if path != "manifest.json" and not path.endswith(".part"):
                found.append(path)
    return sorted(found)


def write_manifest(directory, extra):
    files = [{"path": p, "size": os.path.getsize(os.path.join(directory, p)),
              "sha256": sha256(os.path.join(directory, p))} for p in bundle_files(directory)]
    write_json(os.path.join(directory, "manifest.json"), dict(FORMAT, files=files, **extra))


def clocks():
    """The three clocks read back to back, and their offsets to CLOCK_MONOTONIC."""
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return {"monotonic_ns": mono, "realtime_ns": real, "boottime_ns": boot,
            "realtime_minus_monotonic_ns": real - mono, "boottime_minus_monotonic_ns": boot - mono}


def process_start(pid):
    """(state letter, start time in ticks) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def alive(state):
    """Whether the supervisor of a session whose state says "running" still runs."""
    found = process_start(state.get("pid", 0) or 0)
    return found is not None and found[0] != "Z" and found[1] == state.get("pid_start")


# -- the parts ---------------------------------------------------------------------------

class Child(object):
    """A forked tool (or the command) with its output in a log file of the session."""

    def __init__(self, name, pid):
        self.name, self.pid, self.status = name, pid, None

    def poll(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status

    def signal(self, signum):
        if self.status is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                deadline += timeout
            time.sleep(0.02)
        return self.status

    def exit_code(self):
        s = self.status
        return os.WEXITSTATUS(s) if os.WIFEXITED(s) else -os.WTERMSIG(s)


def fork_child(name, log, keep=(), run=None, argv=None):
    """Fork; in the child, stdin from /dev/null, stdout and stderr to log, default signal
    handling, no inherited descriptors but keep; then run() (a tool) or exec argv."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return Child(name, pid)
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        # if the supervisor is killed, the part is told to stop as if by the supervisor
        from target import libc
        libc.prctl(libc.PR_SET_PDEATHSIG, STOP_SIGNALS[name])
        if os.getppid() != parent:
            os._exit(1)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
            if fd > 2 and fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if argv is not None:
            os.execvp(argv[0], argv)
        code = run()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code & 0xFF)
    except BaseException as e:
        try:
            os.write(2, ("%s: %s\n" % (name, e)).encode())
        finally:
            os._exit(127)


def tool_runner(tool, argv):
    module = {"strace": "target.strace.cli", "ftrace": "target.ftrace.cli"}[tool]

    def run():
        import importlib
        return run_tool(tool, lambda a: importlib.import_module(module).main(a), argv)
    return run


def last_line(path):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


class KernelLog(object):
    """/dev/kmsg records appended to dmesg.kmsg as they come, each followed by a NUL (the
    file format of `dmesg -K`). Lost records are counted from the gaps in sequence numbers."""

    def __init__(self, path):
        try:
            self.fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_DATA)
        except OSError as e:
            raise AgentError("dmesg: cannot read %s: %s" % (KMSG, e.strerror))
        self.out = open(path, "ab")
        self.records = self.lost = 0
        self.next_seq = None

    def read(self):
        """Copy every record there is now; returns them."""
        records = []
        while True:
            try:
                data = os.read(self.fd, KMSG_READ)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue    # overwritten under us; the next record's seq tells how many
            if not data:
                break
            self.out.write(data + b"\0")
            self.count(data)
            records.append(data)
        self.out.flush()
        return records

    def clock_offset(self, text):
        """printk time minus CLOCK_MONOTONIC in ns, or None: the kernel stamps a record we
        write (`text`, also a mark in the board's log) with its own clock, which NTP does not
        slew, so the two drift apart (hundreds of ppm) and dmesg times need this correction."""
        line = ("<14>boardtrace: %s\n" % text).encode()
        try:
            fd = os.open(KMSG, os.O_WRONLY | os.O_CLOEXEC)
            try:
                before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                os.write(fd, line)
                after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            finally:
                os.close(fd)
        except OSError:
            return None
        for data in self.read():
            prefix, _, message = data.partition(b";")
            if message.startswith(line[4:-1]):
                return int(prefix.split(b",")[2]) * 1000 - (before + after) // 2
        return None

    def count(self, data):
        self.records += 1
        try:
            seq = int(data.split(b",", 2)[1])
        except (IndexError, ValueError):
            return
        if self.next_seq is not None and seq > self.next_seq:
            self.lost += seq - self.next_seq
        self.next_seq = seq + 1

    def close(self):
        self.read()
        self.out.close()
        os.close(self.fd)


class LineCounter(object):
    """Counts the lines a growing file has, reading only what was added since last time."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.lines
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


# -- the supervisor ----------------------------------------------------------------------

class Supervisor(object):
    def __init__(self, spec, directory):
        self.spec, self.dir = spec, directory
        self.children = {}
        self.kmsg = None
        self.instance = None          # the ftrace instance, for live lost-event counts
        self.ended_printk = None      # printk minus monotonic when the parts stopped
        self.stop_reason = None
        self.started = clocks()
        self.state = {"id": spec["id"], "state": "running", "pid": os.getpid(),
                      "pid_start": process_start(os.getpid())[1],
                      "start_monotonic_ns": self.started["monotonic_ns"],
                      "start_realtime_ns": self.started["realtime_ns"]}
        self.strace_lines = LineCounter(self.path("strace.jsonl"))

    def path(self, name):
        return os.path.join(self.dir, name)

    # starting

    def start(self):
        """Start every part; AgentError (after stopping what started) if one cannot."""
        spec = self.spec
        if spec["dmesg"]:
            self.kmsg = KernelLog(self.path("dmesg.kmsg"))
            self.kmsg.read()
            self.started["printk_minus_monotonic_ns"] = self.kmsg.clock_offset(
                "session %s starts" % spec["id"])
        if spec["ftrace"] is not None:
            self.start_ftrace(spec["ftrace"])
        if spec["strace"] is not None:
            argv = ["-o", self.path("strace.txt"), "--json-output", self.path("strace.jsonl")]
            argv += spec["strace"] + (["--", *spec["cmd"]] if spec["cmd"] else [])
            self.children["strace"] = fork_child("strace", self.path("command.log"),
                                                 run=tool_runner("strace", argv))
            self.wait_for_strace()
        elif spec["cmd"]:
            self.children["command"] = fork_child("command", self.path("command.log"),
                                                  argv=spec["cmd"])

    def wait_for_strace(self):
        """Until strace has opened its output (it traces right after), or say why it ended."""
        child = self.children["strace"]
        deadline = time.monotonic() + READY_TIMEOUT
        while not os.path.exists(self.path("strace.jsonl")):
            if child.poll() is not None or time.monotonic() > deadline:
                raise AgentError(last_line(self.path("command.log")) or "strace did not start")
            time.sleep(0.01)

    def start_ftrace(self, options):
        r, w = os.pipe()
        argv = ["record", "-o", self.path("ftrace"), "--ready-fd", str(w)] + options
        child = fork_child("ftrace", self.path("ftrace.log"), keep=(w,),
                           run=tool_runner("ftrace", argv))
        self.children["ftrace"] = child
        os.close(w)
        ready = wait_line(r, READY_TIMEOUT)
        os.close(r)
        if not ready.startswith("ready "):
            child.signal(signal.SIGINT)
            child.wait(STOP_TIMEOUT)
            why = last_line(self.path("ftrace.log")) or "did not start within %d s" % READY_TIMEOUT
            raise AgentError(why if why.startswith("ftrace") else "ftrace: " + why)
        from target.ftrace.tracefs import Tracefs
        self.instance = Tracefs(ready[len("ready "):])
        self.state["ftrace_instance"] = self.instance.path

    # running

    def run(self, stop):
        """Until the command ends, the duration passes or stop is set; then stop the parts."""
        deadline = self.started["monotonic_ns"] / 1e9 + self.spec["duration"] \
            if self.spec["duration"] else None
        main = self.children.get("strace") or self.children.get("command")
        next_tick = 0
        fds = [stop.fd] + ([self.kmsg.fd] if self.kmsg else [])
        while self.stop_reason is None:
            now = time.monotonic()
            if now >= next_tick:
                self.write_state()
                next_tick = now + TICK
            wait = min(next_tick, deadline or next_tick) - now
            try:
                select.select(fds, [], [], max(0.0, min(wait, 0.2)))
            except InterruptedError:
                pass
            stop.drain()
            if self.kmsg:
                self.kmsg.read()
            self.stop_reason = self.why_stop(main, stop, deadline)
        self.finish_parts()

    def why_stop(self, main, stop, deadline):
        if stop.signum:
            return "stopped by signal %d" % stop.signum
        if main is not None and main.poll() is not None:
            if self.spec["cmd"]:
                return "the command exited with %d" % main.exit_code()
            return "strace ended (exit %d)" % main.exit_code()
        if deadline and time.monotonic() >= deadline:
            return "duration of %g s reached" % self.spec["duration"]
        ftrace = self.children.get("ftrace")
        if ftrace is not None and ftrace.poll() is not None:
            return "ftrace ended (exit %d)" % ftrace.exit_code()
        return None

    def finish_parts(self):
        """Ask every part to stop, in reverse order of starting, and wait for it."""
        for name in ("strace", "command", "ftrace"):
            child = self.children.get(name)
            if child is not None:
                child.signal(STOP_SIGNALS[name])
                child.wait(STOP_TIMEOUT)
        if self.kmsg:
            self.ended_printk = self.kmsg.clock_offset("session %s ends" % self.spec["id"])
            self.kmsg.close()

    def progress(self):
        """Elapsed time, bytes written, events and lost events so far."""
        events, lost = {}, {}
        if self.spec["strace"] is not None:
            events["strace"] = max(0, self.strace_lines.update() - 1)   # minus the header
        if self.kmsg:
            events["dmesg"] = self.kmsg.records
            lost["dmesg"] = self.kmsg.lost
        if self.spec["ftrace"] is not None:
            events["ftrace_pages"], lost["ftrace"] = self.ftrace_progress()
        size = sum(os.path.getsize(self.path(p)) for p in bundle_files(self.dir))
        elapsed = (time.clock_gettime_ns(time.CLOCK_MONOTONIC) - self.started["monotonic_ns"]) / 1e9
        return {"elapsed": round(elapsed, 3), "bytes": size, "events": events, "lost": lost}

    def ftrace_progress(self):
        from target.ftrace import recorder
        pages = lost = 0
        meta_path = self.path(os.path.join("ftrace", "meta.json"))
        if os.path.exists(meta_path):
            meta = read_json(meta_path)
            lost = sum(meta["lost"].values())
        elif self.instance is not None:
            try:
                lost = sum(recorder.lost(self.instance, c) for c in recorder.cpus(self.instance))
            except (OSError, ValueError):
                pass
        ftrace_dir = self.path("ftrace")
        if os.path.isdir(ftrace_dir):
            raw = [n for n in os.listdir(ftrace_dir) if n.endswith(".raw")]
            size = sum(os.path.getsize(os.path.join(ftrace_dir, n)) for n in raw)
            pages = size // (recorder.page_size(self.instance) if self.instance else 4096)
        return pages, lost

    def write_state(self, **final):
        self.state.update(self.progress(), **final)
        write_json(self.path("state.json"), self.state)

    # ending

    def finish(self, failure=None):
        """The final state.json, then manifest.json (last: its presence means complete)."""
        self.ended = dict(clocks(), printk_minus_monotonic_ns=self.ended_printk)
        exits = {name: c.exit_code() for name, c in self.children.items() if c.status is not None}
        self.write_state(state="failed" if failure else "done",
                         reason=failure or self.stop_reason, exits=exits,
                         end_monotonic_ns=time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        from target import info
        board = info.basic()
        write_manifest(self.dir, {"id": self.spec["id"], "spec": self.spec, "state": self.state,
                                  "agent": {"version": VERSION, "python": sys.version.split()[0]},
                                  "board": board, "clocks": {"start": self.started, "end": self.ended}})


def wait_line(fd, timeout):
    """The first line written to a pipe ("" if it closed or nothing came in time)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace") if b"\n" in data else ""


class StopFlag(object):
    """SIGINT, SIGTERM and SIGHUP set signum; fd becomes readable so select() wakes up."""

    def __init__(self):
        self.signum = 0
        self.fd, w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.handler)

    def handler(self, signum, frame):
        self.signum = self.signum or signum

    def drain(self):
        try:
            os.read(self.fd, 4096)
        except BlockingIOError:
            pass


def supervise(spec, directory, report):
    """Run one session to the end. report(line) is called once: "ok" when every part has
    started, else the error. Returns the exit status for the supervisor process."""
    stop = StopFlag()
    sup = Supervisor(spec, directory)
    try:
        sup.start()
    except (AgentError, OSError) as e:
        sup.stop_reason = "failed to start"
        sup.finish_parts()
        sup.finish(str(e))
        report(str(e))
        return 1
    sup.write_state()
    report("ok")
    sup.run(stop)
    sup.finish()
    return 0
