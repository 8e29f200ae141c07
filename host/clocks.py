"""The one clock of a capture: CLOCK_MONOTONIC. The kernel log is stamped with the printk clock,
which drifts from it (NTP slews CLOCK_MONOTONIC only); the agent measures the difference at the
start and end of a session (manifest clocks.*.printk_minus_monotonic_ns)."""

from __future__ import annotations

from typing import Any


def printk_offset_ns(manifest: dict[str, Any]) -> int:
    """What to subtract from a dmesg time (ns) to put it on CLOCK_MONOTONIC: the mean of the
    session's measurements, 0 when it has none (older captures, no /dev/kmsg write access)."""
    clocks = manifest.get("clocks") or {}
    found = [c.get("printk_minus_monotonic_ns") for c in (clocks.get("start") or {}, clocks.get("end") or {})]
    found = [f for f in found if isinstance(f, int)]
    return sum(found) // len(found) if found else 0
