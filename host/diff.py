"""Two pulled sessions compared (two boards, two kernels, two boots): `invoke diff A B`.

`compare(a, b)` reads both with host.report.load_session and returns a `Diff`:

- kernel log lines new in B at warning level or worse, and probe/driver messages of A missing
  from B, both compared on normalised texts (`normalise`: addresses, PIDs, durations, times and
  other numbers become placeholders),
- per-initcall durations from initcall_debug lines, slowest changes first,
- syscall count / error / total time changes per syscall name (strace.jsonl),
- ftrace event count changes per event name, and lost events.

`summary_text(diff, top)` is the terminal's compact version (top N rows per section);
`render_diff(diff, out)` writes the full tables as one self-contained diff.html
(templates/diff.html.j2 with report.css inlined, jinja2 autoescaped, no external URL).
docs/diff.md says what is compared and how.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from host.errors import BoardtraceError
from host.initcalls import is_initcall_debug, parse_initcalls
from host.report import TEMPLATES, DmesgRecord, Facts, Session, load_session
from target.dmesg.record import facility_name, level_name

DIFF = "diff.html"
TEMPLATE = "diff.html.j2"
TOP = 20
WARNING = 4                     # LEVELS[4] == "warn": this level or worse (lower) counts
KERN = 0                        # the kernel's own facility: where probe/driver messages come from

# ---- normalising kernel log texts ----------------------------------------------------------------

_HEX_DIGITS = "[0-9a-fA-F]"
_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    # a printk time inside the text ("[   12.345678]")
    (r"\[\s*\d+\.\d+\]", "[<time>]"),
    # addresses and other hex: 0x..., and bare hex words of 8+ digits with a letter and a digit
    # (ffff8880035e1000, dead0000000000100) -- pure words like "deadbeef" or "facade" stay, and
    # so do device-tree device names ("ff580000.usb": the same device on every boot)
    (rf"\b0[xX]{_HEX_DIGITS}+\b", "<hex>"),
    (rf"\b{_HEX_DIGITS}{{2}}(?::{_HEX_DIGITS}{{2}}){{5}}\b", "<mac>"),
    (rf"\b(?={_HEX_DIGITS}*[a-fA-F])(?={_HEX_DIGITS}*\d){_HEX_DIGITS}{{8,}}\b(?!\.[A-Za-z])", "<hex>"),
    # durations: "after 123 usecs", "took 1.5ms", "in 2 seconds"
    (r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ns|nsecs?|us|usecs?|µs|ms|msecs?|s|secs?|seconds?|jiffies)\b", "<dur>"),
    # PIDs: "pid 123", "PID: 123", "tgid=12", "comm[123]", initcall_debug's "@ 1"
    (r"\b((?:pid|PID|Pid|tgid|TGID|tid|TID)\b[:=]?\s?)\d+", r"\1<pid>"),
    (r"(?<=[\w.-]\[)\d+(?=\])", "<pid>"),
    (r"(?<=@ )\d+\b", "<pid>"),
    # any other number that is not part of a name (eth0, virtio1, sda1 and CPU0 stay)
    (r"(?<![\w<])\d+(?:\.\d+)*", "<n>"),
    (r"\s+", " "),
))

# boardtrace's own session markers (target/session.py): differ between any two sessions
_MARKER = re.compile(r"^boardtrace: session \S+ (?:starts|ends)$")
# what drivers and the driver core say when a device comes up
PROBE = re.compile(
    r"\b(?:probed?|probes|probing|registered|registering|driver|drivers|initiali[sz](?:ed|ing)|loaded|found|"
    r"detected|attached|bound|ready)\b|\bnew\b.*\b(?:device|card|disk|interface)\b"
    # a "subsystem device: " prefix (dev_printk): "virtio_net virtio1: ", "usb 1-1: ", "sd 0:0:0:0: "
    r"|^[\w.-]+ \(?[\w.:-]+\)?: ", re.I)


def normalise(text: str) -> str:
    """The text of a kernel log line with what varies between boots replaced by placeholders:
    <time>, <hex>, <mac>, <dur>, <pid>, <n> (docs/diff.md)."""
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.strip()


def _compared(record: DmesgRecord) -> bool:
    """Lines the log comparisons look at: not boardtrace's markers, not initcall_debug lines
    (those are the boot timing section)."""
    text = record.text
    return not (_MARKER.match(text) or is_initcall_debug(text))


# ---- the result --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    a: int
    b: int

    @property
    def delta(self) -> int:
        return self.b - self.a


@dataclass(frozen=True)
class LogLine:
    """Kernel log records of one side sharing one normalised text."""
    key: str                    # the normalised text
    text: str                   # the first record's text, as logged
    level: int                  # the most severe level among them
    facility: int
    count: int
    ts_ns: int                  # the first one's time (CLOCK_MONOTONIC)

    @property
    def level_name(self) -> str:
        return level_name(self.level)

    @property
    def facility_name(self) -> str:
        return facility_name(self.facility) or str(self.facility)


@dataclass(frozen=True)
class Initcall:
    name: str                   # function, with " [module]" for a module's init
    a_us: int | None            # None: not called on that side
    b_us: int | None
    a_ret: int | None
    b_ret: int | None

    @property
    def delta_us(self) -> int:
        return (self.b_us or 0) - (self.a_us or 0)


@dataclass(frozen=True)
class SyscallChange:
    name: str
    count: Change
    errors: Change
    time_ns: Change             # total time spent in the calls that returned


@dataclass(frozen=True)
class EventChange:
    name: str
    count: Change


@dataclass(frozen=True)
class LostChange:
    what: str
    count: Change


@dataclass
class Side:
    dir: Path
    facts: Facts
    syscalls: int
    events: int
    dmesg: int
    recorded: dict[str, bool]   # strace, ftrace, dmesg: did the session record it
    notes: list[str]


@dataclass
class Diff:
    a: Side
    b: Side
    new_warnings: list[LogLine] = field(default_factory=list)
    missing_probes: list[LogLine] = field(default_factory=list)
    initcalls: list[Initcall] = field(default_factory=list)
    initcall_note: str = ""     # why there is no timing comparison, or what is one-sided
    syscalls: list[SyscallChange] = field(default_factory=list)
    events: list[EventChange] = field(default_factory=list)
    lost: list[LostChange] = field(default_factory=list)


# ---- comparing ---------------------------------------------------------------------------------

def load(directory: Path | str) -> Session:
    """load_session with one clear line for anything that is not a session directory."""
    d = Path(directory)
    if not d.is_dir():
        raise BoardtraceError(f"{d}: not a session directory" + ("" if d.exists() else " (no such directory)"))
    return load_session(d.resolve())      # resolved: the board is the parent directory's name


def compare(a: Path | str, b: Path | str) -> Diff:
    sa, sb = load(a), load(b)
    diff = Diff(_side(sa), _side(sb))
    a_keys = {normalise(r.text) for r in sa.dmesg if _compared(r)}
    b_keys = {normalise(r.text) for r in sb.dmesg if _compared(r)}
    diff.new_warnings = _grouped(sb.dmesg, lambda r, key: r.level <= WARNING and key not in a_keys)
    diff.missing_probes = _grouped(sa.dmesg, lambda r, key: r.facility == KERN and key not in b_keys
                                   and PROBE.search(r.text) is not None)
    diff.initcalls, diff.initcall_note = _initcalls(sa.dmesg, sb.dmesg)
    diff.syscalls = _syscalls(sa, sb)
    diff.events = _events(sa, sb)
    diff.lost = _lost(sa, sb)
    return diff


def _side(s: Session) -> Side:
    return Side(s.dir, s.facts, len(s.syscalls), len(s.events), len(s.dmesg),
                {"strace": (s.dir / "strace.jsonl").exists(), "ftrace": (s.dir / "ftrace.jsonl").exists(),
                 "dmesg": (s.dir / "dmesg.kmsg").exists() or (s.dir / "dmesg.json").exists()},
                s.notes)


def _grouped(records: Iterable[DmesgRecord], keep: Callable[[DmesgRecord, str], bool]) -> list[LogLine]:
    """The records `keep` selects, one LogLine per normalised text: most severe first, then in
    time order."""
    groups: dict[str, list[DmesgRecord]] = {}
    for r in sorted(records, key=lambda r: (r.ts_ns, r.seq)):
        if not _compared(r):
            continue
        key = normalise(r.text)
        if key in groups:
            groups[key].append(r)
        elif keep(r, key):
            groups[key] = [r]
    lines = [LogLine(key, rs[0].text, min(r.level for r in rs), rs[0].facility, len(rs), rs[0].ts_ns)
             for key, rs in groups.items()]
    return sorted(lines, key=lambda line: (line.level, line.ts_ns))


def _initcalls(a: list[DmesgRecord], b: list[DmesgRecord]) -> tuple[list[Initcall], str]:
    ia, ib = parse_initcalls(a), parse_initcalls(b)
    if not ia and not ib:
        return [], "no initcall_debug lines (boot with initcall_debug)"
    note = ""
    if not ia or not ib:
        note = f"no initcall_debug lines in {'A' if not ia else 'B'} (boot it with initcall_debug)"
    rows = [Initcall(name, ia.get(name, (None, None))[0], ib.get(name, (None, None))[0],
                     ia.get(name, (None, None))[1], ib.get(name, (None, None))[1])
            for name in ia.keys() | ib.keys()]
    rows.sort(key=lambda i: (-abs(i.delta_us), i.name))
    return rows, note


def _syscalls(a: Session, b: Session) -> list[SyscallChange]:
    def totals(s: Session) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for c in s.syscalls:
            t = out.setdefault(c.name, [0, 0, 0])
            t[0] += 1
            t[1] += c.error is not None
            t[2] += c.duration_ns or 0
        return out

    ta, tb = totals(a), totals(b)
    zero = [0, 0, 0]
    rows = [SyscallChange(name, *(Change(ta.get(name, zero)[i], tb.get(name, zero)[i]) for i in range(3)))
            for name in ta.keys() | tb.keys()]
    # the size of a change: calls and failures first (what the program did), then time
    rows.sort(key=lambda r: (-(abs(r.count.delta) + abs(r.errors.delta)), -abs(r.time_ns.delta), r.name))
    return rows


def _events(a: Session, b: Session) -> list[EventChange]:
    ca, cb = Counter(e.event for e in a.events), Counter(e.event for e in b.events)
    rows = [EventChange(name, Change(ca[name], cb[name])) for name in ca.keys() | cb.keys()]
    rows.sort(key=lambda r: (-abs(r.count.delta), r.name))
    return rows


def _lost(a: Session, b: Session) -> list[LostChange]:
    def counts(s: Session) -> list[int]:
        return [sum(s.ftrace_lost.values()), sum(s.ftrace_lost_records.values()),
                s.facts.lost.get("ftrace", 0), s.facts.lost.get("dmesg", 0)]

    names = ("ftrace: ring buffer (ftrace/meta.json)", "ftrace: lost records (ftrace.jsonl)",
             "ftrace: session total (state.json)", "kernel log: session total (state.json)")
    return [LostChange(name, Change(x, y)) for name, x, y in zip(names, counts(a), counts(b))]


# ---- text --------------------------------------------------------------------------------------

def duration(ns: int) -> str:
    """A duration (or a signed change of one) in the unit that reads best."""
    sign, n = ("-" if ns < 0 else ""), abs(ns)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if n >= size:
            return f"{sign}{n / size:.3g} {unit}" if n < 100 * size else f"{sign}{n / size:.0f} {unit}"
    return f"{sign}{n} ns"


def signed_duration(ns: int) -> str:
    return ("+" if ns > 0 else "") + duration(ns)


def _us(us: int | None) -> str:
    return "-" if us is None else duration(us * 1000)


def _table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip()
            for row in rows]


def _more(total: int, top: int) -> list[str]:
    return [f"  ... {total - top} more in {DIFF}"] if total > top else []


def _side_line(label: str, s: Side) -> str:
    f = s.facts
    return (f"{label}: {f.board} {f.session_id} ({f.arch}, kernel {f.kernel}): {s.syscalls:,} syscalls, "
            f"{s.events:,} ftrace events, {s.dmesg:,} kernel log records  [{s.dir}]")


def _not_recorded(diff: Diff, part: str) -> list[str]:
    missing = [label for label, s in (("A", diff.a), ("B", diff.b)) if not s.recorded[part]]
    return [f"  ({part} was not recorded in {' and '.join(missing)})"] if missing else []


def summary_text(diff: Diff, top: int = TOP) -> str:
    """The compact terminal summary: every section with its first `top` rows."""
    out = [_side_line("A", diff.a), _side_line("B", diff.b), ""]

    for title, lines in ((f"kernel log lines new in B at warning level or worse: {len(diff.new_warnings)}",
                          diff.new_warnings),
                         (f"probe/driver messages of A missing from B: {len(diff.missing_probes)}",
                          diff.missing_probes)):
        out.append(title)
        out += _not_recorded(diff, "dmesg")
        if lines:
            out += _table([[line.level_name, f"x{line.count}", line.text] for line in lines[:top]],
                          (False, True, False))
            out += _more(len(lines), top)
        out.append("")

    if diff.initcalls:
        out.append(f"boot timing (initcall_debug), slowest changes first: {len(diff.initcalls)} initcalls")
        if diff.initcall_note:
            out.append(f"  {diff.initcall_note}")
        total_a = sum(i.a_us or 0 for i in diff.initcalls)
        total_b = sum(i.b_us or 0 for i in diff.initcalls)
        rows = [["initcall", "A", "B", "change"]]
        rows += [[i.name, _us(i.a_us), _us(i.b_us), signed_duration(i.delta_us * 1000)] for i in diff.initcalls[:top]]
        rows.append(["all initcalls", _us(total_a), _us(total_b), signed_duration((total_b - total_a) * 1000)])
        out += _table(rows, (False, True, True, True))
        out += _more(len(diff.initcalls), top)
    else:
        out.append(f"boot timing: {diff.initcall_note}")
    out.append("")

    changed = [r for r in diff.syscalls if r.count.delta or r.errors.delta]
    out.append(f"syscalls (A -> B): {len(diff.syscalls)} names, {len(changed)} with other counts or errors")
    out += _not_recorded(diff, "strace")
    if diff.syscalls:
        rows = [["syscall", "calls", "", "errors", "", "total time", ""]]
        rows += [[r.name, f"{r.count.a} -> {r.count.b}", f"{r.count.delta:+d}",
                  f"{r.errors.a} -> {r.errors.b}", f"{r.errors.delta:+d}",
                  f"{duration(r.time_ns.a)} -> {duration(r.time_ns.b)}", signed_duration(r.time_ns.delta)]
                 for r in diff.syscalls[:top]]
        out += _table(rows, (False, True, True, True, True, True, True))
        out += _more(len(diff.syscalls), top)
    out.append("")

    out.append(f"ftrace events (A -> B): {len(diff.events)} event names")
    out += _not_recorded(diff, "ftrace")
    if diff.events:
        rows = [["event", "A", "B", "change"]]
        rows += [[r.name, str(r.count.a), str(r.count.b), f"{r.count.delta:+d}"] for r in diff.events[:top]]
        out += _table(rows, (False, True, True, True))
        out += _more(len(diff.events), top)
    lost = [r for r in diff.lost if r.count.a or r.count.b]
    if lost:
        out.append("lost events (A -> B):")
        out += _table([[r.what, str(r.count.a), str(r.count.b), f"{r.count.delta:+d}"] for r in lost],
                      (False, True, True, True))
    else:
        out.append("lost events: none in A or B")
    for label, s in (("A", diff.a), ("B", diff.b)):
        if s.notes:
            out.append(f"{label}: {len(s.notes)} unreadable lines skipped (see {DIFF})")
    return "\n".join(out)


# ---- the page ----------------------------------------------------------------------------------

def _css() -> Markup:
    text = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    if "</style" in text.lower():
        raise BoardtraceError(f"{TEMPLATES / 'report.css'}: must not contain </style")
    return Markup(text)


def render_diff(diff: Diff, out: Path | str) -> Path:
    """Write the full comparison as one self-contained HTML page (via OUT.part); return its path."""
    out = Path(out)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = duration
    env.filters["signed_duration"] = signed_duration
    env.filters["us"] = _us
    html = env.get_template(TEMPLATE).render(
        diff=diff, css=_css(),
        total_a=sum(i.a_us or 0 for i in diff.initcalls), total_b=sum(i.b_us or 0 for i in diff.initcalls))
    part = out.with_name(out.name + ".part")
    try:
        part.write_text(html, encoding="utf-8")
        os.replace(part, out)
    except OSError as e:
        raise BoardtraceError(f"{out}: {e.strerror or e}") from None
    return out


def diff_sessions(a: Path | str, b: Path | str, out: Path | str | None = None, top: int = TOP) -> str:
    """`invoke diff`: compare, write diff.html (next to B unless `out`), return the summary text
    with the page's path as its last line."""
    if top < 1:
        raise BoardtraceError(f"--top {top}: must be at least 1")
    diff = compare(a, b)
    path = render_diff(diff, Path(out) if out else Path(b) / DIFF)
    return summary_text(diff, top) + f"\n\n{path}"
