"""`agent dmesg`: util-linux dmesg's options, plus --jsonl and -v (which source was read)."""

import os
import sys
import time

from target import VERSION
from target.cli import AgentError, Parser

# util-linux's groups of options that exclude each other (by dest name)
EXCLUSIVE = (
    ("clear", "console_off", "console_on", "read_clear", "console_level", "raw"),
    ("file", "kmsg_file"),
    ("human", "raw"), ("color", "raw"), ("syslog", "follow"), ("decode", "raw"),
    ("json", "jsonl"),
)
RAW_EXCLUDES_TIME = ("notime", "ctime", "show_delta", "reltime")
FLUSH_EVERY = 512   # records per write() when not following


class _TimeFormat(object):
    """Options that pick the time format: the last one given wins, as in util-linux 2.38."""

    def __init__(self, fmt):
        self.fmt = fmt


def build_parser():
    p = Parser(prog="dmesg", description="Print or control the kernel ring buffer "
               "(util-linux compatible). Reads /dev/kmsg, else syslog(2).")
    add = p.add_argument
    add("-C", "--clear", action="store_true", help="clear the kernel ring buffer")
    add("-c", "--read-clear", action="store_true", help="read and clear all messages")
    add("-D", "--console-off", action="store_true", help="disable printing messages to console")
    add("-E", "--console-on", action="store_true", help="enable printing messages to console")
    add("-F", "--file", metavar="FILE", help="read a syslog(2)-format file instead")
    add("-K", "--kmsg-file", metavar="FILE", help="read NUL-separated /dev/kmsg records")
    add("-f", "--facility", action="append", default=[], metavar="LIST",
        help="restrict output to these facilities (kern,user,...,local7 or numbers)")
    add("-H", "--human", action="store_true", help="human readable output (reltime + color)")
    add("-J", "--json", action="store_true", help="util-linux JSON output")
    add("--jsonl", action="store_true", help="JSON Lines: one object per record, streamable")
    add("-k", "--kernel", action="store_true", help="display kernel messages")
    add("-L", "--color", nargs="?", const="auto", choices=("auto", "always", "never"),
        metavar="WHEN", help="colorize messages (auto, always or never; default auto)")
    add("-l", "--level", action="append", default=[], metavar="LIST",
        help="restrict output to these levels (err, err+ = err and worse, +warn, numbers)")
    add("-n", "--console-level", metavar="LEVEL",
        help="set level of messages printed to console")
    add("-P", "--nopager", action="store_true", help="accepted; there is never a pager")
    add("-p", "--force-prefix", action="store_true",
        help="timestamp and decode prefix on each line of multi-line messages")
    add("-r", "--raw", action="store_true", help="print the raw <pri>[time] form")
    add("--noescape", action="store_true", help="don't escape unprintable characters")
    add("-S", "--syslog", action="store_true", help="force syslog(2) rather than /dev/kmsg")
    add("-s", "--buffer-size", type=int, metavar="SIZE",
        help="buffer size to query the kernel ring buffer (syslog(2))")
    add("-u", "--userspace", action="store_true", help="display userspace messages")
    add("-w", "--follow", action="store_true", help="wait for new messages")
    add("-W", "--follow-new", action="store_true", help="wait and print only new messages")
    add("-x", "--decode", action="store_true", help="decode facility and level")
    add("-d", "--show-delta", action="store_true", help="show time delta between messages")
    add("-e", "--reltime", action="append_const", dest="times", const=_TimeFormat("reltime"),
        help="show local time and time delta in readable format")
    add("-T", "--ctime", action="append_const", dest="times", const=_TimeFormat("ctime"),
        help="show human-readable timestamp (may be inaccurate!)")
    add("-t", "--notime", action="append_const", dest="times", const=_TimeFormat("notime"),
        help="don't show any timestamp with messages")
    add("--time-format", action="append", dest="times", type=_time_format,
        metavar="FORMAT", help="delta, reltime, ctime, notime, iso or raw")
    add("--since", metavar="TIME", help="display the lines since the specified time")
    add("--until", metavar="TIME", help="display the lines until the specified time")
    add("-V", "--version", action="version", version="dmesg from boardtrace-agent %s" % VERSION)
    add("-v", "--verbose", action="store_true",
        help="say on stderr which source was read (kmsg, syslog, file, kmsg-file)")
    return p


def _time_format(text):
    names = {"notime": "notime", "ctime": "ctime", "delta": "delta", "reltime": "reltime",
             "iso": "iso", "raw": "time"}
    if text not in names:
        raise ValueError(text)
    return _TimeFormat(names[text])


_time_format.__name__ = "time format"


# options whose value may start with '-' ("--since -10min"): argparse would take it for an option
VALUE_OPTIONS = ("--since", "--until", "-l", "--level", "-f", "--facility", "-n",
                 "--console-level", "-s", "--buffer-size", "-F", "--file", "-K", "--kmsg-file",
                 "--time-format")


def _attach_dash_values(argv):
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if arg in VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(arg + ("=" if arg.startswith("--") else "") + argv[i + 1])
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(_attach_dash_values(list(argv)))
    given = {name for name, value in vars(args).items() if value not in (None, False, [])}
    if args.times:
        given.update(t.fmt for t in args.times)
    if args.follow_new:
        given.add("follow")
    for group in EXCLUSIVE:
        both = [name for name in group if name in given]
        if len(both) > 1:
            parser.error("mutually exclusive options: %s" % " ".join(
                "--" + name.replace("_", "-") for name in both))
    if args.json or args.jsonl:   # util-linux: JSON ignores these
        args.raw = args.force_prefix = False
        args.noescape = True
    if args.raw:
        for name in RAW_EXCLUDES_TIME:
            if name in given:
                parser.error("mutually exclusive options: --raw --%s" % name.replace("_", "-"))
    return args


def resolve_time_format(args):
    """util-linux 2.38: the last time option wins; -d turns it into its delta variant."""
    fmt = args.times[-1].fmt if args.times else "time"
    if args.human and not args.times:
        fmt = "reltime"
    if args.json or args.jsonl:
        return "time"
    if not args.show_delta:
        return fmt
    if fmt == "iso":
        print("dmesg: --show-delta is ignored when used together with iso8601 time format",
              file=sys.stderr)
        return fmt
    return {"ctime": "ctime_delta", "time": "time_delta"}.get(fmt, "delta")


def boot_time_usec():
    """Wall-clock time of boot, as util-linux computes it: now - CLOCK_BOOTTIME, plus the time
    spent suspended (BOOTTIME - MONOTONIC), because record stamps do not advance in suspend."""
    now = time.time_ns() // 1000
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1000
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return now - boot + (boot - mono)


TERMINFO_DIRS = ("/usr/share/terminfo", "/lib/terminfo", "/etc/terminfo")


def use_color(mode):
    """always / never, or auto (the default, as in Debian's util-linux): a terminal whose
    terminfo entry exists (vt1xx/vt2xx have no colours). NO_COLOR turns auto off (2.41)."""
    if mode in ("always", "never"):
        return mode == "always"
    term = os.environ.get("TERM", "")
    if os.environ.get("NO_COLOR") or term in ("", "dumb") or term.startswith("vt"):
        return False
    if not sys.stdout.isatty():
        return False
    return any(os.path.exists(os.path.join(d, term[0], term)) for d in TERMINFO_DIRS)


def make_filter(args, boot_usec):
    """A function record -> bool, or None when every record passes."""
    if not (args.level or args.facility or args.kernel or args.userspace or args.since
            or args.until):
        return None
    from target.dmesg import filters
    levels = set()
    for item in args.level:
        levels |= filters.parse_levels(item)
    facilities = set()
    for item in args.facility:
        facilities |= filters.parse_facilities(item)
    if args.kernel:
        facilities.add(0)
    if args.userspace:
        facilities.update(range(1, 24))
    since = filters.parse_time_option(args.since, "--since") if args.since else 0
    until = filters.parse_time_option(args.until, "--until") if args.until else 0
    by_level, by_facility = bool(args.level), bool(args.facility or args.kernel or args.userspace)
    if not (by_level or by_facility or since or until):
        return None

    def accept(record):
        pri = record.pri
        if by_level and (pri is None or pri & 7 not in levels):
            return False
        if by_facility and (pri is None or pri >> 3 not in facilities):
            return False
        stamp = boot_usec + record.ts_usec
        if since and since >= stamp:
            return False
        return not (until and until <= stamp)
    return accept


def console_action(args):
    """-C, -D, -E, -n: one syslog(2) call and nothing printed."""
    from target import libc
    if args.clear:
        _klogctl(libc, libc.SYSLOG_ACTION_CLEAR, 0, "clear kernel buffer failed")
    elif args.console_off:
        _klogctl(libc, libc.SYSLOG_ACTION_CONSOLE_OFF, 0, "klogctl failed")
    elif args.console_on:
        _klogctl(libc, libc.SYSLOG_ACTION_CONSOLE_ON, 0, "klogctl failed")
    else:
        from target.dmesg.filters import parse_console_level
        level = parse_console_level(args.console_level)
        _klogctl(libc, libc.SYSLOG_ACTION_CONSOLE_LEVEL, level, "klogctl failed")
    return 0


def _klogctl(libc, action, arg, what):
    try:
        return libc.klogctl(action, arg)
    except OSError as e:
        raise AgentError("%s: %s" % (what, os.strerror(e.errno)))


def open_source(args):
    from target.dmesg import source
    if args.file:
        return source.SyslogFileSource(args.file), ""
    if args.kmsg_file:
        return source.KmsgFileSource(args.kmsg_file), ""
    if args.buffer_size is not None and args.buffer_size < 0:
        raise AgentError("invalid buffer size argument: '%d'" % args.buffer_size)
    bufsize = max(args.buffer_size, 4096) if args.buffer_size else 0
    whence = os.SEEK_END if args.follow_new else os.SEEK_DATA
    return source.open_kernel_log(args.syslog, args.follow or args.follow_new, whence, bufsize)


def make_formatter(args, src, time_format, boot_usec):
    if args.jsonl or args.json:
        from target.dmesg import jsonout
        if args.jsonl:
            return jsonout.JsonLinesFormatter(src.name)
        return jsonout.JsonFormatter(args.decode, src.name)
    from target.dmesg import format as fmt
    if time_format in ("ctime", "ctime_delta", "reltime"):
        _use_locale_time_names()
    color = use_color(args.color or "auto")
    escaper = fmt.Escaper(fmt.locale_is_utf8(), args.noescape)
    # util-linux pads caller ids to the width of pid_max for /dev/kmsg, 5 for syslog(2)
    width = 5 if src.name in ("syslog", "file") else _pid_max_width()
    # util-linux 2.38 ignores -p for syslog(2) text (2.40 refuses it): its lines are records
    force_prefix = args.force_prefix and src.name in ("kmsg", "kmsg-file")
    return fmt.TextFormatter(time_format, args.decode, args.raw, color, force_prefix,
                             escaper, boot_usec, width)


def _use_locale_time_names():
    import locale
    try:
        locale.setlocale(locale.LC_TIME, "")
    except locale.Error:
        pass


def _pid_max_width():
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return len(f.read(32))  # util-linux counts the trailing newline too
    except OSError:
        return 10


class Output(object):
    """Buffered bytes to stdout; flushed in batches, or per record when following."""

    def __init__(self, stream):
        self.stream = stream
        self.chunks = []

    def add(self, data):
        self.chunks.append(data)
        if len(self.chunks) >= FLUSH_EVERY:
            self.flush()

    def flush(self):
        if self.chunks:
            data, self.chunks = b"".join(self.chunks), []
            self.stream.write(data)
        self.stream.flush()


def report_lost(output, formatter, lost):
    if hasattr(formatter, "lost"):
        output.add(formatter.lost(lost))
    output.flush()
    sys.stderr.write("dmesg: %d records lost (overwritten before they were read)\n"
                     % lost.count)
    sys.stderr.flush()


def print_records(args, src, formatter, output, accept, stop=None):
    raw_text = getattr(src, "raw", None)
    if args.raw and raw_text is not None:
        if args.level or args.facility or args.kernel or args.userspace:
            raise AgentError("--raw can be used together with --level or --facility only "
                             "when reading messages from /dev/kmsg")
        from target.dmesg.format import raw_buffer
        output.add(raw_buffer(raw_text(), formatter.escape))
        return
    from target.dmesg.source import Lost
    fmt, skip, add = formatter.format, formatter.skip, output.add
    for item in src.records(output.flush, stop):
        if item.__class__ is Lost:
            report_lost(output, formatter, item)
        elif accept is None or accept(item):
            add(fmt(item))
        else:
            skip(item)


def main(argv):
    args = parse_args(argv)
    if args.clear or args.console_off or args.console_on or args.console_level is not None:
        return console_action(args)
    follow = args.follow or args.follow_new
    if follow and (args.file or args.kmsg_file):
        raise AgentError("--follow reads /dev/kmsg; it cannot be used with a file")
    src, note = open_source(args)
    if args.verbose:
        print("dmesg: source: %s%s" % (src.name, " (%s)" % note if note else ""),
              file=sys.stderr)
    time_format = resolve_time_format(args)
    needs_boot = args.since or args.until or time_format in ("ctime", "ctime_delta",
                                                               "reltime", "iso")
    boot_usec = boot_time_usec() if needs_boot else 0
    accept = make_filter(args, boot_usec)
    formatter = make_formatter(args, src, time_format, boot_usec)
    output = Output(sys.stdout.buffer)
    stop = None
    if follow:
        from target.dmesg.source import StopSignals
        stop = StopSignals()
    try:
        print_records(args, src, formatter, output, accept, stop)
    finally:
        src.close()
    output.add(formatter.close())
    output.flush()
    if src.invalid:
        print("dmesg: skipped %d malformed records" % src.invalid, file=sys.stderr)
    if args.read_clear:
        from target import libc
        _klogctl(libc, libc.SYSLOG_ACTION_CLEAR, 0, "clear kernel buffer failed")
    return 0
