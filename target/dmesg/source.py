"""Where records come from: /dev/kmsg, syslog(2) (klogctl), or a saved file.

Every source has a `name` (reported as "source" in JSON) and `records()`, a generator of
Record objects and, for /dev/kmsg, Lost markers where the kernel overwrote records before
we read them.
"""

import errno
import os

from target.cli import AgentError
from target.dmesg.record import parse_kmsg, parse_syslog

KMSG_PATH = "/dev/kmsg"
# One read() returns one record; a buffer too small for it fails with EINVAL *and consumes
# the record*. The kernel's limit is 1 KiB of text, escaped up to 4x, plus the dictionary.
READ_SIZE = 8192 + 1


class Lost(object):
    """`count` records between the last one read and record `seq` were overwritten."""

    __slots__ = ("count", "seq")

    def __init__(self, count, seq):
        self.count = count
        self.seq = seq


class KmsgSource(object):
    """/dev/kmsg, opened non-blocking; follow mode waits in poll() for the next record.

    whence: os.SEEK_DATA (first record after the last syslog CLEAR, what dmesg shows),
    os.SEEK_SET (oldest record still in the buffer) or os.SEEK_END (only new records).
    """

    name = "kmsg"

    def __init__(self, path=KMSG_PATH, whence=os.SEEK_DATA, follow=False):
        self.path = path
        self.follow = follow
        self.invalid = 0
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(self.fd, 0, whence)
            self.first = self._read()  # kernels < 3.5 fail here with EINVAL
        except BaseException:
            os.close(self.fd)
            raise

    def _read(self):
        """One record, or None when there is none yet."""
        while True:
            try:
                return os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return None
            except BrokenPipeError:
                # EPIPE: records were overwritten under us and the position moved to the
                # oldest one left; the seq gap of the next record says how many we missed.
                continue

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def records(self, idle=None, stop=None):
        """Yield records; `idle()` is called each time we caught up, before waiting (follow).
        A StopSignals `stop` ends the generator between two records."""
        fd, expected = self.fd, None
        data = self.first if self.first is not None else self._read()
        self.first = None
        poller = None
        read, parse = os.read, parse_kmsg
        while True:
            if data is None:
                if not self.follow or (stop is not None and stop.requested):
                    return
                if idle is not None:
                    idle()
                if poller is None:
                    import select
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    if stop is not None:
                        poller.register(stop.fd, select.POLLIN)
                poller.poll()
                if stop is not None and stop.requested:
                    return
            else:
                try:
                    record = parse(data)
                except ValueError:
                    self.invalid += 1
                else:
                    if expected is not None and record.seq > expected:
                        yield Lost(record.seq - expected, record.seq)
                    expected = record.seq + 1
                    yield record
                    if stop is not None and stop.requested:
                        return
            try:
                data = read(fd, READ_SIZE)
            except BlockingIOError:
                data = None
            except BrokenPipeError:
                data = self._read()     # see _read()


class StopSignals(object):
    """SIGINT/SIGTERM end --follow between two records, never in the middle of a write():
    the handler only sets a flag, and the wakeup fd gets poll() out of its wait. A second
    signal interrupts whatever is going on."""

    def __init__(self):
        import signal
        self.requested = False
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handler)

    def _handler(self, signum, frame):
        if self.requested:          # asked twice: we are stuck (say, in a blocked write)
            raise KeyboardInterrupt
        self.requested = True


class SyslogSource(object):
    """syslog(2) SYSLOG_ACTION_READ_ALL: the whole buffer as text; no seq, no dictionary."""

    name = "syslog"

    def __init__(self, bufsize=0, read_clear=False):
        from target import libc  # ctypes costs start-up time: only load it when needed
        self.libc = libc
        self.bufsize = bufsize or libc.klogctl(libc.SYSLOG_ACTION_SIZE_BUFFER) or 16384
        self.data = self._read_all()
        self.invalid = 0

    def _read_all(self):
        # +8 like util-linux; the kernel never returns more than the buffer holds.
        return self.libc.klogctl(self.libc.SYSLOG_ACTION_READ_ALL, self.bufsize + 8)

    def raw(self):
        return self.data

    def records(self, idle=None, stop=None):
        return parse_syslog(self.data)

    def close(self):
        pass


class SyslogFileSource(SyslogSource):
    """-F FILE: a saved syslog(2)-format log (`dmesg -r -S > file`)."""

    name = "file"

    def __init__(self, path):
        self.data = _read_file(path)
        self.invalid = 0


class KmsgFileSource(object):
    """-K FILE: saved /dev/kmsg records separated by NUL bytes (util-linux 2.40 format)."""

    name = "kmsg-file"

    def __init__(self, path):
        self.data = _read_file(path)
        self.invalid = 0

    def records(self, idle=None, stop=None):
        for chunk in self.data.split(b"\0"):
            if not chunk.strip():
                continue
            try:
                yield parse_kmsg(chunk)
            except ValueError:
                self.invalid += 1

    def close(self):
        pass


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise AgentError("cannot open %s: %s" % (path, e.strerror or e))


def open_kernel_log(force_syslog=False, follow=False, whence=os.SEEK_DATA, bufsize=0):
    """/dev/kmsg if it can be opened and read, else syslog(2); returns (source, note).

    note says why /dev/kmsg was not used (empty when it was)."""
    if not force_syslog:
        try:
            return KmsgSource(KMSG_PATH, whence, follow), ""
        except OSError as e:
            note = "%s: %s" % (KMSG_PATH, os.strerror(e.errno) if e.errno else e)
            if follow:
                raise AgentError("--follow needs %s (%s)" % (KMSG_PATH, note))
    else:
        note = "-S/--syslog given"
    try:
        return SyslogSource(bufsize), note
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        if e.errno in (errno.EPERM, errno.EACCES):
            reason += " (needs CAP_SYSLOG, or kernel.dmesg_restrict=0)"
        raise AgentError("read kernel buffer failed: syslog(2): %s%s"
                         % (reason, "; " + note if note and not force_syslog else ""))
