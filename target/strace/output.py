"""Where trace lines go and how they look around the decoded call: pid prefixes, timestamps,
the column before "= ", durations, and the <unfinished ...> / <... resumed> bookkeeping of
strace when several tracees interleave.
"""

import sys
import time

COLUMN = 40  # strace -a default: "= " starts here when the call is shorter


class Stream(object):
    """One output file: buffered, flushed per line where a person or the tracee shares it."""

    def __init__(self, fileobj, owned):
        self.file = fileobj
        self.owned = owned
        self.parts = []
        self.size = 0
        # stderr is shared with the tracee: line by line, so the two interleave as they happen
        self.interactive = not owned or fileobj.isatty()

    def write(self, text):
        self.parts.append(text)
        self.size += len(text)
        if self.size > 65536 or (self.interactive and text.endswith("\n")):
            self.flush()

    def flush(self):
        if self.parts:
            self.file.write("".join(self.parts))
            self.parts, self.size = [], 0
        self.file.flush()

    def close(self):
        self.flush()
        if self.owned:
            self.file.close()


def open_stream(path, append=False):
    if path is None:
        return Stream(sys.stderr, owned=False)
    try:
        f = open(path, "a" if append else "w", encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        from target.cli import AgentError
        raise AgentError("Can't fopen '%s': %s" % (path, e.strerror))
    return Stream(f, owned=True)


class Output(object):
    """Text lines as strace prints them.

    open_line is the tracee whose line was begun and not ended (a syscall entry printed,
    its exit not yet): anything printed for another tracee ends it with " <unfinished ...>".
    """

    def __init__(self, path=None, follow=False, separately=False, timestamps=0,
                 relative=False, syscall_times=False):
        self.path = path
        self.follow = follow
        self.separately = separately and path is not None
        self.timestamps = timestamps
        self.relative = relative
        self.syscall_times = syscall_times
        self.main = None if self.separately else open_stream(path)
        self.streams = {}
        self.open_line = None       # (tracee, stream, column)
        self.last_stamp = None
        self.live = 1               # tracees alive, for the "[pid N] " rule

    def stream_for(self, pid):
        if not self.separately:
            return self.main
        stream = self.streams.get(pid)
        if stream is None:
            stream = self.streams[pid] = open_stream("%s.%d" % (self.path, pid))
        return stream

    def prefix(self, pid):
        if self.separately:
            pfx = ""
        elif self.path is not None and self.follow:
            pfx = "%-5d " % pid
        elif self.live > 1:
            pfx = "[pid %5d] " % pid
        else:
            pfx = ""
        return pfx + self.stamp()

    def stamp(self):
        if self.relative:
            now = time.monotonic()
            delta = 0.0 if self.last_stamp is None else now - self.last_stamp
            self.last_stamp = now
            return "%6d.%06d " % (int(delta), int(delta * 1e6) % 1000000)
        if not self.timestamps:
            return ""
        now = time.time()
        if self.timestamps >= 3:
            return "%d.%06d " % (int(now), int(now * 1e6) % 1000000)
        clock = time.strftime("%H:%M:%S", time.localtime(now))
        if self.timestamps == 2:
            return "%s.%06d " % (clock, int(now * 1e6) % 1000000)
        return clock + " "

    def end_open_line(self, tracee, how=" <unfinished ...>"):
        """End the line another tracee left open (or this one's, for how=detached)."""
        if self.open_line is not None and self.open_line[0] is not tracee:
            _, stream, _ = self.open_line
            stream.write(how + "\n")
            self.open_line = None

    def begin(self, tracee, text):
        """Print the start of a line for tracee and leave it open."""
        self.end_open_line(tracee)
        stream = self.stream_for(tracee.pid)
        head = self.prefix(tracee.pid) + text
        stream.write(head)
        self.open_line = (tracee, stream, len(head))

    def finish(self, tracee, name, text, ret, duration=None):
        """End tracee's syscall line: continue the open one, or start '<... name resumed>'."""
        if self.open_line is not None and self.open_line[0] is tracee:
            _, stream, column = self.open_line
            self.open_line = None
        else:
            self.end_open_line(tracee)
            stream = self.stream_for(tracee.pid)
            head = self.prefix(tracee.pid) + "<... %s resumed>" % name
            stream.write(head)
            column = len(head)
        line = text + " "
        column += len(line)
        if column < COLUMN:
            line += " " * (COLUMN - column)
        line += ret
        if self.syscall_times and duration is not None:
            line += " <%d.%06d>" % (int(duration), int(duration * 1e6) % 1000000)
        stream.write(line + "\n")

    def line(self, tracee, text):
        """A whole line of its own: signals, exits, '+++ ... +++'."""
        self.end_open_line(None)          # whoever's line is open, this one included
        stream = self.stream_for(tracee.pid)
        stream.write(self.prefix(tracee.pid) + text + "\n")

    def close(self):
        if self.open_line is not None:
            _, stream, _ = self.open_line
            stream.write("\n")
            self.open_line = None
        for stream in [self.main] + list(self.streams.values()):
            if stream is not None:
                stream.close()


def message(text):
    """strace's own messages ("Process N attached") go to stderr, never into -o files."""
    sys.stderr.write("strace: %s\n" % text)
    sys.stderr.flush()

