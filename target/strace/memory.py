"""Reading a tracee's memory: pread(2) on /proc/PID/mem, a page at a time where it matters.

/proc/PID/mem is the cheapest way from Python (about 1 us per read, against 3.6 us for
process_vm_readv through ctypes and 2 us per word for PTRACE_PEEKDATA), and a tracer that has
the tracee stopped is allowed to read it. A read that runs into an unmapped page fails as a
whole, so strings are read page by page up to the first NUL.
"""

import os

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Memory(object):
    """The memory of one process (the thread group shares it), opened on first use."""

    def __init__(self, pid):
        self.pid = pid
        self._fd = None

    def _open(self):
        if self._fd is None:
            self._fd = os.open("/proc/%d/mem" % self.pid, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    def read(self, addr, size):
        """size bytes at addr, or None when any of them cannot be read (or addr is NULL)."""
        if not addr or size < 0:
            return None
        if size == 0:
            return b""
        try:
            data = os.pread(self._open(), size, addr)
        except (OSError, OverflowError):
            return None
        return data if len(data) == size else None

    def read_upto(self, addr, size):
        """As many of size bytes at addr as are readable (page by page), possibly b""."""
        if not addr:
            return b""
        chunks = []
        while size > 0:
            step = min(size, PAGE - addr % PAGE)
            data = self.read(addr, step)
            if data is None:
                break
            chunks.append(data)
            addr, size = addr + step, size - step
        return b"".join(chunks)

    def read_string(self, addr, limit):
        """The NUL-terminated string at addr, reading at most limit bytes: (bytes, terminated),
        or None when addr is NULL or the first byte is unreadable. terminated is False when
        no NUL came within limit bytes (or the string ran into an unreadable page)."""
        if not addr:
            return None
        chunks = []
        got = 0
        while got < limit:
            step = min(limit - got, PAGE - addr % PAGE)
            data = self.read(addr, step)
            if data is None:
                return (b"".join(chunks), False) if chunks else None
            end = data.find(b"\0")
            if end >= 0:
                chunks.append(data[:end])
                return b"".join(chunks), True
            chunks.append(data)
            got += step
            addr += step
        return b"".join(chunks), False

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
