"""Reading a child's output pipe until a marker shows up, without blocking past a deadline."""

import os
import select
import time


def read_until(stream, wanted, buf=b"", timeout=20):
    """buf plus what stream's pipe gives until wanted (bytes) is in it, the pipe closes or
    timeout passes."""
    deadline = time.monotonic() + timeout
    while wanted not in buf and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.1)[0]:
            chunk = os.read(stream.fileno(), 1 << 20)
            if not chunk:
                break
            buf += chunk
    return buf
