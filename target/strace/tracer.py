"""The ptrace engine: start or attach tracees, follow their stops, hand syscalls to the
decoders and the lines to the output.

Every tracee is seized (PTRACE_SEIZE), spawned ones too, so group-stops can be told apart
from signals and job control keeps working. Syscall facts come from PTRACE_GET_SYSCALL_INFO
(Linux >= 5.3); older kernels are read through the registers (target/strace/regs.py).
"""

import ctypes
import errno
import os
import signal
import struct
import time

from target import libc
from target.arch import abi as abis
from target.cli import AgentError
from target.strace import decode
from target.strace.memory import Memory
from target.strace.output import Output, message

INFO_SIZE = 88
FLUSH_INTERVAL = 0.5  # seconds: the oldest line a file being written may hold back
OP_ENTRY, OP_EXIT, OP_SECCOMP = 1, 2, 3
# struct ptrace_syscall_info: op, arch, ip, sp, then entry {nr, args[6]} or exit {rval, is_error}
ENTRY_INFO = struct.Struct("=B3xIQQ7Q")
EXIT_INFO = struct.Struct("=B23xqB")
SYSCALL_STOP = signal.SIGTRAP | 0x80
GROUP_STOPS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
FORK_EVENTS = (libc.PTRACE_EVENT_FORK, libc.PTRACE_EVENT_VFORK, libc.PTRACE_EVENT_CLONE)
EXECS = ("execve", "execveat")
EXITS = ("exit", "exit_group")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
BASE_OPTIONS = (libc.PTRACE_O_TRACESYSGOOD | libc.PTRACE_O_TRACEEXEC)
FOLLOW_OPTIONS = (libc.PTRACE_O_TRACEFORK | libc.PTRACE_O_TRACEVFORK | libc.PTRACE_O_TRACECLONE)


class Interrupted(Exception):
    """Raised from a signal handler to get the tracer out of wait4()."""


class Tracee(object):
    __slots__ = ("pid", "mem", "call", "traced", "entry_ns", "entry_stime", "started", "hidden",
                 "counts", "abi", "attached", "filtered", "injected", "signal", "tgid")

    def __init__(self, pid, abi, hidden=False, attached=False):
        self.pid = pid
        self.mem = Memory(pid)
        self.call = None          # the decode.Call in flight between entry and exit
        self.traced = False       # ... and whether it is shown
        self.entry_ns = 0
        self.entry_stime = 0.0
        self.started = False      # its first stop (the attach/seize stop) has been seen
        self.hidden = hidden      # a spawned child before its execve: not shown, like strace
        self.counts = {}          # syscall name -> calls seen, for inject's when=
        self.injected = None      # the Injection applied to the call in flight
        self.signal = 0           # a signal to deliver when it resumes (inject's signal=)
        self.abi = abi
        self.attached = attached  # attached with -p: detached (not killed) when we stop
        self.filtered = False     # under our seccomp filter: syscalls arrive as seccomp stops
        self.tgid = None          # its process (thread group) id, looked up when needed


class Tracer(object):
    def __init__(self, options, filters, decode_options, summary=None, json_lines=None):
        """options: see target.strace.cli.TraceOptions; filters: target.strace.filters.Filters;
        summary: a target.strace.summary.Summary for -c/-C; json_lines: a JsonLines for --json
        (instead of the text) or --json-output (next to it: options.text).

        Each event goes to both that exist; self.out is None without text (--json, -c)."""
        self.opts = options
        self.filters = filters
        self._unblock = None      # the signal mask to restore once run() handles signals
        self.dopts = decode_options
        self.summary = summary
        self.json = json_lines
        self.out = None if not options.text or options.summary_only else Output(
            options.output, options.follow, options.separately, options.timestamps,
            options.relative, options.syscall_times)
        self.tracees = {}
        self.native = abis.native()
        if self.native is None:
            raise AgentError("no syscall table for this architecture (%s)" % os.uname().machine)
        self.kernel_arch = self.native.name
        self.info = ctypes.create_string_buffer(INFO_SIZE)
        self.info_address = ctypes.addressof(self.info)
        self.info_bytes = memoryview(self.info).cast("B")
        self.use_regs = False
        self.seccomp = False
        self.main_pid = None
        self.main_status = None
        self.events = 0
        self.stop_reason = None
        self.waiting = False      # blocked in waitpid: a signal handler may break out
        self.options = BASE_OPTIONS | (FOLLOW_OPTIONS if options.follow else 0)

    # --- starting ---------------------------------------------------------------------

    def spawn(self, path, argv, env, seccomp_filter=None):
        """Fork, let the child stop itself, seize it, then let it (install the seccomp filter
        and) exec. Its syscalls are hidden until the execve, as in strace."""
        options = self.options | libc.PTRACE_O_EXITKILL
        if seccomp_filter is not None:
            options |= libc.PTRACE_O_TRACESECCOMP
        pid = os.fork()
        if pid == 0:
            _child(path, argv, env, seccomp_filter)
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            raise AgentError("exec: the child ended before it could be traced")
        try:
            libc.ptrace(libc.PTRACE_SEIZE, pid, 0, options)
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AgentError("ptrace(PTRACE_SEIZE, %d): %s" % (pid, os.strerror(e.errno)))
        self.seccomp = seccomp_filter is not None   # a filter may be in place: never detach
        self.main_pid = pid
        self.add(pid, hidden=True)
        os.kill(pid, signal.SIGCONT)
        return pid

    def attach(self, pids):
        """Seize running processes (all their threads with -f) and interrupt them once.
        Stop signals wait until run() has its handlers, as strace blocks them while it
        attaches: killed in between, we would leave without reporting the detach."""
        if self._unblock is None:
            self._unblock = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for pid in pids:
            tids = _threads(pid) if self.opts.follow else [pid]
            for tid in tids:
                try:
                    libc.ptrace(libc.PTRACE_SEIZE, tid, 0, self.options)
                    libc.ptrace(libc.PTRACE_INTERRUPT, tid, 0, 0)
                except OSError as e:
                    if tid != pid:
                        continue          # a thread that just ended
                    raise AgentError("attach: ptrace(PTRACE_SEIZE, %d): %s"
                                     % (pid, os.strerror(e.errno)))
                self.add(tid, attached=True)
                self.message("Process %d attached" % tid)

    def add(self, pid, hidden=False, attached=False):
        tracee = self.tracees.get(pid)
        if tracee is None:
            tracee = self.tracees[pid] = Tracee(pid, self.native, hidden, attached)
            if self.out is not None:
                self.out.live = len(self.tracees)
        return tracee

    # --- the loop ---------------------------------------------------------------------

    def run(self):
        """Follow every tracee until none is left (or a limit or a signal stops us)."""
        deadline = None
        if self.opts.max_duration:
            deadline = time.monotonic() + self.opts.max_duration
        self._install_handlers(deadline)
        if self._unblock is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._unblock)
        try:
            while self.tracees and self.stop_reason is None:
                try:
                    self.waiting = True
                    if self.stop_reason is not None:
                        break                  # the handler came just before the flag
                    if self.summary is None:   # wait4's rusage is only for -c; it costs
                        pid, status = os.waitpid(-1, libc.WALL)
                        usage = None
                    else:
                        pid, status, usage = os.wait4(-1, libc.WALL)
                except Interrupted:
                    continue
                except ChildProcessError:
                    break
                finally:
                    self.waiting = False
                self.handle(pid, status, usage)
                if self.opts.max_events and self.events >= self.opts.max_events:
                    self.stop_reason = "max-events"
        finally:
            self._restore_handlers()
            if self.tracees:
                self.stop_all()
        return self.main_status

    def handle(self, pid, status, usage):
        tracee = self.tracees.get(pid)
        if tracee is None:            # a new child can report before its parent's fork event
            tracee = self.add(pid)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.ended(tracee, status)
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if sig == SYSCALL_STOP:
            self.syscall_stop(tracee, usage)
            # inject's signal=: the kernel delivers a signal given at a syscall stop (at an
            # event stop, a seccomp one too, it would be dropped)
            sig, tracee.signal = tracee.signal, 0
            self.resume(tracee, sig)
        elif event:
            self.event_stop(tracee, event, sig, usage)
        elif not tracee.started:
            tracee.started = True
            self.resume(tracee)
        else:
            self.signal_stop(tracee, sig)

    def resume(self, tracee, sig=0):
        # With a seccomp filter, syscalls come as seccomp stops: PTRACE_CONT outside them.
        request = libc.PTRACE_SYSCALL
        if tracee.filtered and tracee.call is None:
            request = libc.PTRACE_CONT
        if libc.ptrace_call(request, tracee.pid, 0, sig) == -1:
            err = ctypes.get_errno()
            if err != errno.ESRCH:       # it died meanwhile: its exit is on the way
                raise OSError(err, "ptrace: %s" % os.strerror(err))

    def event_stop(self, tracee, event, sig, usage):
        if event == libc.PTRACE_EVENT_SECCOMP:
            tracee.filtered = True        # the filter is in place (it always traces execve)
            self.syscall_stop(tracee, usage)
        elif event in FORK_EVENTS:
            child = self.add(libc.ptrace_geteventmsg(tracee.pid))
            child.hidden, child.filtered = tracee.hidden, tracee.filtered
            if not tracee.hidden and self.opts.output is None:
                self.message("Process %d attached" % child.pid)
        elif event == libc.PTRACE_EVENT_EXEC:
            self.exec_event(tracee)
        elif event == libc.PTRACE_EVENT_STOP:
            if not tracee.started:
                tracee.started = True
            elif sig in GROUP_STOPS:
                self.show(tracee, "--- stopped by %s ---" % decode.signal_name(sig))
                try:
                    libc.ptrace(libc.PTRACE_LISTEN, tracee.pid, 0, 0)
                except OSError:
                    pass
                return
        self.resume(tracee)

    def exec_event(self, tracee):
        """A non-leader thread that execs takes over the leader's pid: the kernel reports the
        exec on the leader's pid and gives the former tid."""
        former = libc.ptrace_geteventmsg(tracee.pid)
        if former != tracee.pid and former in self.tracees:
            gone = self.tracees.pop(former)
            tracee.call, tracee.traced = gone.call, gone.traced
            tracee.entry_ns, tracee.entry_stime = gone.entry_ns, gone.entry_stime
            if self.out is not None:
                self.out.live = len(self.tracees)
            if not self.opts.quiet:
                self.show(tracee, "+++ superseded by execve in pid %d +++" % former)
        tracee.mem.close()
        tracee.mem = Memory(tracee.pid)

    def signal_stop(self, tracee, sig):
        try:
            raw = libc.ptrace_getsiginfo(tracee.pid)
        except OSError:
            raw = None
        if raw is not None and not tracee.hidden and self.filters.signal_shown(sig):
            self.events += 1
            # the kernel gives the siginfo in the tracer's layout, whatever the tracee runs
            if self.json is not None:
                self.json.signal(tracee, decode.siginfo_json(raw, self.native))
            if self.out is not None:
                self.show(tracee, "--- %s ---" % decode.siginfo_text(raw, self.native))
        self.resume(tracee, sig)

    def ended(self, tracee, status):
        call = tracee.call
        if call is not None and tracee.traced and self.out is not None:
            self.out.finish(tracee, call.name, " <unfinished ...>)", "= ?")
        if os.WIFEXITED(status):
            text = "+++ exited with %d +++" % os.WEXITSTATUS(status)
        elif self.filters.signal_shown(os.WTERMSIG(status)):
            text = "+++ killed by %s %s+++" % (decode.signal_name(os.WTERMSIG(status)),
                                              "(core dumped) " if os.WCOREDUMP(status) else "")
        else:
            text = None
        if self.json is not None:
            self.json.ended(tracee, status)
        if text and self.opts.quiet < 2:
            self.show(tracee, text)
        if tracee.pid == self.main_pid:
            self.main_status = status
        del self.tracees[tracee.pid]
        tracee.mem.close()
        if self.out is not None:
            self.out.live = len(self.tracees)

    def message(self, text):
        """strace's own notes on stderr (not with -q, nor where they would break --json;
        --json-output's file never gets them), after the trace lines already written."""
        if self.opts.quiet or not self.opts.text and self.opts.output is None:
            return
        if self.out is not None and self.out.main is not None:
            self.out.main.flush()
        message(text)

    def show(self, tracee, text):
        if self.out is not None and not tracee.hidden:
            self.out.line(tracee, text)

    # --- syscalls ---------------------------------------------------------------------

    def syscall_stop(self, tracee, usage):
        if self.use_regs:
            self.regs_stop(tracee, usage)
            return
        size = libc.ptrace_call(libc.PTRACE_GET_SYSCALL_INFO, tracee.pid, INFO_SIZE,
                                self.info_address)
        if size == -1:
            err = ctypes.get_errno()
            if err == errno.ESRCH:
                return
            if err not in (errno.EIO, errno.EINVAL):
                raise OSError(err, "ptrace(PTRACE_GET_SYSCALL_INFO): %s" % os.strerror(err))
            self.use_regs = True          # Linux < 5.3
            self.regs_stop(tracee, usage)
            return
        op = self.info_bytes[0]
        if op == OP_EXIT:
            _, rval, is_error = EXIT_INFO.unpack_from(self.info)
            self.syscall_exit(tracee, rval, bool(is_error), usage)
        elif op in (OP_ENTRY, OP_SECCOMP) and size >= 80:
            if tracee.call is not None and op == OP_SECCOMP:
                return                    # the entry stop came first (resumed with SYSCALL)
            values = ENTRY_INFO.unpack_from(self.info)
            self.syscall_entry(tracee, values[1], values[4], values[5:], values[3], usage)

    def regs_stop(self, tracee, usage):
        from target.strace import regs
        facts = regs.syscall_regs(tracee.pid, self.kernel_arch)
        if tracee.call is None:
            self.syscall_entry(tracee, facts.abi.audit_arch, facts.nr, facts.args, facts.sp, usage)
        else:
            self.syscall_exit(tracee, facts.retval, -4096 < facts.retval < 0, usage)

    def syscall_entry(self, tracee, arch, nr, args, sp, usage):
        abi = tracee.abi
        if abi.audit_arch != arch:
            abi = tracee.abi = abis.by_audit_arch(arch) or abi
        call = decode.Call(tracee.pid, abi, nr, args)
        call.sp = sp                      # rt_sigreturn reads the signal frame there
        tracee.call = call
        tracee.entry_ns = time.monotonic_ns()
        if usage is not None:
            tracee.entry_stime = usage.ru_stime
        if tracee.hidden and call.name in EXECS:
            tracee.hidden = False
        tracee.traced = not tracee.hidden and self.filters.traced(call.name, nr)
        if tracee.traced and self.filters.tracing_paths:   # -P, before decoding anything
            tracee.traced = self.filters.path_matches(
                tracee.pid, *decode.path_args(call, tracee.mem))
        if not tracee.traced:
            return
        if self.filters.injections:
            self.inject_entry(tracee, call)
        decode.decode_entry(call, tracee.mem, self.dopts)
        if call.name in EXITS:            # no exit stop will come: strace ends the line now
            self.exit_call(tracee, call)
        elif self.out is not None and not self.opts.delay_lines:
            self.out.begin(tracee, decode.entry_text(call))

    def inject_entry(self, tracee, call):
        count = tracee.counts[call.name] = tracee.counts.get(call.name, 0) + 1
        injection = self.filters.injection(call.name, count, call.nr)
        if injection is None:
            return
        if injection.signal:
            tracee.signal = injection.signal
        if injection.delay_enter:
            time.sleep(injection.delay_enter)
        if injection.error is not None or injection.retval is not None:
            from target.strace import inject
            nr = call.abi.numbers[injection.syscall] if injection.syscall else -1
            inject.set_syscall(tracee.pid, self.kernel_arch, nr)
        tracee.injected = injection

    def inject_exit(self, tracee, rval, is_error):
        """The injected outcome replaces the kernel's: (rval, is_error) as the tracee sees it."""
        injection, tracee.injected = tracee.injected, None
        if injection.delay_exit:
            time.sleep(injection.delay_exit)
        if injection.error is None and injection.retval is None:
            return rval, is_error, False
        from target.strace import inject
        value = -injection.error if injection.error is not None else injection.retval
        inject.set_return(tracee.pid, self.kernel_arch, value)
        return value, injection.error is not None, True

    def exit_call(self, tracee, call):
        tracee.call = None
        if not self.filters.status_shown(False, unfinished=True):
            return
        self.events += 1
        if self.json is not None:
            self.json.syscall(tracee, call, tracee.entry_ns, None)
        if self.out is not None:
            self.out.begin(tracee, decode.entry_text(call))
            self.out.finish(tracee, call.name, ")", "= ?")

    def syscall_exit(self, tracee, rval, is_error, usage):
        call = tracee.call
        tracee.call = None
        if call is None or not tracee.traced:
            return
        now = time.monotonic_ns()
        wall = (now - tracee.entry_ns) / 1e9
        injected = False
        if tracee.injected is not None:
            rval, is_error, injected = self.inject_exit(tracee, rval, is_error)
        decode.decode_exit(call, tracee.mem, self.dopts, rval, is_error)
        if self.summary is not None:
            self.summary.add(tracee.pid, call.name,
                             wall if self.opts.wall_clock else usage.ru_stime - tracee.entry_stime,
                             is_error, tracee.abi)
        if not self.filters.status_shown(is_error):
            return                        # with a status filter lines wait for the exit
        self.events += 1
        if self.json is not None:
            self.json.syscall(tracee, call, tracee.entry_ns, now - tracee.entry_ns, injected)
        if self.out is not None:
            if self.opts.delay_lines:
                self.out.begin(tracee, decode.entry_text(call))
            ret = decode.return_text(call) + (" (INJECTED)" if injected else "")
            self.out.finish(tracee, call.name, decode.exit_text(call), ret, wall)

    # --- stopping ---------------------------------------------------------------------

    def _install_handlers(self, deadline):
        # The handlers only break a wait: raised anywhere else, the exception could leave a
        # stop taken from the kernel but never resumed.
        def interrupt(signum, frame):
            self.stop_reason = self.stop_reason or "signal %d" % signum
            if self.waiting:
                raise Interrupted()

        def tick(signum, frame):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.stop_reason = self.stop_reason or "max-duration"
                if self.waiting:
                    raise Interrupted()
                return
            if self.waiting:          # nothing is being written while we wait
                self.flush()
            arm(now)

        def arm(now):
            delay = FLUSH_INTERVAL if self.flushes() else None
            if deadline is not None:
                delay = min(delay or deadline - now, deadline - now)
            if delay is not None:
                signal.setitimer(signal.ITIMER_REAL, max(delay, 0.001))

        self._old = {}
        wanted = list(STOP_SIGNALS)
        if self.main_pid is not None:
            wanted.remove(signal.SIGINT)  # a ^C reaches the traced command; we report its end
            self._old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for signum in wanted:
            self._old[signum] = signal.signal(signum, interrupt)
        self._old[signal.SIGALRM] = signal.signal(signal.SIGALRM, tick)
        arm(time.monotonic())

    def flushes(self):
        """Whether output sits in buffers between ticks: files (a terminal or stderr
        shared with the tracee is written line by line)."""
        streams = ([self.out.main] + list(self.out.streams.values()) if self.out else []) + \
            ([self.json.stream] if self.json else [])
        return any(s is not None and not s.interactive for s in streams) or bool(
            self.out and self.out.separately)

    def flush(self):
        """Write out what the buffers hold, so that a file being written shows every line
        that is more than FLUSH_INTERVAL old (as strace does) and a kill loses little."""
        if self.out is not None:
            for stream in [self.out.main] + list(self.out.streams.values()):
                if stream is not None:
                    stream.flush()
        if self.json is not None:
            self.json.stream.flush()

    def _restore_handlers(self):
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._old.items():
            signal.signal(signum, handler)

    def stop_all(self):
        """Leave no tracee behind: detach what we attached to (it runs on), kill what we
        started (a seccomp filter or EXITKILL would take it down anyway)."""
        for tracee in list(self.tracees.values()):
            if tracee.attached or not self.seccomp and self.stop_reason in ("max-events", "max-duration"):
                self.detach(tracee)
            else:
                _kill(tracee.pid)
        while self.tracees:
            try:
                pid, status, _ = os.wait4(-1, libc.WALL)
            except ChildProcessError:
                break
            tracee = self.tracees.get(pid)
            if tracee is None:
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self.ended(tracee, status)
            elif tracee.attached or not self.seccomp:
                self.detach_stopped(tracee, status)

    def detach(self, tracee):
        """Detach now if it is in a ptrace-stop (one we had not resumed yet), else interrupt
        it: stop_all detaches it at the stop that follows."""
        if libc.ptrace_call(libc.PTRACE_DETACH, tracee.pid, 0, 0) == 0:
            self.detached(tracee)
            return
        try:
            libc.ptrace(libc.PTRACE_INTERRUPT, tracee.pid, 0, 0)
        except OSError:
            self.tracees.pop(tracee.pid, None)

    def detach_stopped(self, tracee, status):
        sig = os.WSTOPSIG(status)
        inject = 0
        if not status >> 16 and sig != SYSCALL_STOP and tracee.started:
            inject = sig                  # a signal on its way in: let it through
        try:
            libc.ptrace(libc.PTRACE_DETACH, tracee.pid, 0, inject)
        except OSError:
            pass
        self.detached(tracee)

    def detached(self, tracee):
        if self.out is not None and self.out.open_line and self.out.open_line[0] is tracee:
            self.out.end_open_line(None, " <detached ...>")
        self.message("Process %d detached" % tracee.pid)
        del self.tracees[tracee.pid]
        tracee.mem.close()

    def summary_stream(self):
        """Where -c/-C tables go: after the lines, into the same file (or stderr); never into
        the --json-output file."""
        if self.out is not None:
            return self.out.main
        return self.json.stream if self.json is not None and not self.opts.text else None

    def close(self):
        if self.out is not None:
            self.out.close()
        if self.json is not None:
            self.json.close()


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _threads(pid):
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return [pid]


def _child(path, argv, env, seccomp_filter):
    """In the forked child: stop until seized, then (filter and) exec. Never returns."""
    try:
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by Python; exec keeps that
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSTOP)
        if seccomp_filter is not None:
            from target.strace import seccomp
            try:
                seccomp.install_filter(seccomp_filter)
            except OSError:
                pass                      # traced without the filter: slower, still right
        os.execve(path, argv, env)
    except OSError as e:
        os.write(2, ("strace: exec: %s\n" % e.strerror).encode())
    finally:
        os._exit(1)
