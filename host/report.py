"""One capture session as one self-contained HTML page: sessions/<board>/<id>/report.html.

`load_session(dir)` reads a pulled session directory (docs/capture.md) into typed records;
`render_report(dir)` writes report.html from templates/report.html.j2 (jinja2, autoescaped).
The page has no external URL: its CSS and JS are inlined, and the data is one JSON document
in a <script type="application/json"> block, kept compact: column arrays, timestamps relative
to the session start and delta-encoded, every text through one string table. The page
aggregates what it draws per pixel and paginates its tables, so a session of a million ftrace
events stays usable (docs/report.md has the measured limits).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shlex
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from host.capture import DEFAULT_FTRACE, DEFAULT_STRACE
from host.clocks import printk_offset_ns
from host.errors import BoardtraceError
from target.dmesg.record import LEVELS, facility_name, level_name, parse_kmsg

REPORT = "report.html"
TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"
STATIC = ("report.css", "report.js")    # inlined into the page
ARGS_MAX = 200                          # characters of an argument summary
FORMAT_VERSION = 2                      # of the embedded JSON (window.boardtraceReport.data)


# ---- the session ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Facts:
    session_id: str
    board: str
    arch: str
    kernel: str
    agent_version: str
    python: str
    state: str
    reason: str
    start_ns: int               # CLOCK_MONOTONIC at the session start: time 0 of the report
    end_ns: int                 # CLOCK_MONOTONIC at the session end
    start_realtime_ns: int | None
    spec: dict[str, Any]
    command: str                # the `invoke capture ...` that runs this session again
    lost: dict[str, int]        # state.json's lost events: dmesg, ftrace


@dataclass(slots=True)          # not frozen: frozen slots classes are slow to make, and there are many
class Syscall:
    pid: int
    tid: int
    name: str
    args: str                   # strace-like summary of the arguments
    retval: int | None
    result: str                 # the return as strace shows it ("3", "-1 ENOENT", "0x5566...")
    error: str | None           # the errno name on failure
    ts_ns: int
    duration_ns: int | None     # None: the call never returned (exit_group)


@dataclass(slots=True)
class ProcessEvent:
    """A signal delivered, a thread that exited or was killed: strace's --- and +++ lines."""
    pid: int
    tid: int
    kind: str                   # signal, exit, killed
    text: str                   # as strace prints it
    ts_ns: int


@dataclass(slots=True)
class FtraceEvent:
    ts_ns: int
    cpu: int
    pid: int
    comm: str
    event: str                  # system:event
    fields: dict[str, Any]
    text: str                   # what the kernel's trace file shows after the timestamp


@dataclass(slots=True)
class DmesgRecord:
    ts_ns: int                  # the printk time: CLOCK_MONOTONIC
    level: int                  # 0 (emerg) .. 7 (debug)
    facility: int
    seq: int
    text: str

    @property
    def level_name(self) -> str:
        return level_name(self.level)

    @property
    def facility_name(self) -> str:
        return facility_name(self.facility) or str(self.facility)


@dataclass
class Session:
    dir: Path
    facts: Facts
    syscalls: list[Syscall] = field(default_factory=list)
    process_events: list[ProcessEvent] = field(default_factory=list)   # filled with syscalls
    events: list[FtraceEvent] = field(default_factory=list)
    dmesg: list[DmesgRecord] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)            # ftrace's CPUs
    ftrace_lost: dict[int, int] = field(default_factory=dict)         # per CPU, ftrace/meta.json
    ftrace_lost_records: dict[int, int] = field(default_factory=dict)  # per CPU, `lost` records
    comms: dict[int, str] = field(default_factory=dict)      # pid -> name (exec or ftrace comm)
    notes: list[str] = field(default_factory=list)           # what could not be read


def load_session(directory: Path | str) -> Session:
    """Read a pulled session directory; raises BoardtraceError when it is not one."""
    d = Path(directory)
    manifest = _json_file(d / "manifest.json", required=True)
    if manifest.get("format") != "boardtrace-session":
        raise BoardtraceError(f"{d / 'manifest.json'}: not a boardtrace session manifest")
    session = Session(d, _facts(d, manifest))
    with _no_gc():
        if (d / "strace.jsonl").exists():
            session.syscalls = list(_syscalls(d / "strace.jsonl", session))
        if (d / "ftrace.jsonl").exists():
            session.events = list(_events(d / "ftrace.jsonl", session))
    meta = _json_file(d / "ftrace" / "meta.json")
    if meta:
        session.ftrace_lost = {int(cpu): int(n or 0) for cpu, n in (meta.get("lost") or {}).items()}
        session.cpus = sorted(set(int(c) for c in meta.get("cpus") or []) | set(session.ftrace_lost))
    session.cpus = sorted(set(session.cpus) | {e.cpu for e in session.events})
    session.dmesg = read_dmesg(d, session.notes, printk_offset_ns(manifest))
    for s in session.syscalls:              # an exec names its process better than a comm
        if s.name.startswith("execve") and s.error is None and s.args.startswith('"'):
            session.comms[s.pid] = os.path.basename(s.args[1:].split('"', 1)[0])[:32]
    return session


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of new objects and no cycles: the cyclic collector would only slow it down
    (halves the time to load a million ftrace events)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _json_file(path: Path, required: bool = False) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        if required:
            raise BoardtraceError(f"{path.parent}: not a session directory (no {path.name})") from None
        return {}
    except (OSError, ValueError) as e:
        raise BoardtraceError(f"{path}: {e}") from None
    return value if isinstance(value, dict) else {}


def _facts(d: Path, manifest: dict[str, Any]) -> Facts:
    state = manifest.get("state") or _json_file(d / "state.json")
    board = manifest.get("board") or {}
    clocks = manifest.get("clocks") or {}
    spec = manifest.get("spec") or _json_file(d / "spec.json")
    start = (clocks.get("start") or {}).get("monotonic_ns") or state.get("start_monotonic_ns") or 0
    end = state.get("end_monotonic_ns") or (clocks.get("end") or {}).get("monotonic_ns") or start
    return Facts(session_id=str(manifest.get("id") or d.name), board=d.parent.name,
                 arch=str((board.get("arch") or {}).get("name") or "?"),
                 kernel=str((board.get("kernel") or {}).get("release") or "?"),
                 agent_version=str((manifest.get("agent") or {}).get("version") or "?"),
                 python=str((manifest.get("agent") or {}).get("python") or "?"),
                 state=str(state.get("state") or "?"), reason=str(state.get("reason") or ""),
                 start_ns=int(start), end_ns=int(end),
                 start_realtime_ns=(clocks.get("start") or {}).get("realtime_ns") or state.get("start_realtime_ns"),
                 spec=spec, command=capture_command(d.parent.name, spec, d.parent.parent),
                 lost={k: int(v or 0) for k, v in (state.get("lost") or {}).items()})


def capture_command(board: str, spec: dict[str, Any], home: Path | None = None) -> str:
    """The `invoke capture` command line that runs a session of this spec again."""
    words = ["invoke", "capture", "--board", board]
    if spec.get("cmd"):
        words += ["--cmd", shlex.join(spec["cmd"])]
    line = shlex.join(words)
    for name, default in (("strace", DEFAULT_STRACE), ("ftrace", DEFAULT_FTRACE)):
        options = spec.get(name)
        if options is None:
            continue
        if list(options) == shlex.split(default):
            line += f" --{name}"
        else:
            line += f" --{name}={shlex.quote(shlex.join(options))}"
    if spec.get("dmesg"):
        line += " --dmesg"
    if spec.get("duration"):
        line += f" --duration {spec['duration']:g}"
    if home is not None and home.name != "sessions":
        line += f" --home {shlex.quote(str(home))}"
    return line


def _jsonl(path: Path, notes: list[str]) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except ValueError:
                if line.strip():
                    notes.append(f"{path.name}:{number}: not JSON, skipped")


def _syscalls(path: Path, session: Session) -> Iterator[Syscall]:
    """The syscalls; signals and thread ends go to session.process_events on the way."""
    for r in _jsonl(path, session.notes):
        if r.get("type") in PROCESS_EVENTS:
            session.process_events.append(ProcessEvent(
                int(r.get("pid") or 0), int(r.get("tid") or r.get("pid") or 0), r["type"],
                process_event_text(r), int(r.get("ts_ns") or 0)))
        if r.get("type") != "syscall":
            continue
        error = r.get("error")
        if error:
            result = f"{r.get('retval') if r.get('retval') is not None else '?'} {error}"
        elif "return" in r:
            result = value_text(r["return"])
        else:
            result = "?" if r.get("retval") is None else str(r["retval"])
        if r.get("return_comment"):
            result += f" ({r['return_comment']})"
        yield Syscall(pid=int(r.get("pid") or 0), tid=int(r.get("tid") or r.get("pid") or 0),
                      name=str(r.get("syscall")), args=args_text(r.get("args") or []),
                      retval=r.get("retval"), result=result, error=error, ts_ns=int(r.get("ts_ns") or 0),
                      duration_ns=r.get("duration_ns"))


PROCESS_EVENTS = ("signal", "exit", "killed")
PROCESS_EVENT_NAMES = {"signal": "signal", "exit": "exited", "killed": "killed"}  # not a syscall's name
_NOT_SIGINFO = ("type", "pid", "tid", "ts_ns", "wall", "signal")


def process_event_text(r: dict[str, Any]) -> str:
    """strace's line for a signal, exit or killed record of strace.jsonl."""
    if r["type"] == "exit":
        return f"+++ exited with {r.get('code')} +++"
    if r["type"] == "killed":
        return f"+++ killed by {r.get('signal')}{' (core dumped)' if r.get('core_dumped') else ''} +++"
    info = ", ".join(f"{k}={r['signal'] if k == 'si_signo' else v if isinstance(v, str) else value_text(v)}"
                     for k, v in r.items() if k not in _NOT_SIGINFO)   # strings: names, "0x..." addresses
    return f"--- {r.get('signal')} {{{info}}} ---"


def _events(path: Path, session: Session) -> Iterator[FtraceEvent]:
    lost, comms = session.ftrace_lost_records, session.comms
    names: dict[tuple[Any, Any], str] = {}
    for r in _jsonl(path, session.notes):
        kind = r.get("type")
        if kind == "event":
            pid, comm, key = r.get("pid") or 0, r.get("comm") or "", (r.get("system"), r.get("event"))
            if pid not in comms and comm and comm[0] != "<":
                comms[pid] = comm
            name = names.get(key)
            if name is None:
                name = names[key] = f"{key[0]}:{key[1]}"
            yield FtraceEvent(r["ts"], r.get("cpu") or 0, pid, comm, name, r.get("fields") or {},
                              r.get("text") or "")
        elif kind == "lost":
            cpu = int(r.get("cpu") or 0)
            lost[cpu] = lost.get(cpu, 0) + int(r.get("count") or 0)


def read_dmesg(d: Path, notes: list[str], offset: int = 0) -> list[DmesgRecord]:
    """A session directory's kernel log: from dmesg.kmsg (microseconds, every field), else
    dmesg.json (util-linux JSON); offset (ns) is subtracted from the printk times (host/clocks.py
    moves them to CLOCK_MONOTONIC with it)."""
    records: list[DmesgRecord] = []
    kmsg = d / "dmesg.kmsg"
    if kmsg.exists():
        for chunk in kmsg.read_bytes().split(b"\0"):
            if not chunk.strip():
                continue
            try:
                r = parse_kmsg(chunk)
            except ValueError as e:
                notes.append(f"dmesg.kmsg: {e}")
                continue
            records.append(DmesgRecord(r.ts_usec * 1000 - offset, r.pri & 7, r.pri >> 3, r.seq,
                                       r.text.decode("utf-8", "replace")))
        return records
    return dmesg_json_records(_json_file(d / "dmesg.json"), offset)


def dmesg_json_records(document: dict[str, Any], offset: int = 0) -> list[DmesgRecord]:
    """The records of a `dmesg --json` document (util-linux's or the agent's)."""
    records: list[DmesgRecord] = []
    for r in (document.get("dmesg") or []):
        pri = int(r.get("pri") or 0)
        records.append(DmesgRecord(round(float(r.get("time") or 0) * 1e9) - offset, pri & 7, pri >> 3,
                                   int(r.get("seq") or 0), str(r.get("msg") or "")))
    return records


# ---- strace values as text (docs/strace-json.md, the other way round) -------------------------

_POINTER = re.compile(r"0x[0-9a-f]+")


def args_text(args: Iterable[Any]) -> str:
    text = ", ".join(value_text(a) for a in args)
    return text if len(text) <= ARGS_MAX else text[:ARGS_MAX - 3] + "..."


def value_text(v: Any) -> str:
    """One typed strace JSON value in strace's notation (close enough to read)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return v if _POINTER.fullmatch(v) else json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join("..." if x == "..." else value_text(x) for x in v) + "]"
    if isinstance(v, dict):
        if "const" in v:
            return str(v["const"])
        if "flags" in v:
            return "|".join(map(str, v["flags"])) or "0"
        if "fd" in v:
            return f"{v['fd']}<{v.get('path')}>"
        if "str" in v:
            return json.dumps(v["str"], ensure_ascii=False) + ("..." if v.get("truncated") else "")
        if "hex" in v:
            h = str(v["hex"])
            return '"' + "".join(f"\\x{h[i:i + 2]}" for i in range(0, len(h), 2)) + '"' + \
                ("..." if v.get("truncated") else "")
        if "comment" in v and "value" in v:
            return f"{value_text(v['value'])} /* {v['comment']} */"
        if set(v) == {"in", "out"}:
            return f"[{value_text(v['in'])} => {value_text(v['out'])}]"
        if set(v) == {"major", "minor"}:
            return f"makedev({v['major']:#x}, {v['minor']:#x})"
        items = [f"{k}={value_text(x)}" for k, x in v.items() if k != "abbreviated"]
        return "{" + ", ".join(items + (["..."] if v.get("abbreviated") else [])) + "}"
    return str(v)


# ---- the page ---------------------------------------------------------------------------------

class _Strings:
    """The page's string table: each distinct text once, items refer to it by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.table: list[str] = []

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


def _deltas(values: list[int]) -> list[int]:
    out, last = [], 0
    for v in values:
        out.append(v - last)
        last = v
    return out


def page_data(session: Session) -> dict[str, Any]:
    """The JSON the page embeds (its shape is the page's business: report.js reads it)."""
    f, t0, s = session.facts, session.facts.start_ns, _Strings()
    s("")

    # the timeline's syscall lanes carry signals and thread ends too (kind 1 and 2), as strace's
    # output does; the syscall tables and counts leave them out
    calls: list[Syscall | ProcessEvent] = sorted([*session.syscalls, *session.process_events],
                                                 key=lambda c: c.ts_ns)
    threads = sorted({(c.pid, c.tid) for c in calls})
    thread_index = {t: i for i, t in enumerate(threads)}
    names = session.comms
    sys_lanes = [[pid, tid, f"{names.get(pid, '?')} {pid}" + ("" if tid == pid else f"/{tid}")]
                 for pid, tid in threads]

    events = sorted(session.events, key=lambda e: e.ts_ns)
    dmesg = sorted(session.dmesg, key=lambda r: (r.ts_ns, r.seq))
    facts = [["session", f.session_id], ["board", f.board], ["arch", f.arch], ["kernel", f.kernel],
             ["agent", f"{f.agent_version} (Python {f.python})"], ["state", f"{f.state} ({f.reason})"],
             ["started", _wall(f.start_realtime_ns)],
             ["duration", f"{(f.end_ns - f.start_ns) / 1e9:.3f} s"],
             ["spec", json.dumps(f.spec, sort_keys=True)],
             ["lost", ", ".join(f"{k} {v}" for k, v in sorted(f.lost.items())) or "none"]]
    # the string table in the order of how often a column repeats its texts: the most repeated
    # get the shortest indices (event names and tasks take 1-3 digits, not 6)
    dm_fac = [s(r.facility_name) for r in dmesg]
    ft_ev = [s(e.event) for e in events]
    ft_task = [s(f"{e.comm}-{e.pid}") for e in events]
    sys_name = [s(c.name if isinstance(c, Syscall) else PROCESS_EVENT_NAMES[c.kind]) for c in calls]
    sys_err = [s(c.error) if isinstance(c, Syscall) and c.error else 0 for c in calls]
    ft_text = [s(e.text) for e in events]
    sys_res = [s(c.result if isinstance(c, Syscall) else "") for c in calls]
    sys_args = [s(c.args if isinstance(c, Syscall) else c.text) for c in calls]
    dm_msg = [s(r.text) for r in dmesg]
    return {
        "version": FORMAT_VERSION,
        "facts": facts,
        "command": f.command,
        "start": t0,
        "end": f.end_ns - t0,
        "notes": session.notes,
        "levels": list(LEVELS),
        "sys": {
            "lanes": sys_lanes,
            "lane": [thread_index[(c.pid, c.tid)] for c in calls],
            "ts": _deltas([c.ts_ns - t0 for c in calls]),
            "dur": [0 if not isinstance(c, Syscall) else -1 if c.duration_ns is None else c.duration_ns
                    for c in calls],
            "kind": [0 if isinstance(c, Syscall) else 1 if c.kind == "signal" else 2 for c in calls],
            "name": sys_name,
            "args": sys_args,
            "res": sys_res,
            "err": sys_err,
        },
        "ft": {
            "cpus": session.cpus,
            "lost": [session.ftrace_lost.get(c, 0) for c in session.cpus],
            "lostRecords": [session.ftrace_lost_records.get(c, 0) for c in session.cpus],
            "lostTotal": f.lost.get("ftrace", 0),
            "ts": _deltas([e.ts_ns - t0 for e in events]),
            "cpu": [e.cpu for e in events],
            "task": ft_task,
            "ev": ft_ev,
            "text": ft_text,
        },
        "dm": {
            "lostTotal": f.lost.get("dmesg", 0),
            "ts": _deltas([r.ts_ns - t0 for r in dmesg]),
            "lvl": [r.level for r in dmesg],
            "fac": dm_fac,
            "msg": dm_msg,
        },
        "strings": s.table,
    }


def _wall(ns: int | None) -> str:
    if not ns:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns % 10**9 // 10**6:03d} UTC"


def script_json(value: Any) -> Markup:
    """JSON safe inside <script type="application/json">: no `<` at all, so neither `</script`
    nor `<!--` can end or change the block; JSON.parse reads \\u003c back as `<`."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _static(name: str, closing: str) -> Markup:
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    if closing in text.lower():
        raise BoardtraceError(f"{TEMPLATES / name}: must not contain {closing}")
    return Markup(text)


def render_report(directory: Path | str) -> Path:
    """Write <directory>/report.html (via report.html.part) and return its path."""
    d = Path(directory)
    session = load_session(d)
    with _no_gc():
        data = script_json(page_data(session))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template(TEMPLATE).render(
        facts=session.facts, notes=session.notes, spec=json.dumps(session.facts.spec, sort_keys=True), data=data,
        css=_static("report.css", "</style"), js=_static("report.js", "</script"))
    out, part = d / REPORT, d / (REPORT + ".part")
    part.write_text(html, encoding="utf-8")
    os.replace(part, out)
    return out
