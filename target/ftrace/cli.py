"""`agent ftrace <verb>`: list, probe, record, start, stop, extract, stream, show, reset, mark,
report.

Ownership: record and stream work in an instance named after their own process
(boardtrace-<pid>-<starttime>) and remove it when they end, however they end; one that was
SIGKILLed is removed by the next run. start makes a flight recorder boardtrace-keep-<NAME>
(--name, default "default") that outlives it; stop, extract and show --name use it by that name, and
reset removes it (and any instance of a dead owner).
"""

import importlib
import json
import os
import select
import sys
import time

from target.cli import AgentError, Parser
from target.ftrace import config, probe, recorder, session as sessions, tracefs

VERBS = ("list", "probe", "record", "start", "stop", "extract", "stream", "show", "reset",
         "mark", "report")


def parser():
    p = Parser(prog="ftrace", description="trace-cmd-class front end for the kernel's tracefs")
    p.add_argument("--tracefs", metavar="DIR", help="tracefs directory (default: found/mounted)")
    sub = p.add_subparsers(dest="verb", metavar="{%s}" % ",".join(VERBS))
    sub.required = True
    lst = sub.add_parser("list", help="tracers, events, options, clocks")
    lst.add_argument("-t", action="store_true", help="tracers")
    lst.add_argument("-e", nargs="?", const="*", metavar="GLOB", help="events (glob)")
    lst.add_argument("-o", action="store_true", help="options")
    lst.add_argument("-C", action="store_true", help="clocks")
    pr = sub.add_parser("probe", help="which features work here, and why not")
    pr.add_argument("--json", action="store_true")
    rec = sub.add_parser("record", help="record into a capture directory [-- CMD ...]")
    rec.add_argument("-o", dest="out", metavar="DIR", help="capture directory (./ftrace-<id>)")
    rec.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    rec.add_argument("--ready-fd", type=int, metavar="FD",
                     help="once tracing is on, write 'ready INSTANCE' to file descriptor FD "
                          "and close it (for capture sessions)")
    config.add_arguments(rec)
    stream = sub.add_parser("stream", help="live text to stdout [-- CMD ...]")
    stream.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    config.add_arguments(stream)
    start = sub.add_parser("start", help="flight recorder: configure and leave tracing on")
    config.add_arguments(start)
    for verb in ("stop", "extract", "show", "reset"):
        v = sub.add_parser(verb)
        v.add_argument("--name", dest="name", default=None if verb in ("show", "reset") else
                       "default", metavar="NAME", help="flight recorder name")
        if verb == "extract":
            v.add_argument("-o", dest="out", required=True, metavar="DIR")
    start.add_argument("--name", dest="name", default="default", metavar="NAME")
    mark = sub.add_parser("mark", help="write an annotation (trace_marker) into the traces")
    mark.add_argument("--name", metavar="NAME", help="only into this flight recorder")
    mark.add_argument("text", nargs="+")
    rep = sub.add_parser("report", help="decode a capture directory", add_help=False)
    rep.add_argument("rest", nargs="*")
    return p


def main(argv):
    argv = list(argv)
    if argv[:1] == ["report"] or argv[2:3] == ["report"] and argv[:1] == ["--tracefs"]:
        rest = argv[argv.index("report") + 1:]
        return importlib.import_module("target.ftrace.report").main(rest)
    command = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1:]
    args = parser().parse_args(argv)
    args.command = command
    if command and args.verb not in ("record", "stream"):
        raise AgentError("only record and stream run a command")
    where, mounted = open_tracefs(args.tracefs)
    try:
        return VERB_MAIN[args.verb](where, args)
    except sessions.Interrupted as e:
        print("ftrace: stopped by signal %d; everything undone" % e.signum, file=sys.stderr)
        return 128 + e.signum
    finally:
        if mounted:
            try:
                tracefs.umount_tracefs(where.path)
            except OSError:
                pass


def open_tracefs(override):
    """(Tracefs, whether we mounted it). One clear line when there is no ftrace."""
    found = tracefs.locate(override)
    if override:
        if not (found["mounted"] and os.path.exists(os.path.join(found["path"], "trace"))):
            raise AgentError("no tracefs at %s (not mounted there, or a kernel built without "
                             "ftrace: CONFIG_FTRACE/CONFIG_TRACING)" % found["path"])
        return tracefs.Tracefs(found["path"]), False
    if found["mounted"]:
        return tracefs.Tracefs(found["path"]), False
    if not tracefs.supported():
        raise AgentError("this kernel has no tracefs (built without CONFIG_TRACING)")
    try:
        tracefs.mount_tracefs(found["path"])
    except OSError as e:
        raise AgentError("tracefs is not mounted and mounting it at %s failed: %s" % (
            found["path"], probe.classify(e.errno))) from None
    return tracefs.Tracefs(found["path"]), True


# -- list and probe ----------------------------------------------------------------------

def clocks(top):
    return top.read("trace_clock").replace("[", "").replace("]", "").split()


def do_list(top, args):
    every = not (args.t or args.e or args.o or args.C)
    if every or args.t:
        print("tracers: %s" % " ".join(tracefs.tracers(top)))
    if every or args.C:
        print("clocks: %s" % " ".join(clocks(top)))
    if every or args.o:
        print("options: %s" % " ".join(sorted(os.listdir(top.file("options")))))
    if every or args.e:
        glob = args.e or "*"
        print("events:")
        for system, event in config.resolve(glob, config.available_events(top)) \
                if glob != "*" else config.available_events(top):
            print("  %s:%s" % (system, event))


WORDS = {"ENOENT": "unavailable", "EPERM": "blocked", "EACCES": "blocked",
         "EINVAL": "unsupported", "EBUSY": "busy"}


def probe_line(r):
    if r["ok"]:
        return "%s: ok" % r["feature"]
    word = WORDS.get(r["errno"], "failed" if r["errno"] else "unavailable")
    return "%s: %s%s: %s" % (r["feature"], word, " (%s)" % r["errno"] if r["errno"] else "",
                             r["reason"])


def do_probe(top, args):
    results = probe.features(top)
    for r in results:
        print(json.dumps(r) if args.json else probe_line(r))


# -- record and stream -------------------------------------------------------------------

def spawn(command):
    """Fork a child that waits for go() before it execs the command: (pid, go)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        try:
            os.execvp(command[0], command)
        except OSError as e:
            print("ftrace: cannot run %s: %s" % (command[0], e.strerror), file=sys.stderr)
        os._exit(127)
    os.close(r)

    def go():
        os.write(w, b"x")
        os.close(w)
    return pid, go


class Stopper:
    """should_stop(): a stop signal, the duration, or the traced command's end."""

    def __init__(self, sess, duration, child):
        self.sess, self.child, self.status = sess, child, None
        self.deadline = time.monotonic() + duration if duration else None

    def __call__(self):
        if self.sess.stopping:
            return True
        if self.deadline and time.monotonic() >= self.deadline:
            return True
        if self.child:
            pid, status = os.waitpid(self.child, os.WNOHANG)
            if pid:
                self.status, self.child = status, None
                return True
        return False


def configure(sess, args):
    """Apply the options; spawn the command (filtered by pid). (events, child, go)."""
    child, go = None, None
    if args.command:
        child, go = spawn(args.command)
    try:
        events = config.apply(sess, args, [child] if child else [])
    except BaseException:
        if child:
            os.kill(child, 9)
            os.waitpid(child, 0)
        raise
    for note in sess.notes:
        print("ftrace: note: %s" % note, file=sys.stderr)
    return events, child, go


def default_out():
    return "ftrace-%s" % time.strftime("%Y%m%d-%H%M%S")


def do_record(top, args):
    out = args.out or default_out()
    if os.path.isdir(out) and os.listdir(out):
        raise AgentError("%s exists and is not empty" % out)
    with sessions.Session(top, tracer=config.tracer_name(args)) as sess:
        events, child, go = configure(sess, args)
        tracer = config.tracer_name(args)
        info = {"tracer": tracer, "events": events, "clock": args.clock,
                "needs_symbols": tracer in config.FUNCTION_TRACERS or any(
                    t.startswith("stacktrace") for _, _, ts in args.events for t in ts)}
        stop = Stopper(sess, args.duration, child)
        sess.defer = True
        meta = recorder.record(top, sess.instance, out, info, stop,
                               started=on_start(go, args.ready_fd, sess.instance.path))
    summary(out, meta, sess)
    if stop.status is not None and stop.status != 0:
        code = os.WEXITSTATUS(stop.status) if os.WIFEXITED(stop.status) \
            else -os.WTERMSIG(stop.status)
        print("ftrace: the command exited with status %d" % code, file=sys.stderr)
    return 0


def on_start(go, ready_fd, instance):
    """What to do once tracing is on: let the command run, tell whoever waits on ready_fd."""
    def started():
        if go:
            go()
        if ready_fd is not None:
            os.write(ready_fd, ("ready %s\n" % instance).encode())
            os.close(ready_fd)
    return started


def summary(out, meta, sess):
    pages = sum(meta["pages"].values())
    why = " (stopped by signal %d)" % sess.stopping if sess.stopping else ""
    print("ftrace: %d pages (%d KB) from %d CPUs in %s%s" % (
        pages, pages * meta["page_size"] // 1024, len(meta["cpus"]), out, why),
        file=sys.stderr)
    recorder.report_lost(meta)


def do_stream(top, args):
    with sessions.Session(top, tracer=config.tracer_name(args)) as sess:
        _, child, go = configure(sess, args)
        stop = Stopper(sess, args.duration, child)
        sess.defer = True
        fd = os.open(sess.instance.file("trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            sess.instance.write("tracing_on", "1")
            if go:
                go()
            while not stop():
                pump(fd, 0.25)
            sess.instance.write("tracing_on", "0")
            pump(fd, 0)
        finally:
            os.close(fd)
    return 0


def pump(fd, timeout):
    """Copy what trace_pipe has to stdout."""
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    except InterruptedError:
        return
    while ready:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        sys.stdout.buffer.write(data)
    sys.stdout.flush()


# -- flight recorder ---------------------------------------------------------------------

def keep_name(name):
    return sessions.KEEP + name


def existing(top, name):
    """The flight recorder's instance, or the top level for one that runs there."""
    inst = top.instance(keep_name(name))
    if os.path.isdir(inst.path):
        return inst
    if sessions.keep_at_top(keep_name(name)):
        return top
    raise AgentError("no flight recorder %r (start one with `ftrace start --name %s`)"
                     % (name, name))


def keep_names(top):
    """The flight recorders: those in instances and those at the top level."""
    return sorted(set(n for n in sessions.ours(top) + sessions.journaled()
                      if n.startswith(sessions.KEEP)))


def do_start(top, args):
    sess = sessions.Session(top, keep_name(args.name), tracer=config.tracer_name(args))
    sess.catch_signals()
    if keep_name(args.name) in keep_names(top):
        raise AgentError("flight recorder %r is running already (ftrace reset --name %s)"
                         % (args.name, args.name))
    ok = False
    try:
        sess.create()
        configure(sess, args)
        with sess.signals_held():
            sess.instance.write("tracing_on", "1")
        ok = True
    finally:
        sess.close(remove=not ok)
    print("ftrace: flight recorder %r running in %s" % (args.name, sess.instance.path),
          file=sys.stderr)
    return 0


def do_stop(top, args):
    existing(top, args.name).write("tracing_on", "0")
    return 0


def do_extract(top, args):
    inst = existing(top, args.name)
    if os.path.isdir(args.out) and os.listdir(args.out):
        raise AgentError("%s exists and is not empty" % args.out)
    set_event = [line.strip() for line in inst.read("set_event").splitlines() if line.strip()]
    tracer = inst.read("current_tracer").strip()
    clock = sessions.normalize("trace_clock", inst.read("trace_clock"))
    info = {"tracer": tracer, "events": set_event, "clock": clock,
            "needs_symbols": tracer in config.FUNCTION_TRACERS}
    meta = recorder.extract(top, inst, args.out, info)
    pages = sum(meta["pages"].values())
    print("ftrace: %d pages from %s in %s" % (pages, inst.path, args.out), file=sys.stderr)
    recorder.report_lost(meta)
    return 0


def do_show(top, args):
    target = existing(top, args.name) if args.name else top
    sys.stdout.write(target.read("trace"))
    return 0


def do_reset(top, args):
    if args.name:
        existing(top, args.name)
        names = [keep_name(args.name)]
    else:
        names = keep_names(top)
    removed = sessions.remove_stale(top)
    for name in names:
        try:
            if os.path.isdir(top.instance(name).path):
                sessions.remove_instance(top, name)
            sessions.replay_journal(top, name)
            removed.append(name)
        except OSError as e:
            raise AgentError("cannot remove %s: %s" % (name, probe.classify(e.errno)))
    live = [n for n in sessions.ours(top) if sessions.OWNED.match(n)]
    for name in removed:
        print("ftrace: removed %s" % name, file=sys.stderr)
    for name in live:
        print("ftrace: kept %s: its owner still runs" % name, file=sys.stderr)
    return 0


def do_mark(top, args):
    """The text into the top level's trace_marker and every live instance of ours that does
    not copy it from there (copy_trace_marker, Linux 6.17+); with --name, that recorder only."""
    text = " ".join(args.text) + "\n"
    if args.name:
        targets = [existing(top, args.name)]
    else:
        live = [n for n in sessions.ours(top) if n.startswith(sessions.KEEP)
                or sessions.OWNED.match(n) and sessions.owner_alive(n)]
        targets = [top] + [top.instance(n) for n in live if not copies_marker(top.instance(n))]
    for target in targets:
        try:
            target.write("trace_marker", text)
        except OSError as e:
            raise AgentError("cannot write %s: %s" % (target.file("trace_marker"),
                                                      probe.classify(e.errno))) from None
    return 0


def copies_marker(inst):
    try:
        return inst.read("options/copy_trace_marker").strip() == "1"
    except OSError:
        return False


VERB_MAIN = {"list": do_list, "probe": do_probe, "record": do_record, "stream": do_stream,
             "start": do_start, "stop": do_stop, "extract": do_extract, "show": do_show,
             "reset": do_reset, "mark": do_mark}

