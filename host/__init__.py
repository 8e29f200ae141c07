"""The boardtrace controller: profiles, agent build, transports and tools on boards."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
