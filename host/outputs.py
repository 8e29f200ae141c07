"""Render a pulled capture session's outputs next to its inputs.

A verified session directory (sessions/<board>/<id>/) may hold:

  dmesg.kmsg   NUL-separated /dev/kmsg records  -> dmesg.txt, dmesg.json
  ftrace/      an `agent ftrace record` capture -> ftrace.txt, ftrace.jsonl, trace.dat

The outputs are byte for byte what the agent prints for the same input
(`agent dmesg -K dmesg.kmsg --color=never`, `agent dmesg -K dmesg.kmsg --json`,
`agent ftrace report ftrace [--json]`), made in-process by the agent's own decoders and
formatters, streamed to the file. Each output is written as <name>.part and renamed when
complete; rendering again replaces the outputs.

A part that cannot be rendered (bad input) becomes a note and the other parts still are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from host.errors import BoardtraceError
from host.tracedat import write_tracedat
from target.cli import AgentError

KMSG_INPUT = "dmesg.kmsg"
FTRACE_INPUT = "ftrace"
BATCH = 4096            # ftrace lines joined per write()
BAD_INPUT = (AgentError, BoardtraceError, OSError, ValueError)


@dataclass(frozen=True)
class Rendered:
    files: tuple[Path, ...]      # the outputs written, in order
    notes: tuple[str, ...]       # one-line notes for the user


def render_session(session_dir: Path) -> Rendered:
    """Write every output whose input the session holds; see the module docstring."""
    session_dir = Path(session_dir)
    files: list[Path] = []
    notes: list[str] = []
    if (session_dir / KMSG_INPUT).exists():
        _render_dmesg(session_dir, files, notes)
    if (session_dir / FTRACE_INPUT).exists():
        _render_ftrace(session_dir, files, notes)
    return Rendered(tuple(files), tuple(notes))


@contextlib.contextmanager
def _part(final: Path, mode: str) -> Iterator[IO[Any]]:
    """A file open at <final>.part, renamed to final if the block completes, else removed."""
    part = final.with_name(final.name + ".part")
    encoding = None if "b" in mode else "utf-8"
    f = open(part, mode, encoding=encoding, newline=None if encoding is None else "")
    try:
        with f:
            yield f
        os.replace(part, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


# ---- dmesg -----------------------------------------------------------------------------------

def _render_dmesg(session_dir: Path, files: list[Path], notes: list[str]) -> None:
    kmsg = str(session_dir / KMSG_INPUT)
    for name, options in (("dmesg.txt", ["--color=never"]), ("dmesg.json", ["--json"])):
        out = session_dir / name
        try:
            invalid, missing = _write_dmesg(["-K", kmsg] + options, out)
        except BAD_INPUT as e:
            notes.append(f"dmesg: cannot render: {name}: {_reason(e)}")
            continue
        files.append(out)
        if name == "dmesg.txt":    # the same records feed both outputs: say it once
            if invalid:
                notes.append(f"dmesg: skipped {invalid} malformed records")
            if missing:
                notes.append(f"dmesg: {missing} records missing (gaps in the sequence numbers)")


def _write_dmesg(argv: list[str], out: Path) -> tuple[int, int]:
    """`agent dmesg ARGV` into out, by the CLI's own steps (target/dmesg/cli.py main) with
    a file for stdout. Returns (malformed records skipped, records missing by seq gaps)."""
    from target.dmesg import cli
    args = cli.parse_args(argv)
    src, _ = cli.open_source(args)
    time_format = cli.resolve_time_format(args)
    formatter = cli.make_formatter(args, src, time_format, 0)
    gaps = _SeqGaps(src)
    with _part(out, "wb") as f:
        output = cli.Output(f)
        try:
            cli.print_records(args, gaps, formatter, output, None)
        finally:
            src.close()
        output.add(formatter.close())
        output.flush()
    return src.invalid, gaps.missing


class _SeqGaps:
    """A dmesg source that passes records through and counts the seq numbers skipped."""

    def __init__(self, src: Any) -> None:
        self.src = src
        self.missing = 0

    def records(self, idle: Callable[[], None] | None = None, stop: Any = None) -> Iterator[Any]:
        expected = None
        for record in self.src.records(idle, stop):
            seq = getattr(record, "seq", None)
            if seq is not None:
                if expected is not None and seq > expected:
                    self.missing += seq - expected
                expected = seq + 1
            yield record


# ---- ftrace ----------------------------------------------------------------------------------

def _render_ftrace(session_dir: Path, files: list[Path], notes: list[str]) -> None:
    from target.ftrace import decode, report
    capture_dir = session_dir / FTRACE_INPUT
    try:
        capture = decode.Capture(str(capture_dir))
    except BAD_INPUT as e:
        capture = None
        notes.append(f"ftrace: cannot render: {_reason(e)}")
    counts: dict[str, int] | None = None
    if capture is not None:
        for name, writer in (("ftrace.txt", _write_ftrace_text),
                             ("ftrace.jsonl", _write_ftrace_json)):
            out = session_dir / name
            try:
                written = writer(capture, out)
            except BAD_INPUT as e:
                notes.append(f"ftrace: cannot render: {name}: {_reason(e)}")
                continue
            files.append(out)
            counts = counts or written
        if counts is not None:
            notes.extend("ftrace: " + note for note in report.summary(capture, counts))
    out = session_dir / "trace.dat"
    part = out.with_name(out.name + ".part")
    try:
        write_tracedat(capture_dir, part)       # itself atomic: a failure leaves no .part
        os.replace(part, out)
    except BAD_INPUT as e:
        notes.append(f"ftrace: cannot render: trace.dat: {_reason(e)}")
    else:
        files.append(out)


def _new_counts() -> dict[str, int]:
    return {"event": 0, "lost": 0, "corrupt": 0, "unknown": 0}


def _write_ftrace_text(capture: Any, out: Path) -> dict[str, int]:
    """`agent ftrace report DIR` stdout (target/ftrace/report.py), streamed."""
    from target.ftrace import report
    counts = _new_counts()

    def lines() -> Iterator[str]:
        for line in report.text_lines(capture):
            if line.startswith("CPU:"):
                report.count_marker(line, counts)
            yield line
    _write_lines(out, lines())
    return counts


def _write_ftrace_json(capture: Any, out: Path) -> dict[str, int]:
    """`agent ftrace report DIR --json` stdout, streamed."""
    from target.ftrace import decode
    counts = _new_counts()
    _write_lines(out, decode.json_lines(capture, None, counts))
    return counts


def _write_lines(out: Path, lines: Iterator[str]) -> None:
    """The lines, newline-terminated, written BATCH at a time to out (atomically)."""
    with _part(out, "w") as f:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= BATCH:
                batch.append("")
                f.write("\n".join(batch))
                batch = []
        if batch:
            batch.append("")
            f.write("\n".join(batch))


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__
