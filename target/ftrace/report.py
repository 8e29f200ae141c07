"""`agent ftrace report DIR [--json] [--cpu N]...`: decode a capture directory to the
kernel's `trace` text or to JSON Lines (docs/ftrace-json.md)."""

import itertools
import sys

from target.cli import AgentError, Parser
from target.ftrace import decode, graph

BATCH = 2000  # lines per write


def parse_args(argv):
    parser = Parser(prog="agent ftrace report",
                    description="Decode a capture directory made by `ftrace record`.")
    parser.add_argument("dir", help="the capture directory")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines, one object per event (docs/ftrace-json.md)")
    parser.add_argument("--cpu", type=int, action="append", default=[], metavar="N",
                        help="only this CPU (repeatable)")
    return parser.parse_args(argv)


def summary(capture, counts):
    """Lost and corrupt counts for stderr: never silent about missing data."""
    notes = []
    for cpu, lost in sorted(capture.lost_stats().items()):
        if lost:
            notes.append("cpu %d: %d events lost (stats)" % (cpu, lost))
    if counts["lost"]:
        notes.append("%d pages follow lost events" % counts["lost"])
    if counts["corrupt"]:
        notes.append("%d corrupt pages or records" % counts["corrupt"])
    if counts["unknown"]:
        notes.append("%d records of unknown event types" % counts["unknown"])
    return notes


def main(argv):
    args = parse_args(argv)
    capture = decode.Capture(args.dir)
    unknown_cpus = [c for c in args.cpu if c not in capture.cpus]
    if unknown_cpus:
        raise AgentError("no cpu %d in this capture (cpus: %s)" % (
            unknown_cpus[0], ", ".join(map(str, capture.cpus))))
    counts = {"event": 0, "lost": 0, "corrupt": 0, "unknown": 0}
    if args.json:
        write_lines(sys.stdout, decode.json_lines(capture, args.cpu, counts))
    else:
        write_lines(sys.stdout, text_lines(capture, args.cpu), counts)
    for note in summary(capture, counts):
        print("ftrace report: %s" % note, file=sys.stderr)
    return 0


def write_lines(out, lines, counts=None):
    """Write the lines, BATCH at a time; with counts, count the text's marker lines."""
    lines = iter(lines)
    while True:
        batch = list(itertools.islice(lines, BATCH))
        if not batch:
            break
        batch.append("")
        chunk = "\n".join(batch)
        if counts is not None and "CPU:" in chunk:
            for line in batch:
                if line.startswith("CPU:"):
                    count_marker(line, counts)
        out.write(chunk)
    out.flush()


def text_lines(capture, cpus=None):
    """The kernel's `trace` text of a capture: function_graph's own format for that tracer."""
    if capture.meta.get("tracer") == "function_graph":
        return graph.text_lines(capture, cpus)
    return decode.text_lines(capture, cpus)


def count_marker(line, counts):
    if "[LOST" in line:
        counts["lost"] += 1
    elif "[CORRUPT" in line:
        counts["corrupt"] += 1
    elif "[UNKNOWN" in line:
        counts["unknown"] += 1
