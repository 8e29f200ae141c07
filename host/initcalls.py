"""initcall_debug lines of a kernel log (init/main.c), the one parser of them: `invoke boot-report`
charts them, `invoke diff` compares their durations.

    calling  foo_init+0x0/0x40 @ 1
    initcall foo_init+0x0/0x40 returned 0 after 123 usecs
    calling  bar_init+0x0/0x1000 [bar] @ 87
    initcall bar_init+0x0/0x1000 [bar] returned -19 after 45 usecs

Old kernels said "msecs".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

_FUNCTION = r"(?P<fn>[^\s+]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[(?P<mod>[^\]]+)\])?"
RETURNED = re.compile(rf"^initcall {_FUNCTION} returned (?P<ret>-?\d+) after (?P<time>\d+) (?P<unit>usecs|msecs)\b")
CALLING = re.compile(rf"^calling +{_FUNCTION} @ (?P<pid>\d+)")


class LogRecord(Protocol):
    ts_ns: int
    text: str


@dataclass(frozen=True)
class Initcall:
    function: str
    module: str | None          # None: built into the kernel
    start_ns: int               # its `calling` line's time (printk clock: since boot)
    duration_us: int            # as the kernel measured it
    returned: int
    pid: int | None             # who called it; None when the `calling` line is missing

    @property
    def name(self) -> str:
        return self.function + (f" [{self.module}]" if self.module else "")

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_us * 1000


def is_initcall_debug(text: str) -> bool:
    return RETURNED.match(text) is not None or CALLING.match(text) is not None


def initcalls(records: Iterable[LogRecord]) -> list[Initcall]:
    """Every initcall that returned, in the order of their return lines. Each pairs with the
    earliest unanswered `calling` line of the same function; without one (it was overwritten in
    the log buffer) its start is the return line's time minus the duration."""
    pending: dict[tuple[str, str | None], list[tuple[int, int]]] = {}
    found: list[Initcall] = []
    for r in records:
        if (called := CALLING.match(r.text)) is not None:
            pending.setdefault((called["fn"], called["mod"]), []).append((r.ts_ns, int(called["pid"])))
        elif (returned := RETURNED.match(r.text)) is not None:
            us = int(returned["time"]) * (1000 if returned["unit"] == "msecs" else 1)
            waiting = pending.get((returned["fn"], returned["mod"]))
            start, pid = waiting.pop(0) if waiting else (r.ts_ns - us * 1000, None)
            found.append(Initcall(returned["fn"], returned["mod"], start, us, int(returned["ret"]), pid))
    return found


def parse_initcalls(records: Iterable[LogRecord]) -> dict[str, tuple[int, int]]:
    """initcall name -> (µs, return value); an initcall that runs more than once (a module
    loaded twice) adds up, the last return value counts."""
    found: dict[str, tuple[int, int]] = {}
    for call in initcalls(records):
        found[call.name] = (found.get(call.name, (0, 0))[0] + call.duration_us, call.returned)
    return found
