"""Tracing configuration: the record/start/stream options and applying them to a Session."""

import argparse
import fnmatch
import os

from target.cli import AgentError
from target.ftrace import session as sessions

FUNCTION_TRACERS = ("function", "function_graph")


class EventAction(argparse.Action):
    """-e SPEC appends [spec, filter, triggers]; -f and -R attach to the last -e."""

    def __call__(self, parser, namespace, value, option_string=None):
        events = getattr(namespace, "events", None) or []
        if self.dest == "events":
            events.append([value, None, []])
        elif not events:
            parser.error("%s needs an -e EVENT before it" % option_string)
        elif self.dest == "filter":
            events[-1][1] = value
        else:
            events[-1][2].append(value)
        namespace.events = events


def add_arguments(parser):
    """The configuration options shared by record, start and stream."""
    parser.set_defaults(events=[])
    parser.add_argument("-p", dest="tracer", metavar="TRACER",
                        help="tracer (function, function_graph, nop, ...); default nop")
    parser.add_argument("-e", dest="events", action=EventAction, metavar="EVENT",
                        help="events: SYSTEM, SYSTEM:EVENT, EVENT or globs ('irq:*')")
    parser.add_argument("-f", dest="filter", action=EventAction, metavar="FILTER",
                        help="filter for the last -e ('prev_pid != 0')")
    parser.add_argument("-R", dest="trigger", action=EventAction, metavar="TRIGGER",
                        help="trigger for the last -e (stacktrace, snapshot, traceoff, ...)")
    parser.add_argument("-l", dest="functions", action="append", default=[], metavar="GLOB",
                        help="trace only these functions (set_ftrace_filter)")
    parser.add_argument("-n", dest="notrace", action="append", default=[], metavar="GLOB",
                        help="do not trace these functions (set_ftrace_notrace)")
    parser.add_argument("-g", dest="graph", action="append", default=[], metavar="GLOB",
                        help="function_graph roots (set_graph_function)")
    parser.add_argument("-P", dest="pids", action="append", type=int, default=[],
                        metavar="PID", help="trace only this pid and its new children")
    parser.add_argument("-b", dest="buffer_kb", type=int, metavar="KB",
                        help="per-CPU buffer size in KB")
    parser.add_argument("-C", dest="clock", default="mono",
                        help="trace clock (default mono: CLOCK_MONOTONIC, as strace and dmesg)")
    parser.add_argument("-O", dest="options", action="append", default=[], metavar="OPTION",
                        help="tracer option NAME or noNAME (options/ of the instance)")
    parser.add_argument("--max-graph-depth", type=int, metavar="N",
                        help="function_graph maximum depth")
    parser.add_argument("--thresh", type=int, metavar="USECS",
                        help="tracing_thresh: function_graph shows only slower calls")


def available_events(tracefs):
    with open(tracefs.file("available_events")) as f:
        return [tuple(line.strip().split(":", 1)) for line in f if ":" in line]


def resolve(spec, known):
    """The (system, event) pairs a spec names: SYSTEM, SYSTEM:EVENT or EVENT, with globs."""
    if ":" in spec:
        sys_glob, ev_glob = spec.split(":", 1)
        found = [(s, e) for s, e in known
                 if fnmatch.fnmatchcase(s, sys_glob) and fnmatch.fnmatchcase(e, ev_glob or "*")]
    else:
        found = [(s, e) for s, e in known if fnmatch.fnmatchcase(s, spec)]
        found = found or [(s, e) for s, e in known if fnmatch.fnmatchcase(e, spec)]
    if not found:
        raise AgentError("unknown event %r: not in available_events (see `ftrace list -e`)"
                         % spec)
    return sorted(set(found))


def tracer_name(args):
    return args.tracer or ("function_graph" if args.graph else
                           "function" if args.functions else "nop")


def apply(sess, args, pids=()):
    """Configure the session's instance from args (tracing stays off). Returns the list of
    enabled events as 'system:event'."""
    sess.write("tracing_on", "0", undo=("0", False))
    if args.buffer_kb or sess.buffer_kb:
        sess.write("buffer_size_kb", str(args.buffer_kb or sess.buffer_kb))
    set_clock(sess, args.clock)
    tracer = tracer_name(args)
    set_tracer(sess, tracer)
    set_pids(sess, list(args.pids) + list(pids), tracer)
    if not args.pids and not pids and sess.instance.exists("set_event_notrace_pid"):
        # like trace-cmd, leave the recorder's own syscalls and wake-ups out (Linux 5.8+)
        sess.write("set_event_notrace_pid", str(os.getpid()), top_ok=False)
    for name, globs in (("set_ftrace_filter", args.functions),
                        ("set_ftrace_notrace", args.notrace),
                        ("set_graph_function", args.graph)):
        if globs:
            sess.write(name, " ".join(globs))
    if args.max_graph_depth is not None:
        sess.write("max_graph_depth", str(args.max_graph_depth))
    if args.thresh is not None:
        sess.write("tracing_thresh", str(args.thresh))
    if not sess.top_level and sess.instance.exists("options/copy_trace_marker"):
        # what scripts write to the top level's trace_marker (as for trace-cmd) lands here too
        sess.write("options/copy_trace_marker", "1", top_ok=False)
    if sess.instance.exists("options/hash-ptr"):
        sess.write("options/hash-ptr", "0")   # raw pointers: the decoder cannot redo the hash
    for option in args.options:
        set_option(sess, option)
    return enable_events(sess, args.events)


def set_clock(sess, clock):
    clocks = sess.instance.read("trace_clock").replace("[", "").replace("]", "").split()
    if clock not in clocks:
        raise AgentError("unknown trace clock %r; this kernel has: %s" % (clock, " ".join(clocks)))
    sess.write("trace_clock", clock)


def set_tracer(sess, tracer):
    listed = sess.instance.read("available_tracers").split()
    if tracer not in listed:
        config = sessions.TRACER_CONFIG.get(tracer)
        raise AgentError("tracer %r is not built into this kernel%s; available: %s" % (
            tracer, " (%s)" % config if config else "", " ".join(listed)))
    if tracer != "nop":
        sess.write("current_tracer", tracer, config=sessions.TRACER_CONFIG.get(tracer))


def set_option(sess, option):
    name, value = (option[2:], "0") if option.startswith("no") else (option, "1")
    if not sess.instance.exists("options/" + name) and sess.instance.exists("options/" + option):
        name, value = option, "1"
    if not sess.instance.exists("options/" + name):
        raise AgentError("unknown tracer option %r (see `ftrace list -o`)" % option)
    sess.write("options/" + name, value, top_ok=False)


def set_pids(sess, pids, tracer):
    """Event pid filter (and the function tracers' one) with follow-fork."""
    if not pids:
        return
    text = " ".join(str(p) for p in pids)
    sess.write("set_event_pid", text, top_ok=False)
    if sess.instance.exists("options/event-fork"):
        sess.write("options/event-fork", "1", top_ok=False)
    else:
        sess.notes.append("options/event-fork is missing (kernel before 4.7): "
                          "children of the traced pids are not followed")
    if tracer in FUNCTION_TRACERS:
        sess.write("set_ftrace_pid", text)
        if sess.instance.exists("options/function-fork"):
            sess.write("options/function-fork", "1", top_ok=False)


def add_pid(sess, pid, tracer):
    """Add one more pid (a spawned command's) to the pid filters."""
    sess.write("set_event_pid", str(pid), append=True, undo=("", False), top_ok=False)
    if tracer in FUNCTION_TRACERS:
        sess.write("set_ftrace_pid", str(pid), append=True, undo=("", False))


def enable_events(sess, specs):
    if not specs:
        return []
    known = available_events(sess.top)
    enabled = []
    for spec, filt, triggers in specs:
        for system, event in resolve(spec, known):
            base = "events/%s/%s/" % (system, event)
            if filt:
                sess.write(base + "filter", filt, undo=("0", False), top_ok=False)
            for trigger in triggers:
                sess.write(base + "trigger", trigger, append=True,
                           undo=("!" + trigger.split(" if ")[0], True), top_ok=False,
                           config=trigger_config(trigger))
            sess.write(base + "enable", "1", undo=("0", False), top_ok=False)
            name = "%s:%s" % (system, event)
            if name not in enabled:
                enabled.append(name)
    return enabled


def trigger_config(trigger):
    word = trigger.split(":")[0].split()[0]
    return {"snapshot": "CONFIG_TRACER_SNAPSHOT", "hist": "CONFIG_HIST_TRIGGERS",
            "enable_hist": "CONFIG_HIST_TRIGGERS",
            "disable_hist": "CONFIG_HIST_TRIGGERS"}.get(word)
