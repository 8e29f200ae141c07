"""Export a pulled capture session as a trace that ui.perfetto.dev opens (docs/export.md).

The output is the Chrome JSON trace-event format ({"traceEvents": [...]}), written as a
stream: one pass over strace.jsonl, one over the ftrace events (ftrace.jsonl, or the raw
capture decoded here), one over dmesg.kmsg; memory holds only names and one open slice per
thread and per CPU, never the events. Every timestamp is CLOCK_MONOTONIC (strace's ts_ns,
the `mono` trace clock, the printk time), written in microseconds with the nanoseconds as
decimals, so the three sources line up on one timeline.

Tracks:
  process PID / thread TID      syscalls as complete ("X") slices, strace's signal, exit and
                                killed records and the thread's ftrace events as instants
  process "kernel" (KERNEL_PID) one thread per CPU ("CPU N": who runs, from sched_switch;
                                events of the idle task; lost events) and "kernel log" (dmesg)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from host.clocks import printk_offset_ns
from host.errors import BoardtraceError

# Synthetic ids for the kernel's tracks: above PID_MAX_LIMIT (2**22), so never a real task.
KERNEL_PID = 1 << 30
KMSG_TID = KERNEL_PID
CPU_TID_BASE = KERNEL_PID + 1
BATCH = 4096
MAX_ARGS_TEXT = 1024
MAX_DMESG_NAME = 80
FORMATS = ("perfetto",)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def export(session_dir: Path, fmt: str = "perfetto", out: Path | None = None,
           all_dmesg: bool = False) -> tuple[Path, dict[str, int]]:
    """`invoke export`: check the arguments, write the trace, return where and what."""
    if fmt not in FORMATS:
        raise BoardtraceError(f"--format {fmt}: unknown format (known: {', '.join(FORMATS)})")
    session_dir = Path(session_dir)
    out = Path(out) if out is not None else session_dir / "perfetto.json"
    return out, export_perfetto(session_dir, out, all_dmesg=all_dmesg)


def export_perfetto(session_dir: Path, out: Path, all_dmesg: bool = False) -> dict[str, int]:
    """Write session_dir as a Chrome JSON trace to out (atomically: out.part, then renamed).

    Returns the counts of what was written: syscalls, strace_records (signal/exit/killed),
    sched_slices, ftrace_instants, lost, dmesg, dmesg_outside (kernel log records from before
    or after the session, left out unless all_dmesg), skipped (unreadable lines, corrupt
    pages, unknown events), metadata, events (everything in traceEvents)."""
    session_dir = Path(session_dir)
    if not session_dir.is_dir():
        raise BoardtraceError(f"{session_dir}: not a session directory")
    manifest = _read_json(session_dir / "manifest.json")
    strace = session_dir / "strace.jsonl"
    has_ftrace = (session_dir / "ftrace.jsonl").exists() or (session_dir / "ftrace").is_dir()
    kmsg = session_dir / "dmesg.kmsg"
    if not (strace.exists() or has_ftrace or kmsg.exists()):
        raise BoardtraceError(f"{session_dir}: no strace.jsonl, ftrace or dmesg.kmsg to export")
    out = Path(out)
    part = out.with_name(out.name + ".part")
    writer = _Writer(manifest)
    try:
        with open(part, "w", encoding="utf-8") as f:
            writer.begin(f)
            if strace.exists():
                writer.strace(_json_lines(strace, writer))
            if has_ftrace:
                writer.ftrace(_ftrace_items(session_dir, writer), _ftrace_meta(session_dir),
                              _saved_tgids(session_dir / "ftrace" / "saved_tgids"))
            if kmsg.exists():
                writer.dmesg(kmsg, None if all_dmesg else _window(manifest), printk_offset_ns(manifest))
            writer.end(session_dir.name)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return writer.counts


# ---- inputs ----------------------------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise BoardtraceError(f"{path}: cannot read: {e}") from None
    return value if isinstance(value, dict) else {}


def _json_lines(path: Path, writer: _Writer) -> Iterator[dict[str, Any]]:
    loads = json.loads
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                item = loads(line)
            except ValueError:
                if line.strip():
                    writer.counts["skipped"] += 1
                continue
            if isinstance(item, dict):
                yield item


def _ftrace_items(session_dir: Path, writer: _Writer) -> Iterator[dict[str, Any]]:
    """The rendered ftrace.jsonl, or (not rendered yet) the raw capture decoded here."""
    rendered = session_dir / "ftrace.jsonl"
    if rendered.exists():
        yield from _json_lines(rendered, writer)
        return
    from target.cli import AgentError
    from target.ftrace import decode
    try:
        capture = decode.Capture(str(session_dir / "ftrace"))
    except AgentError as e:
        raise BoardtraceError(str(e)) from None
    yield from decode.json_items(capture)


def _ftrace_meta(session_dir: Path) -> dict[str, Any]:
    return _read_json(session_dir / "ftrace" / "meta.json")


def _saved_tgids(path: Path) -> dict[int, int]:
    """ftrace's pid -> tgid map (lines "PID TGID"), when the capture has it."""
    tgids: dict[int, int] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return tgids
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]):
            tgids[int(parts[0])] = int(parts[1])
    return tgids


def _window(manifest: dict[str, Any]) -> tuple[int, int] | None:
    """The session's CLOCK_MONOTONIC span in ns, from the manifest's clocks (or its state)."""
    clocks = manifest.get("clocks") or {}
    state = manifest.get("state") or {}
    start = (clocks.get("start") or {}).get("monotonic_ns", state.get("start_monotonic_ns"))
    end = (clocks.get("end") or {}).get("monotonic_ns", state.get("end_monotonic_ns"))
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    return start, end


def _us(ns: int) -> float:
    """ns -> µs for "ts"/"dur" (correctly rounded; exact to the ns below 2**53 ns = 104 days)."""
    return ns / 1000


# ---- strace values as text -------------------------------------------------------------------

def value_text(value: Any) -> str:
    """A strace JSON value (docs/strace-json.md) back in strace's own notation."""
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if value.startswith("0x") and _is_hex(value[2:]):
            return value
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join("..." if v == "..." else value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return _dict_text(value)
    return str(value)


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


_quote = encode_basestring   # a string as strace quotes it (JSON escapes, close enough)


def _dict_text(value: dict[str, Any]) -> str:
    if "const" in value:
        return str(value["const"])
    if "flags" in value:
        return "|".join(str(f) for f in value["flags"]) or "0"
    if "fd" in value and "path" in value:
        return f"{value['fd']}<{value['path']}>"
    if "str" in value:
        return _quote(str(value["str"])) + ("..." if value.get("truncated") else "")
    if "hex" in value:
        hexdigits = str(value["hex"])
        text = "".join("\\x" + hexdigits[i:i + 2] for i in range(0, len(hexdigits), 2))
        return '"' + text + '"' + ("..." if value.get("truncated") else "")
    if "in" in value and "out" in value and len(value) == 2:
        return f"{value_text(value['in'])} => {value_text(value['out'])}"
    if "comment" in value and "value" in value:
        return f"{value_text(value['value'])} /* {value['comment']} */"
    if set(value) == {"major", "minor"}:
        return f"makedev({value['major']:#x}, {value['minor']:#x})"
    fields = [value_text(v) if k.startswith("_") and k[1:].isdigit() else f"{k}={value_text(v)}"
              for k, v in value.items() if k != "abbreviated"]
    if value.get("abbreviated"):
        fields.append("...")
    return "{" + ", ".join(fields) + "}"


def args_text(args: Iterable[Any]) -> str:
    text = ", ".join(value_text(a) for a in args)
    return text if len(text) <= MAX_ARGS_TEXT else text[:MAX_ARGS_TEXT] + "..."


# ---- the writer ------------------------------------------------------------------------------

class _Writer:
    """Streams events into the traceEvents array, batching the writes, and keeps the names of
    the threads and processes seen for the metadata written at the end."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        self.counts = {"syscalls": 0, "strace_records": 0, "sched_slices": 0,
                       "ftrace_instants": 0, "lost": 0, "dmesg": 0, "dmesg_outside": 0,
                       "skipped": 0, "metadata": 0, "events": 0}
        self.f: IO[str] | None = None
        self.batch: list[str] = []
        self.first = True
        self.threads: dict[int, int] = {}            # tid -> pid of every track used
        self.names: dict[int, tuple[int, str]] = {}  # tid -> (ts of the name, name)
        self.cpus: set[int] = set()
        self.kmsg_track = False

    # -- output --

    def begin(self, f: IO[str]) -> None:
        self.f = f
        f.write('{"displayTimeUnit":"ns","traceEvents":[\n')

    def emit(self, event: dict[str, Any]) -> None:
        self.batch.append(_encode(event))
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        assert self.f is not None
        self.counts["events"] += len(self.batch)
        self.f.write(("" if self.first else ",\n") + ",\n".join(self.batch))
        self.first = False
        self.batch = []

    def end(self, session_id: str) -> None:
        self._metadata()
        self.flush()
        assert self.f is not None
        board = self.manifest.get("board")
        other = {"producer": "boardtrace", "session": self.manifest.get("id", session_id),
                 "clock": "CLOCK_MONOTONIC",
                 "board": board.get("name") if isinstance(board, dict) else board}
        self.f.write("\n],\"otherData\":" + _encode(other) + "}\n")

    def name(self, tid: int, ts: int, name: str) -> None:
        if not name or name == "<...>":
            return
        known = self.names.get(tid)
        if known is None or ts >= known[0]:
            self.names[tid] = (ts, name)

    def track(self, pid: int, tid: int) -> None:
        if tid not in self.threads:
            self.threads[tid] = pid

    # -- strace --

    def strace(self, records: Iterable[dict[str, Any]]) -> None:
        """Syscalls as X slices (one per record, never dropped), the other records as instants.
        A slice that would overlap the next call of its thread (never expected: a thread makes
        one call at a time) is cut there, so the thread's slices nest as the format requires."""
        pending: dict[int, dict[str, Any]] = {}   # tid -> its last slice, not written yet
        for r in records:
            kind = r.get("type")
            tid, pid, ts = r.get("tid"), r.get("pid"), r.get("ts_ns")
            if not (isinstance(tid, int) and isinstance(ts, int)):
                if kind in ("syscall", "signal", "exit", "killed"):
                    self.counts["skipped"] += 1
                continue
            pid = pid if isinstance(pid, int) else tid
            self.track(pid, tid)
            if kind == "syscall":
                self.counts["syscalls"] += 1
                event = self._syscall(r, pid, tid, ts)
                last = pending.pop(tid, None)
                if last is not None:
                    self._emit_slice(last, ts)
                pending[tid] = event
            elif kind in ("signal", "exit", "killed"):
                self.counts["strace_records"] += 1
                args = {k: v for k, v in r.items() if k not in ("type", "pid", "tid", "ts_ns", "wall")}
                name = (str(r.get("signal")) if kind == "signal" else
                        f"exit {r.get('code')}" if kind == "exit" else f"killed by {r.get('signal')}")
                self.emit({"name": name, "cat": "strace", "ph": "i", "s": "t", "ts": _us(ts),
                           "pid": pid, "tid": tid, "args": args})
        for event in pending.values():
            self._emit_slice(event, None)

    def _syscall(self, r: dict[str, Any], pid: int, tid: int, ts: int) -> dict[str, Any]:
        name = str(r.get("syscall"))
        error = r.get("error")
        args: dict[str, Any] = {"args": args_text(r.get("args") or ())}
        ret = r.get("return", r.get("retval"))
        args["retval"] = value_text(ret) if isinstance(ret, (dict, list)) else ret
        if error:
            args["error"] = error
            if "errno" in r:
                args["errno"] = r["errno"]
        if r.get("return_comment"):
            args["return_comment"] = r["return_comment"]
        if r.get("injected"):
            args["injected"] = True
        dur = r.get("duration_ns")
        if not isinstance(dur, int) or dur < 0:
            args["unfinished"] = True
            dur = 0
        if name.startswith("execve") and not error and r.get("args"):
            path = r["args"][0]
            path = path.get("str") if isinstance(path, dict) else path
            if isinstance(path, str) and path:
                self.name(tid, ts + dur, path.rsplit("/", 1)[-1])
        return {"name": name, "cat": "syscall,error" if error else "syscall", "ph": "X",
                "ts": ts, "dur": dur, "pid": pid, "tid": tid, "args": args}

    def _emit_slice(self, event: dict[str, Any], next_ts: int | None) -> None:
        ts, dur = event["ts"], event["dur"]
        if next_ts is not None and ts + dur > next_ts >= ts:
            dur = next_ts - ts
            event["args"]["cut_ns"] = event["dur"] - dur
        event["ts"], event["dur"] = _us(ts), _us(dur)
        self.emit(event)

    # -- ftrace --

    def ftrace(self, items: Iterable[dict[str, Any]], meta: dict[str, Any],
               tgids: dict[int, int]) -> None:
        """sched_switch -> one slice per CPU from each switch to the next (who runs; the idle
        task leaves a gap); every other event -> an instant on its thread (the idle task's on
        its CPU); lost events -> an instant on the CPU, which ends that CPU's open slice."""
        running: dict[int, tuple[int, str, dict[str, Any]] | None] = {}
        start = meta.get("start_monotonic_ns")
        last_ts = start if isinstance(start, int) else 0
        for item in items:
            kind, ts, cpu = item.get("type"), item.get("ts"), item.get("cpu")
            if not (isinstance(ts, int) and isinstance(cpu, int)):
                self.counts["skipped"] += 1
                continue
            last_ts = max(last_ts, ts)
            if kind == "lost":
                self._close(running, cpu, ts)
                running[cpu] = None
                self.counts["lost"] += 1
                self._cpu(cpu)
                self.emit({"name": "lost events", "cat": "ftrace", "ph": "i", "s": "t",
                           "ts": _us(ts), "pid": KERNEL_PID, "tid": CPU_TID_BASE + cpu,
                           "args": {"count": item.get("count")}})
                continue
            if kind != "event":
                self.counts["skipped"] += 1
                continue
            fields = item.get("fields") or {}
            event = item.get("event")
            if event == "sched_switch" and "next_pid" in fields:
                self._switch(running, cpu, ts, fields, start)
                continue
            pid = item.get("pid")
            if not isinstance(pid, int):
                self.counts["skipped"] += 1
                continue
            self.counts["ftrace_instants"] += 1
            args = dict(fields)
            args["cpu"] = cpu
            if item.get("text"):
                args["text"] = item["text"]
            name = f"{event}" if event else "ftrace"
            if pid == 0:
                self._cpu(cpu)
                track_pid, track_tid = KERNEL_PID, CPU_TID_BASE + cpu
            else:
                track_tid = pid
                track_pid = self.threads.get(pid) or tgids.get(pid) or pid
                self.track(track_pid, track_tid)
                self.name(pid, -1, str(item.get("comm") or ""))   # saved_cmdlines: a fallback
                if event == "sched_process_exec" and fields.get("filename"):
                    self.name(pid, ts, str(fields["filename"]).rsplit("/", 1)[-1])
            self.emit({"name": name, "cat": str(item.get("system") or "ftrace"), "ph": "i",
                       "s": "t", "ts": _us(ts), "pid": track_pid, "tid": track_tid, "args": args})
        stop = meta.get("stop_monotonic_ns")
        end = max(last_ts, stop) if isinstance(stop, int) else last_ts
        for cpu in list(running):
            self._close(running, cpu, end)

    def _cpu(self, cpu: int) -> None:
        self.cpus.add(cpu)

    def _switch(self, running: dict[int, tuple[int, str, dict[str, Any]] | None], cpu: int,
                ts: int, fields: dict[str, Any], start: Any) -> None:
        prev_pid, next_pid = fields.get("prev_pid"), fields.get("next_pid")
        prev_comm, next_comm = str(fields.get("prev_comm", "")), str(fields.get("next_comm", ""))
        self._cpu(cpu)
        if isinstance(prev_pid, int) and prev_pid:
            self.name(prev_pid, ts, prev_comm)
        if isinstance(next_pid, int) and next_pid:
            self.name(next_pid, ts, next_comm)
        if cpu in running:
            self._close(running, cpu, ts, fields.get("prev_state"))
        elif isinstance(start, int) and start < ts and isinstance(prev_pid, int) and prev_pid:
            # the first switch on this CPU: prev ran since tracing started
            running[cpu] = (start, f"{prev_comm} {prev_pid}",
                            {"comm": prev_comm, "pid": prev_pid, "prio": fields.get("prev_prio"),
                             "since_trace_start": True})
            self._close(running, cpu, ts, fields.get("prev_state"))
        running[cpu] = None if not next_pid else (
            ts, f"{next_comm} {next_pid}",
            {"comm": next_comm, "pid": next_pid, "prio": fields.get("next_prio")})

    def _close(self, running: dict[int, tuple[int, str, dict[str, Any]] | None], cpu: int,
               ts: int, prev_state: Any = None) -> None:
        slice_ = running.pop(cpu, None)
        if slice_ is None:
            return
        begin, name, args = slice_
        if prev_state is not None:
            args["end_state"] = prev_state
        self.counts["sched_slices"] += 1
        self.emit({"name": name, "cat": "sched", "ph": "X", "ts": _us(begin),
                   "dur": _us(max(0, ts - begin)), "pid": KERNEL_PID, "tid": CPU_TID_BASE + cpu,
                   "args": args})

    # -- dmesg --

    def dmesg(self, path: Path, window: tuple[int, int] | None, offset: int) -> None:
        """Kernel log records as instants on the "kernel log" track (within the session's
        span unless window is None; the printk clock has µs steps, so 1 µs of slack), their
        times moved to CLOCK_MONOTONIC by the measured offset (host/clocks.py)."""
        from target.dmesg.record import facility_name, level_name, parse_kmsg
        data = path.read_bytes()
        low, high = (window[0] // 1000 - 1, window[1] // 1000 + 1) if window else (None, None)
        for chunk in data.split(b"\0"):
            if not chunk.strip():
                continue
            try:
                record = parse_kmsg(chunk)
            except ValueError:
                self.counts["skipped"] += 1
                continue
            ts = record.ts_usec * 1000 - offset
            if low is not None and not (low <= ts // 1000 <= high):
                self.counts["dmesg_outside"] += 1
                continue
            self.counts["dmesg"] += 1
            self.kmsg_track = True
            text = record.text.decode("utf-8", "replace")
            level = record.level
            args: dict[str, Any] = {"level": level_name(level), "priority": level,
                                    "facility": facility_name(record.facility), "seq": record.seq,
                                    "text": text}
            if record.caller:
                args["caller"] = record.caller
            name = text if len(text) <= MAX_DMESG_NAME else text[:MAX_DMESG_NAME] + "..."
            self.emit({"name": name, "cat": "dmesg", "ph": "i", "s": "t",
                       "ts": _us(ts), "pid": KERNEL_PID, "tid": KMSG_TID,
                       "args": args})

    # -- names --

    def _metadata(self) -> None:
        events: list[dict[str, Any]] = []
        processes: dict[int, str] = {}
        for tid, pid in self.threads.items():
            name = self.names.get(tid)
            if name is not None:
                events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                               "args": {"name": name[1]}})
                if tid == pid or pid not in processes:
                    processes[pid] = name[1]
            processes.setdefault(pid, "")
        for pid, name in processes.items():
            if name:
                events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": pid,
                               "args": {"name": name}})
        if self.cpus or self.kmsg_track:
            events.append({"name": "process_name", "ph": "M", "pid": KERNEL_PID, "tid": KERNEL_PID,
                           "args": {"name": "kernel"}})
            events.append({"name": "process_sort_index", "ph": "M", "pid": KERNEL_PID,
                           "tid": KERNEL_PID, "args": {"sort_index": -1}})
        if self.kmsg_track:
            events.append({"name": "thread_name", "ph": "M", "pid": KERNEL_PID, "tid": KMSG_TID,
                           "args": {"name": "kernel log"}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": KERNEL_PID,
                           "tid": KMSG_TID, "args": {"sort_index": -1}})
        for cpu in sorted(self.cpus):
            events.append({"name": "thread_name", "ph": "M", "pid": KERNEL_PID,
                           "tid": CPU_TID_BASE + cpu, "args": {"name": f"CPU {cpu}"}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": KERNEL_PID,
                           "tid": CPU_TID_BASE + cpu, "args": {"sort_index": cpu}})
        self.counts["metadata"] = len(events)
        for event in events:
            self.emit(event)
