"""Dispatch `python3 -m target <tool> ...` (and `python3 agent.pyz <tool> ...`)."""

import importlib
import sys

from target import VERSION
from target.cli import run

# tool name -> module with main(argv); imported lazily so start-up stays cheap on slow boards
TOOLS = {
    "capture": "target.capture",
    "dmesg": "target.dmesg.cli",
    "ftrace": "target.ftrace.cli",
    "info": "target.info",
    "strace": "target.strace.cli",
}

USAGE = "usage: agent {%s} [options]  (agent <tool> --help for a tool's options)" % "|".join(TOOLS)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print("boardtrace-agent %s" % VERSION)
        return 0
    tool, rest = argv[0], argv[1:]
    if tool not in TOOLS:
        print("agent: unknown tool %r; known: %s" % (tool, ", ".join(TOOLS)), file=sys.stderr)
        return 2
    return run(tool, lambda args: importlib.import_module(TOOLS[tool]).main(args), rest)


if __name__ == "__main__":
    sys.exit(main())
