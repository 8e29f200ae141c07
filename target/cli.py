"""Command-line plumbing shared by every agent tool: one-line errors, exit codes."""

import argparse
import os
import sys


class AgentError(Exception):
    """A failure the user can act on: printed as one line on stderr, exit status 1."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, told the width so that it does not import shutil (and with it
    bz2, lzma and fnmatch) on every start-up just to build a parser."""

    def __init__(self, prog):
        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError):
            width = int(os.environ.get("COLUMNS", 80))
        argparse.HelpFormatter.__init__(self, prog, width=width - 2)


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (no usage dump) and exits 2."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        argparse.ArgumentParser.__init__(self, **kwargs)

    def error(self, message):
        self.exit(2, "%s: %s\n" % (self.prog, message))


def run(prog, main, argv):
    """Run a tool's main(argv) and turn every failure into one line and an exit status."""
    try:
        return main(argv) or 0
    except AgentError as e:
        print("%s: %s" % (prog, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (dmesg | head): stop quietly, like util-linux.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        where = "%s: " % e.filename if e.filename else ""
        print("%s: %s%s" % (prog, where, e.strerror or e), file=sys.stderr)
        return 1
    except Exception as e:  # never a traceback unless asked for
        if os.environ.get("BOARDTRACE_DEBUG"):
            raise
        print("%s: internal error: %r (set BOARDTRACE_DEBUG=1 for the traceback)" % (prog, e),
              file=sys.stderr)
        return 70
