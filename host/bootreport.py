"""Boot timing from the kernel's initcall_debug lines: `invoke boot-report`.

The kernel log comes from a board (the agent's `dmesg --json`; a QEMU board is booted with
`initcall_debug` on its kernel command line) or from a file (a saved `dmesg --json`, a pulled
session's dmesg.json, or the session directory). host/initcalls.py pairs each initcall's
`calling` line with its `returned ... after N usecs` line. `table_text` is the terminal's table,
slowest first; `render_html` writes one self-contained page (templates/bootreport.html.j2, CSS
inlined, no external URL) with a bootgraph.pl-style chart: one bar per initcall on the boot time
axis. docs/boot-report.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from host.deploy import deploy
from host.diff import duration
from host.errors import BoardtraceError
from host.initcalls import Initcall, initcalls
from host.profiles import Board, load_board
from host.report import TEMPLATES, DmesgRecord, dmesg_json_records, read_dmesg
from host.transport import Transport, open_transport

TOP = 20
INITCALL_DEBUG = "initcall_debug"
PAGE = "boot-report.html"
HOME = Path("sessions")         # where `invoke capture` pulls sessions: the page of a board goes there too
TEMPLATE = "bootreport.html.j2"
STYLES = ("report.css", "bootreport.css")
AXIS_PX = 22                    # the chart's time axis above the rows
LEFT_PX = 24                    # room for the first tick's label
ROW_PX = 14
TIME_PX = 1000                  # the width of the boot time axis
LABEL_PX = 300                  # room right of the axis for the names of the last bars
CHAR_PX = 6.6                   # the width of a label character (11px monospace)
_LINUX_VERSION = re.compile(r"^Linux version (\S+)")


@dataclass(frozen=True)
class BootReport:
    source: str                 # the board, or the file the log came from
    kernel: str                 # from the log's "Linux version" line; "?" without one
    records: int                # kernel log records read
    first_seq: int              # > 0: the log buffer lost the start of the boot
    initcalls: list[Initcall]   # slowest first

    @property
    def total_us(self) -> int:
        return sum(call.duration_us for call in self.initcalls)

    @property
    def nonzero(self) -> list[Initcall]:
        return [call for call in self.initcalls if call.returned != 0]

    @property
    def end_ns(self) -> int:
        """When the last initcall returned (since boot)."""
        return max((call.end_ns for call in self.initcalls), default=0)


def slowest_first(calls: Sequence[Initcall]) -> list[Initcall]:
    return sorted(calls, key=lambda call: (-call.duration_us, call.start_ns, call.name))


def make_report(records: Sequence[DmesgRecord], source: str) -> BootReport:
    ordered = sorted(records, key=lambda r: (r.seq, r.ts_ns))
    kernel = next((m[1] for r in ordered if (m := _LINUX_VERSION.match(r.text))), "?")
    return BootReport(source, kernel, len(ordered), ordered[0].seq if ordered else 0,
                      slowest_first(initcalls(ordered)))


# ---- reading the kernel log ------------------------------------------------------------------------

def parse_dmesg_json(text: str, where: str) -> list[DmesgRecord]:
    """The records of a `dmesg --json` document; empty text is no records (dmesg prints
    nothing then)."""
    if not text.strip():
        return []
    try:
        document = json.loads(text)
    except ValueError as e:
        raise BoardtraceError(f"{where}: not a `dmesg --json` document ({e})") from None
    if not isinstance(document, dict) or not isinstance(document.get("dmesg"), list):
        raise BoardtraceError(f"{where}: not a `dmesg --json` document (no \"dmesg\" list)")
    try:
        return dmesg_json_records(document)
    except (ValueError, TypeError, AttributeError) as e:
        raise BoardtraceError(f"{where}: a `dmesg --json` record that is not one ({e})") from None


def records_from_file(path: Path) -> list[DmesgRecord]:
    """A saved `dmesg --json`, or a pulled session directory (its dmesg.kmsg or dmesg.json)."""
    if path.is_dir():
        return read_dmesg(path, [])
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise BoardtraceError(f"{path}: no such file") from None
    except OSError as e:
        raise BoardtraceError(f"{path}: {e.strerror or e}") from None
    return parse_dmesg_json(text, str(path))


def records_from_board(board: Board, reboot: bool = False, trust_new_host_key: bool = False) -> list[DmesgRecord]:
    """The board's whole kernel log through the agent; a QEMU board is booted with
    initcall_debug first when it is down, or restarted with it when `reboot`."""
    if board.qemu is not None:
        _qemu_up_with_initcall_debug(board, reboot)
    elif reboot:
        raise BoardtraceError(f"--reboot: board {board.name} is not a QEMU board; add {INITCALL_DEBUG} to its "
                              f"kernel command line (bootloader) and reboot it")
    transport = open_transport(board, trust_new_host_key)
    try:
        return read_kernel_log(transport)
    finally:
        transport.close()


def read_kernel_log(transport: Transport) -> list[DmesgRecord]:
    """The whole kernel log of the transport's board: the agent's `dmesg --json`."""
    result = deploy(transport).run(["dmesg", "--json"])
    name = transport.board.name
    if result.code != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise BoardtraceError(f"board {name}: agent dmesg: {lines[-1] if lines else f'exit {result.code}'}")
    return parse_dmesg_json(result.stdout.decode("utf-8", "replace"), f"board {name}")


def _qemu_up_with_initcall_debug(board: Board, reboot: bool) -> None:
    """Boot the board with initcall_debug when it is down; restart it only when asked."""
    from host.qemu import STATE, ensure_up
    from host.qemu.runner import missing_append, status

    running = status(board, STATE)
    if running is not None and not reboot and missing_append(running, INITCALL_DEBUG):
        raise BoardtraceError(f"board {board.name} is running without {INITCALL_DEBUG} (kernel command line: "
                              f"{running.append}); `invoke boot-report --board {board.name} --reboot` restarts it "
                              f"with {INITCALL_DEBUG}")
    ensure_up(board, INITCALL_DEBUG, restart=reboot)


def no_initcalls(report: BootReport, qemu_board: bool) -> str:
    """The one line for a kernel log without initcall_debug lines."""
    if report.records == 0:
        return f"{report.source}: no kernel log records"
    line = (f"{report.source}: no initcall_debug lines in the kernel log ({report.records} records): "
            f"boot the kernel with {INITCALL_DEBUG} on its command line")
    if qemu_board:
        line += f" (`invoke boot-report --board {report.source} --reboot` restarts this QEMU board with it)"
    if report.first_seq > 0:
        line += (f"; the log no longer holds its first {report.first_seq} records (overwritten: read it soon "
                 f"after boot, or boot with a bigger log_buf_len=)")
    return line


# ---- the terminal's table --------------------------------------------------------------------------

def _us(us: int) -> str:
    return duration(us * 1000) if us else "0 µs"


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.6f}"


def summary_line(report: BootReport) -> str:
    return (f"all {len(report.initcalls)} initcalls: {_us(report.total_us)} in total (sum of their durations), "
            f"{len(report.nonzero)} returned non-zero; the last returned {report.end_ns / 1e9:.3f} s after boot")


def lost_start_note(report: BootReport) -> str:
    if report.first_seq == 0:
        return ""
    return (f"the kernel log no longer holds its first {report.first_seq} records (overwritten): early "
            f"initcalls are missing; read it soon after boot, or boot with a bigger log_buf_len= (e.g. 4M)")


def table_text(report: BootReport, top: int = TOP) -> str:
    """The `top` slowest initcalls as a table, then the totals."""
    out = [f"{report.source}: kernel {report.kernel}, {len(report.initcalls)} initcalls (initcall_debug), "
           f"slowest first"]
    if note := lost_start_note(report):
        out.append(f"  note: {note}")
    rows = [["initcall", "module", "start (s)", "duration", "returned"]]
    rows += [[call.function, call.module or "-", _seconds(call.start_ns), _us(call.duration_us), str(call.returned)]
             for call in report.initcalls[:top]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = (False, False, True, True, True)
    out += ["  " + "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip()
            for row in rows]
    if len(report.initcalls) > top:
        out.append(f"  ... {len(report.initcalls) - top} more in the HTML page")
    out.append(f"  {summary_line(report)}")
    return "\n".join(out)


# ---- the page --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    call: Initcall
    rank: int                   # 0: the slowest
    order: int                  # 0: the first to start
    x: float
    width: float
    label: str
    label_x: float
    label_end: bool             # the label is left of the bar (text-anchor: end)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


def _tick_step(span_ns: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten (ns) that gives at most 12 ticks."""
    magnitude = 1000
    while True:
        for m in (1, 2, 5):
            if span_ns <= 12 * m * magnitude:
                return m * magnitude
        magnitude *= 10


def chart(report: BootReport) -> tuple[list[Bar], list[Tick]]:
    span = max(report.end_ns, 1)
    scale = TIME_PX / span
    calls = report.initcalls
    by_start = sorted(range(len(calls)), key=lambda rank: (calls[rank].start_ns, calls[rank].end_ns))
    order = {rank: position for position, rank in enumerate(by_start)}
    bars = []
    for rank, call in enumerate(calls):
        x, width = LEFT_PX + call.start_ns * scale, max(call.duration_us * 1000 * scale, 1.0)
        label = f"{call.name} {_us(call.duration_us)}"
        label_end = x + width + 4 + len(label) * CHAR_PX > LEFT_PX + TIME_PX + LABEL_PX
        bars.append(Bar(call, rank, order[rank], x, width, label, x - 3 if label_end else x + width + 3, label_end))
    step = _tick_step(span)
    ticks = [Tick(LEFT_PX + t * scale, f"{t / 1e9:g} s") for t in range(0, span + 1, step)]
    return bars, ticks


def _styles() -> Markup:
    texts = []
    for name in STYLES:
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        if "</style" in text.lower():
            raise BoardtraceError(f"{TEMPLATES / name}: must not contain </style")
        texts.append(text)
    return Markup("\n".join(texts))


def render_html(report: BootReport, out: Path) -> Path:
    """Write the page (via OUT.part) and return its path."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["us"] = _us
    env.filters["seconds"] = _seconds
    bars, ticks = chart(report)
    html = env.get_template(TEMPLATE).render(
        report=report, bars=bars, ticks=ticks, css=_styles(), summary=summary_line(report),
        note=lost_start_note(report), axis_px=AXIS_PX, row_px=ROW_PX,
        width_px=LEFT_PX + TIME_PX + LABEL_PX, height_px=AXIS_PX + ROW_PX * len(bars) + 4)
    part = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(html, encoding="utf-8")
        os.replace(part, out)
    except OSError as e:
        raise BoardtraceError(f"{out}: {e.strerror or e}") from None
    return out


# ---- `invoke boot-report` --------------------------------------------------------------------------

def boot_report(board: str | None = None, dmesg: str | None = None, out: str | None = None, top: int = TOP,
                reboot: bool = False, trust_new_host_key: bool = False) -> str:
    """Read the kernel log (of the board, or the --dmesg file), write the page (default: next to
    the file, or sessions/<board>/boot-report.html), return the table with the page's path as its
    last line."""
    if top < 1:
        raise BoardtraceError(f"--top {top}: must be at least 1")
    profile = None
    if dmesg is not None:
        if board is not None or reboot:
            raise BoardtraceError("--dmesg FILE reads a saved kernel log: it goes without --board and --reboot")
        path = Path(dmesg)
        report = make_report(records_from_file(path), str(path))
        default_out = (path if path.is_dir() else path.parent) / PAGE
    else:
        profile = load_board(board or "local")
        report = make_report(records_from_board(profile, reboot, trust_new_host_key), profile.name)
        default_out = HOME / profile.name / PAGE
    if not report.initcalls:
        raise BoardtraceError(no_initcalls(report, profile is not None and profile.qemu is not None))
    page = render_html(report, Path(out) if out else default_out)
    return table_text(report, top) + f"\n\n{page}"
