"""invoke tasks: each parses its options and calls one host/ function."""

from __future__ import annotations

import functools
import shlex

from invoke import Collection, Exit, Task, task

from host.errors import BoardtraceError


def one_line_errors(fn):
    """Show a BoardtraceError as one line on stderr and exit 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BoardtraceError as e:
            raise Exit(f"error: {e}", code=1)

    return wrapper


def required(value, what: str):
    """An option a task cannot do without (invoke would take `--help` for a positional value)."""
    if value is None:
        raise Exit(f"error: missing {what}", code=1)
    return value


def exit_with(code: int) -> None:
    if code:
        raise Exit(code=code)


@task(help={"reachable": "also try a TCP connection to each board (slow for boards that are off)"})
@one_line_errors
def boards(c, reachable=False):
    """List the boards under boards/: name, arch, transport (and reachability when asked)."""
    from host.listing import print_boards

    print_boards(reachable=reachable)


@task
@one_line_errors
def build_agent(c):
    """Build build/agent.pyz (reproducible) and build/agent-<sha256>.pyz; report the size."""
    from host.agentbuild import build_agent as build

    agent = build()
    print(f"{agent.path.relative_to(agent.path.parent.parent)}: {agent.size:,} bytes, sha256 {agent.sha256}")
    print(f"copy: {agent.hashed_path.name}")


@task(help={"board": "board name (default: local)",
            "trust_new_host_key": "add the board's SSH host key to known_hosts if it is not there (never a changed one)"})
@one_line_errors
def deploy(c, board="local", trust_new_host_key=False):
    """Put the agent on a board (only when that build is not there yet) and show its facts."""
    from host.tools import deploy_board

    exit_with(deploy_board(board, trust_new_host_key))


@task(help={"board": "board name (default: local)", "workdir": "the workdir whose mount to inspect",
            "mount_tracefs": "mount tracefs for the probes when it is not mounted (unmounted after)",
            "trust_new_host_key": "add the board's SSH host key to known_hosts if it is not there (never a changed one)"})
@one_line_errors
def info(c, board="local", workdir=None, mount_tracefs=False, trust_new_host_key=False):
    """Show the facts of a board as JSON (arch, kernel, Python, tracefs, ptrace, seccomp, ...)."""
    from host.tools import run_tool

    args = ["--workdir", workdir] if workdir else []
    if mount_tracefs:
        args.append("--mount-tracefs")
    exit_with(run_tool(board, "info", args, trust_new_host_key))


DMESG_FLAGS = ("decode", "ctime", "notime", "show_delta", "reltime", "follow", "follow_new", "kernel",
               "userspace", "raw", "json", "jsonl", "syslog", "clear", "read_clear", "force_prefix",
               "noescape")
DMESG_VALUES = ("level", "facility", "time_format", "since", "until", "color", "console_level")


@task(auto_shortflags=False, help={"board": "board name (default: local)",
                                   "level": "levels, e.g. err+ or warn,err",
                                   "facility": "facilities, e.g. kern,user",
                                   "trust_new_host_key": "add the board's SSH host key to known_hosts if it is not there (never a changed one)"})
@one_line_errors
def dmesg(c, board="local", level=None, facility=None, time_format=None, since=None, until=None,
          color=None, console_level=None, decode=False, ctime=False, notime=False,
          show_delta=False, reltime=False, follow=False, follow_new=False, kernel=False,
          userspace=False, raw=False, json=False, jsonl=False, syslog=False, clear=False,
          read_clear=False, force_prefix=False, noescape=False, trust_new_host_key=False):
    """Print the board's kernel log, with util-linux dmesg's long options."""
    from host.tools import run_tool

    given = locals()
    args = [f"--{name.replace('_', '-')}" for name in DMESG_FLAGS if given[name]]
    for name in DMESG_VALUES:
        if given[name] is not None:
            args += [f"--{name.replace('_', '-')}", str(given[name])]
    exit_with(run_tool(board, "dmesg", args, trust_new_host_key))


@task(help={"board": "board name (default: local)", "cmd": "the command to start and trace (a shell-like string)",
            "pid": "attach to these running processes instead (comma separated)",
            "opts": "strace options for the agent, e.g. \"-f -tt -T -e trace=%file -s 64\"",
            "trust_new_host_key": "add the board's SSH host key to known_hosts if it is not there (never a changed one)"})
@one_line_errors
def strace(c, board="local", cmd=None, pid=None, opts="", trust_new_host_key=False):
    """Trace a command (or running processes) on a board, with strace's options."""
    from host.tools import run_tool

    args = shlex.split(opts)
    if pid:
        args += ["-p", pid]
    if cmd:
        args += ["--", *shlex.split(cmd)]
    exit_with(run_tool(board, "strace", args, trust_new_host_key))


@task(help={"board": "board name (default: local)",
            "args": "the agent's ftrace verb and options, e.g. \"record -e sched -o /tmp/t -- ls\", "
                    "\"probe\", \"list -e 'irq:*'\"",
            "trust_new_host_key": "add the board's SSH host key to known_hosts if it is not there (never a changed one)"})
@one_line_errors
def ftrace(c, board="local", args="probe", trust_new_host_key=False):
    """Control the board's ftrace: probe, list, record, start/stop/extract, stream, show, reset, report."""
    from host.tools import run_tool

    exit_with(run_tool(board, "ftrace", shlex.split(args), trust_new_host_key))


@task(help={"capture": "a capture directory written by `ftrace record -o DIR` (or extract)",
            "out": "the trace.dat to write (default: CAPTURE/trace.dat)"})
@one_line_errors
def trace_dat(c, capture, out=None):
    """Write trace.dat (version 6) from an ftrace capture, for trace-cmd report and KernelShark."""
    from pathlib import Path

    from host.tracedat import write_tracedat

    target = Path(out) if out else Path(capture) / "trace.dat"
    write_tracedat(Path(capture), target)
    print(f"{target}: {target.stat().st_size:,} bytes")


@task(help={"check": "only compare the committed tables with the installed kernel headers"})
@one_line_errors
def syscall_tables(c, check=False):
    """Regenerate target/arch/syscalls/ from Debian's kernel headers for each architecture."""
    from host.syscalltables import main

    exit_with(main(["--check"] if check else []))


TRUST_HELP = "add the board's SSH host key to known_hosts if it is not there (never a changed one)"


@task(optional=["strace", "ftrace"], auto_shortflags=False,
      help={"board": "board, boards or group: \"rpi4\", \"a,b,c\", \"qemu\" (default: local)",
            "cmd": "the command to run during the capture (a shell-like string)",
            "strace": "trace syscalls; alone: -f; with options: --strace=\"-f -e trace=%file\"",
            "ftrace": "record kernel events; alone: sched switch/wakeup/fork/exec/exit and irq "
                      "handlers; with options: --ftrace=\"-e sched -e irq\"",
            "dmesg": "record the kernel log",
            "duration": "stop after this many seconds (default: when the command ends, or Ctrl-C)",
            "home": "where sessions are pulled (default: sessions/)",
            "trust_new_host_key": TRUST_HELP})
@one_line_errors
def capture(c, board="local", cmd=None, strace=None, ftrace=None, dmesg=False, duration=None,
            home="sessions", trust_new_host_key=False):
    """Capture strace, ftrace and dmesg together on one clock, detached on the board; pull it home."""
    from pathlib import Path

    from host.capture import make_request
    from host.profiles import resolve_boards
    from host.sessions import capture as run

    request = make_request(cmd, strace, ftrace, dmesg, float(duration) if duration else None)
    exit_with(run(resolve_boards(board), request, Path(home), trust_new_host_key))


@task(help={"board": "board name (default: local)", "session": "the session id (see `invoke sessions`)",
            "home": "where sessions are pulled (default: sessions/)", "trust_new_host_key": TRUST_HELP})
@one_line_errors
def pull(c, session=None, board="local", home="sessions", trust_new_host_key=False):
    """Fetch a session home (waiting for it to finish), verify it and render its outputs."""
    session = required(session, "--session ID (see `invoke sessions`)")
    from pathlib import Path

    from host.profiles import load_board
    from host.sessions import pull_session

    exit_with(pull_session(load_board(board), session, Path(home), trust_new_host_key))


@task(help={"board": "board name (default: local)", "home": "where sessions are pulled (default: sessions/)",
            "trust_new_host_key": TRUST_HELP})
@one_line_errors
def sessions(c, board="local", home="sessions", trust_new_host_key=False):
    """List the capture sessions on a board and those pulled home."""
    from pathlib import Path

    from host.profiles import load_board
    from host.sessions import list_sessions

    exit_with(list_sessions(load_board(board), Path(home), trust_new_host_key))


@task(help={"board": "board name (default: local)", "session": "the session id",
            "trust_new_host_key": TRUST_HELP})
@one_line_errors
def stop(c, session=None, board="local", trust_new_host_key=False):
    """End a running capture session (then `invoke pull` fetches it)."""
    session = required(session, "--session ID (see `invoke sessions`)")
    from host.profiles import load_board
    from host.sessions import stop_session

    exit_with(stop_session(load_board(board), session, trust_new_host_key))


@task(iterable=["session"], help={
    "board": "board name (default: local)", "session": "a session to remove (repeatable)",
    "all": "every finished session on the board", "older_than": "finished sessions older than HOURS",
    "home": "where sessions are pulled (default: sessions/)", "trust_new_host_key": TRUST_HELP})
@one_line_errors
def clean(c, board="local", session=None, all=False, older_than=None, home="sessions",
          trust_new_host_key=False):
    """Remove finished sessions from a board: by default those already pulled home."""
    from pathlib import Path

    from host.profiles import load_board
    from host.sessions import clean_sessions

    exit_with(clean_sessions(load_board(board), list(session or []), all,
                             float(older_than) if older_than is not None else None,
                             Path(home), trust_new_host_key))


# -- toolchains: install, build and run user programs (host/toolchain.py, docs/toolchains.md) ----

@task(help={"toolchain": "toolchain name: a file in toolchains/, e.g. aarch64-linux-gnu",
            "with_qemu_user": "also install qemu-user, to run the programs on this host"})
@one_line_errors
def toolchain_install(c, toolchain, with_qemu_user=False):
    """apt-get install a toolchain's Debian packages (as root) unless they are installed already."""
    from host.toolchain import install_toolchain

    installed = install_toolchain(toolchain, with_qemu_user)
    print(f"toolchain {toolchain}: " + (f"installed {' '.join(installed)}" if installed else "already installed"))


@task(help={"board": "board name (default: local)", "src": "the C file to compile",
            "out": "the program to write (default: build/progs/<board>/<stem>)"})
@one_line_errors
def build(c, src, board="local", out=None):
    """Compile a C program with the board's toolchain (static) and check it is for the board's arch."""
    from pathlib import Path

    from host.profiles import load_board
    from host.toolchain import build_program

    print(build_program(load_board(board), Path(src), Path(out) if out else None))


@task(optional=["strace", "ftrace"], auto_shortflags=False,
      help={"board": "board name (default: local)", "src": "the C file to build and run",
            "args": "the program's arguments (a shell-like string)",
            "strace": "run it under the agent's strace; with options: --strace=\"-f -e trace=%file\"",
            "capture": "capture it (as `invoke capture`: strace, --ftrace, dmesg; default all three) "
                       "and pull the session home",
            "ftrace": "with --capture: record kernel events; with options: --ftrace=\"-p function\"",
            "home": "with --capture: where sessions are pulled (default: sessions/)",
            "trust_new_host_key": TRUST_HELP})
@one_line_errors
def run(c, src, board="local", args="", strace=None, capture=False, ftrace=None, home="sessions",
        trust_new_host_key=False):
    """Build a C program for the board, upload it to <workdir>/progs/<stem> and run it there."""
    from pathlib import Path

    from host.capture import make_request
    from host.profiles import load_board
    from host.toolchain import capture_program, run_program

    if capture:
        both = strace is None and ftrace is None
        request = make_request(None, True if both else strace, True if both else ftrace, True, None)
        return exit_with(capture_program(load_board(board), Path(src), shlex.split(args), request,
                                         Path(home), trust_new_host_key))
    if ftrace is not None:
        raise Exit("error: --ftrace goes with --capture", code=1)
    strace_opts = None if strace in (None, False) else shlex.split("" if strace is True else strace)
    exit_with(run_program(load_board(board), Path(src), shlex.split(args), strace_opts, trust_new_host_key))


# -- QEMU boards: `invoke qemu.image|up|down|status|console --board B` (host/qemu, docs/qemu.md) --

QEMU_BOARD = {"board": "a QEMU board: qemu-aarch64, qemu-riscv64, qemu-armhf, qemu-x86_64 (default qemu-aarch64)"}


@task(help=QEMU_BOARD)
@one_line_errors
def qemu_image(c, board="qemu-aarch64"):
    """Build the board's kernel + initramfs from Debian packages (cached: a second build is a no-op)."""
    from host.profiles import load_board
    from host.qemu import CACHE, say
    from host.qemu.image import build_image

    image = build_image(load_board(board), CACHE, say)
    print(f"{image.dir}: kernel {image.facts['sizes']['vmlinuz']:,} bytes, initrd.gz "
          f"{image.facts['sizes']['initrd.gz']:,} bytes, python {image.python}")


@task(help=dict(QEMU_BOARD, append="more kernel command line options, e.g. initcall_debug (a board already "
                                  "running without them is an error: qemu.down first)"))
@one_line_errors
def qemu_up(c, board="qemu-aarch64", append=""):
    """Boot the board in the background (building its image if needed); returns once SSH works."""
    from host.profiles import load_board
    from host.qemu import STATE, ensure_up
    from host.qemu.runner import status

    ssh = ensure_up(load_board(board), append)
    running = status(ssh, STATE)
    print(f"{board}: up, ssh root@127.0.0.1 -p {ssh.transport.port} (pid {running.pid}, {running.accel}, "
          f"console {running.console}, kernel command line {running.append!r})")


@task(help=QEMU_BOARD)
@one_line_errors
def qemu_down(c, board="qemu-aarch64"):
    """Power the board off (QMP quit, then kill)."""
    from host.profiles import load_board
    from host.qemu import STATE
    from host.qemu.runner import down

    print(f"{board}: {'stopped' if down(load_board(board), STATE) else 'was not running'}")


@task(help=QEMU_BOARD)
@one_line_errors
def qemu_status(c, board="qemu-aarch64"):
    """Say whether the board runs, on which port, with which accelerator."""
    from host.profiles import load_board
    from host.qemu import STATE
    from host.qemu.runner import status

    running = status(load_board(board), STATE)
    print(f"{board}: down" if running is None else
          f"{board}: up, port {running.port}, pid {running.pid}, {running.accel}, booted in "
          f"{running.boot_seconds:.1f} s, console {running.console}, kernel command line {running.append!r}")


@task(help=dict(QEMU_BOARD, lines="how many lines of the serial console to show (default 40)"))
@one_line_errors
def qemu_console(c, board="qemu-aarch64", lines=40):
    """Show the end of the board's serial console log."""
    from host.profiles import load_board
    from host.qemu import STATE
    from host.qemu.runner import console_log

    path = console_log(load_board(board), STATE)
    if not path.exists():
        raise Exit(f"error: {board}: no console log at {path} (never booted?)", code=1)
    print("\n".join(path.read_text(errors="replace").splitlines()[-int(lines):]))


NAMESPACES = ("qemu", "toolchain")


def _namespace() -> Collection:
    """Every task at the top, but qemu_* and toolchain_* under `qemu.` and `toolchain.`
    (invoke qemu.up, invoke toolchain.install)."""
    ns = Collection()
    groups = {prefix: Collection(prefix) for prefix in NAMESPACES}
    for name, value in list(globals().items()):
        if isinstance(value, Task):
            prefix, _, rest = name.partition("_")
            if prefix in groups:
                groups[prefix].add_task(value, rest)
            else:
                ns.add_task(value)
    for group in groups.values():
        ns.add_collection(group)
    return ns



@task(help={"session_dir": "a pulled session: sessions/<board>/<id>/",
            "format": "the output format: perfetto (Chrome JSON trace events, opens in ui.perfetto.dev)",
            "out": "the output file (default: SESSION_DIR/perfetto.json)",
            "all_dmesg": "also the kernel log records from before the session started"})
@one_line_errors
def export(c, session_dir, format="perfetto", out=None, all_dmesg=False):
    """Export a session's syscalls, scheduling, kernel events and kernel log on one timeline."""
    from host.perfetto import export as export_session

    path, counts = export_session(session_dir, format, out, all_dmesg)
    print(f"{path}: {counts['events']:,} events: {counts['syscalls']:,} syscalls, "
          f"{counts['sched_slices']:,} scheduling slices, {counts['ftrace_instants']:,} kernel events, "
          f"{counts['dmesg']:,} kernel log records")



@task(help={"session_dir": "a pulled session directory: sessions/<board>/<id>",
            "open": "open the report in the default web browser"})
@one_line_errors
def report(c, session_dir, open=False):
    """Render a session's self-contained report.html (timeline, syscalls, ftrace, kernel log); print its path."""
    import webbrowser

    from host.report import render_report

    path = render_report(session_dir)
    print(path)
    if open:
        webbrowser.open(path.resolve().as_uri())


@task(help={"session_a": "the first pulled session: sessions/<board>/<id>",
            "session_b": "the session to compare with it",
            "out": "the page to write (default: SESSION_B/diff.html)",
            "top": "rows per section in the terminal (default 20; diff.html has them all)"})
@one_line_errors
def diff(c, session_a, session_b, out=None, top=20):
    """Compare two sessions: new kernel warnings, missing probe messages, initcall times, syscalls, ftrace events."""
    from host.diff import diff_sessions

    print(diff_sessions(session_a, session_b, out, int(top)))


@task(help={"board": "the board whose kernel log to read (default: local); a QEMU board that is down boots "
                     "with initcall_debug",
            "dmesg": "read a saved `dmesg --json` (or a pulled session's dmesg.json, or its directory) instead",
            "out": "the page to write (default: sessions/<board>/boot-report.html, or next to the --dmesg file)",
            "top": "rows in the terminal (default 20; the page has them all)",
            "reboot": "QEMU boards: restart the board with initcall_debug on its kernel command line",
            "trust_new_host_key": TRUST_HELP})
@one_line_errors
def boot_report(c, board=None, dmesg=None, out=None, top=20, reboot=False, trust_new_host_key=False):
    """Initcall timing from the kernel log (initcall_debug): the slowest first, and a bootgraph-style page."""
    from host.bootreport import boot_report as report

    print(report(board, dmesg, out, int(top), reboot, trust_new_host_key))


ns = _namespace()  # last: every task above is in it
