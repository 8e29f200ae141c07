"""One progress line per board for captures and pulls: rewritten in place on a terminal,
printed every few seconds otherwise (logs, CI, several boards at once)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

EVERY = 5.0  # seconds between lines when they cannot be rewritten in place
_lock = threading.Lock()  # boards share the stream


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def describe(state: dict) -> str:
    """"running 12.3 s, 4.5 MB, strace 1,234, dmesg 25, ftrace 37 pages, lost 0"."""
    parts = [f"{state.get('state', '?')} {state.get('elapsed', 0):.1f} s",
             size_text(state.get("bytes", 0))]
    events = state.get("events") or {}
    if "strace" in events:
        parts.append(f"strace {events['strace']:,}")
    if "dmesg" in events:
        parts.append(f"dmesg {events['dmesg']:,}")
    if "ftrace_pages" in events:
        parts.append(f"ftrace {events['ftrace_pages']:,} pages")
    lost = sum((state.get("lost") or {}).values())
    parts.append(f"lost {lost:,}")
    return ", ".join(parts)


class Progress:
    """Shows the latest state of one board's capture or pull."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, in_place: bool | None = None):
        self.label, self.stream = label, stream
        self.in_place = stream.isatty() if in_place is None else in_place
        self.last_shown = 0.0
        self.pending = ""

    def show(self, text: str) -> None:
        now = time.monotonic()
        self.pending = text
        if self.in_place:
            self._write(f"\r\033[K{self.label}: {text}")
        elif now - self.last_shown >= EVERY:
            self.line()
        if not self.in_place or now - self.last_shown >= EVERY:
            self.last_shown = now

    def line(self, text: str | None = None) -> None:
        """Print text (or the latest state) as a line of its own."""
        text = self.pending if text is None else text
        if text:
            self._write(("\r\033[K" if self.in_place else "") + f"{self.label}: {text}\n")
        self.pending = ""

    def _write(self, text: str) -> None:
        with _lock:
            self.stream.write(text)
            self.stream.flush()
