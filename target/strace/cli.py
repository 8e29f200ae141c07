"""`agent strace [options] -- CMD...` / `agent strace -p PID`: strace's options, our engine."""

import os
import signal
import sys

from target.cli import AgentError, Parser
from target.strace.output import message


class TraceOptions(object):
    """What the engine and the output need from the command line."""

    def __init__(self, args):
        self.follow = args.follow > 0
        self.separately = args.follow > 1 and args.output is not None
        self.output = args.output
        self.text = not args.json         # the text lines, unless --json writes JSON instead
        self.timestamps = args.timestamps
        self.relative = args.relative
        self.syscall_times = args.syscall_times
        self.quiet = args.quiet
        self.summary_only = args.summary_only
        self.wall_clock = args.wall_clock
        self.max_events = args.max_events
        self.max_duration = args.max_duration
        # status= filters decide at the exit, so lines are printed whole then
        self.delay_lines = bool(args.successful_only or args.failed_only or
                                any(e.split("=", 1)[0] == "status" for e in args.expressions))


def parser():
    p = Parser(prog="strace", description="Trace system calls and signals of a command or of "
                                          "running processes, like strace.")
    add = p.add_argument
    add("-f", dest="follow", action="count", default=0,
        help="follow forks, vforks and threads; -ff with -o: one file per process (PREFIX.PID)")
    add("-p", dest="pids", action="append", default=[], metavar="PID",
        help="attach to PID (repeatable; a comma or space separated list)")
    add("-o", dest="output", metavar="FILE", help="write the trace to FILE instead of stderr")
    add("-e", dest="expressions", action="append", default=[], metavar="EXPR",
        help="trace=SET, status=SET, signal=SET, inject=..., fault=... as in strace")
    for name in ("trace", "status", "signal", "inject", "fault"):
        add("--" + name, dest="expressions", action="append", type=lambda v, n=name: n + "=" + v,
            metavar="SET", help="same as -e %s=SET" % name)
    add("-P", dest="paths", action="append", default=[], metavar="PATH",
        help="trace only syscalls accessing PATH")
    add("-z", "--successful-only", dest="successful_only", action="store_true",
        help="print only syscalls that returned without an error")
    add("-Z", "--failed-only", dest="failed_only", action="store_true",
        help="print only syscalls that returned with an error")
    add("-s", "--string-limit", dest="string_limit", type=int, default=32, metavar="N",
        help="print at most N bytes of strings (default 32)")
    add("-v", "--no-abbrev", dest="verbose", action="store_true",
        help="print structures, argv and environment in full")
    add("-x", dest="hex", action="count", default=0,
        help="non-ASCII strings in hex; -xx: all strings in hex")
    add("-y", dest="decode_fds", action="count", default=0, help="print paths of file descriptors")
    add("-t", dest="timestamps", action="count", default=0,
        help="time of day; -tt with microseconds; -ttt seconds since the epoch")
    add("-r", dest="relative", action="store_true", help="time since the previous line")
    add("-T", dest="syscall_times", action="store_true", help="time spent in each syscall")
    add("-q", dest="quiet", action="count", default=0,
        help="no attach/detach messages; -qq: no exit status lines either")
    add("-c", "--summary-only", dest="summary_only", action="store_true",
        help="count time, calls and errors per syscall and print a summary")
    add("-C", "--summary", dest="summary", action="store_true",
        help="like -c, but print the trace lines too")
    add("-S", dest="sort_by", default="time", metavar="SORTBY",
        help="sort the summary by time, calls, errors, name or nothing")
    add("-w", dest="wall_clock", action="store_true",
        help="summarise wall-clock time, not system time")
    add("--summary-per-process", dest="per_process", action="store_true",
        help="with -c/-C: one table per process (strace has no such table)")
    add("--seccomp-bpf", dest="seccomp", action="store_true", default=None,
        help="with -f, let a seccomp filter stop only the traced syscalls (the default when "
             "-e trace= narrows the set and a command is started)")
    add("--no-seccomp-bpf", dest="seccomp", action="store_false",
        help="stop at every syscall even when a filter could be used")
    add("--regs", dest="regs", action="store_true",
        help="read syscalls from the registers, as on kernels older than 5.3 (for testing)")
    add("--json", dest="json", action="store_true", help="JSON Lines instead of text")
    add("--json-output", dest="json_output", metavar="FILE",
        help="also write the JSON Lines of --json to FILE (the text goes to -o or stderr)")
    add("--max-events", dest="max_events", type=int, default=0, metavar="N",
        help="stop after N syscalls and signals have been shown")
    add("--max-duration", dest="max_duration", type=float, default=0, metavar="SECONDS",
        help="stop after SECONDS")
    add("command", nargs="...", help="the command to run and trace")
    return p


def parse_pids(values):
    pids = []
    for value in values:
        for item in value.replace(",", " ").split():
            if not item.isdigit() or int(item) <= 0:
                raise AgentError("Invalid process id: '%s'" % item)
            pids.append(int(item))
    return pids


def find_program(name):
    """The file to exec, found on PATH like strace does; strace's message when it is not."""
    candidates = [name] if "/" in name else [
        os.path.join(d or ".", name) for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")]
    for path in candidates:
        if os.path.isfile(path) and ("/" in name or os.access(path, os.X_OK)):
            return path
    raise AgentError("Can't stat '%s': No such file or directory" % name)


def main(argv):
    args = parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pids = parse_pids(args.pids)
    if not command and not pids:
        raise AgentError("must have PROG [ARGS] or -p PID")
    if args.summary_only and args.summary:
        raise AgentError("-c and -C are mutually exclusive")
    if args.json and args.json_output is not None:
        raise AgentError("--json and --json-output are mutually exclusive")
    limits = args.max_events or args.max_duration
    if limits and args.seccomp:
        raise AgentError("--seccomp-bpf cannot be used with --max-events or --max-duration")
    if args.string_limit < 0:
        raise AgentError("invalid -s argument: '%d'" % args.string_limit)

    from target.strace import decode, filters as filtering, tracer as engine
    filters = filtering.parse(args.expressions, args.paths, args.successful_only,
                              args.failed_only)
    for note in filters.warnings + filters.notices():
        message(note)
    dopts = decode.DecodeOptions()
    dopts.string_limit = args.string_limit
    dopts.strings_in_hex = {0: None, 1: "non-ascii"}.get(args.hex, "all")
    dopts.verbose = args.verbose
    dopts.decode_fds = args.decode_fds > 0
    options = TraceOptions(args)

    summary = None
    if args.summary_only or args.summary:
        from target.strace.summary import Summary, check_sort
        check_sort(args.sort_by)
        summary = Summary()
    json_lines = None
    if args.json or args.json_output is not None:
        from target.strace.jsonl import JsonLines
        from target.strace.output import open_stream
        json_lines = JsonLines(open_stream(args.output if args.json else args.json_output))

    tracer = engine.Tracer(options, filters, dopts, summary, json_lines)
    tracer.use_regs = args.regs
    try:
        if command:
            path = find_program(command[0])
            tracer.spawn(path, command, dict(os.environ), seccomp_program(args, filters, tracer))
        if pids:
            tracer.attach(pids)
        status = tracer.run()
        if summary is not None:
            stream = tracer.summary_stream()
            if stream is None:
                from target.strace.output import open_stream
                stream = open_stream(args.output, append=True)
            stream.write(summary.render(args.sort_by, args.per_process))
            stream.flush()
    finally:
        tracer.close()
    return exit_status(status)


def seccomp_program(args, filters, tracer):
    """The BPF filter for a spawned command, when it is asked for or is the sensible default."""
    wanted = args.seccomp
    numbers = filters.traced_numbers(tracer.native)
    if wanted is None:   # not with limits: a tracee left behind must not keep our filter
        wanted = numbers is not None and not (args.max_events or args.max_duration)
    # Without -f, children run untraced and a filter would fail their syscalls with ENOSYS:
    # like strace, --seccomp-bpf has no effect then.
    if not wanted or numbers is None or not args.follow:
        return None
    from target.strace import seccomp
    return seccomp.build_filter(tracer.native, numbers)


def exit_status(status):
    """The traced command's status, as strace gives it: its exit code, or its signal (we
    die of the same signal, without a core dump)."""
    if status is None:
        return 0
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        pass
    return 128 + sig
