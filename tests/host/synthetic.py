"""A big synthetic capture session, shaped like a pulled one, for the report's tests and
bench/report.py.

    make_big_session(dest)                  # 1,000,000 ftrace events, 200,000 syscalls, 2,000 dmesg
    make_big_session(dest, raw=True)        # the same, plus ftrace/ as ring-buffer pages

With raw=True, ftrace/ also holds what `agent ftrace record` leaves (cpuN.raw pages, header_page,
header_event, the event formats, saved_cmdlines, a full meta.json), holding the same events as
ftrace.jsonl, so host/tracedat.py can write a trace.dat of the session for `trace-cmd report`.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import IO, Any

from target.dmesg.record import Record, format_kmsg

START_NS = 5_000_000_000_000
REALTIME_NS = 1_790_000_000_000_000_000
LOST_CPU, LOST_COUNT = 1, 1234

# ring-buffer pages as on a 64-bit little-endian kernel; the formats are Linux 6.18's (x86_64)
PAGE_SIZE, LONG_SIZE = 4096, 8
PAGE_HEADER = 8 + LONG_SIZE                 # u64 timestamp, local_t commit
DELTA_BITS = 27
TYPE_TIME_EXTEND = 30
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
SWITCH_ID, WAKEUP_ID = 372, 374
COMMON = "<HBBi"                            # common_type, flags, preempt_count, pid
SWITCH = struct.Struct(COMMON + "16siiq16sii")
WAKEUP = struct.Struct(COMMON + "16siii")

HEADER_PAGE = ("\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
               "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
               "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
               "\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n")
HEADER_EVENT = ("# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n"
                "\tarray       :   32 bits\n\n\tpadding     : type == 29\n"
                "\ttime_extend : type == 30\n\ttime_stamp : type == 31\n"
                "\tdata max type_len  == 28\n")
COMMON_FIELDS = ("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                 "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
                 "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
                 "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n")
STATES = "(0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040)"
SWITCH_FORMAT = (
    f"name: sched_switch\nID: {SWITCH_ID}\nformat:\n" + COMMON_FIELDS +
    "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
    "\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n"
    "\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n"
    "\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n"
    "\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n"
    "\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n"
    "\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n\n"
    'print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d '
    'next_prio=%d", REC->prev_comm, REC->prev_pid, REC->prev_prio, '
    f"(REC->prev_state & ((({STATES} + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((({STATES} + 1) << 1) - 1), "
    '"|", { 0x00000001, "S" }, { 0x00000002, "D" }, { 0x00000004, "T" }, { 0x00000008, "t" }, '
    '{ 0x00000010, "X" }, { 0x00000020, "Z" }, { 0x00000040, "P" }, { 0x00000080, "I" }) : "R", '
    f'REC->prev_state & ((({STATES}) + 1) << 1) ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio\n')
WAKEUP_FORMAT = (
    f"name: sched_wakeup\nID: {WAKEUP_ID}\nformat:\n" + COMMON_FIELDS +
    "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
    "\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n"
    "\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n"
    "\tfield:int target_cpu;\toffset:32;\tsize:4;\tsigned:1;\n\n"
    'print fmt: "comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu\n')


def make_big_session(dest: Path, events: int = 1_000_000, syscalls: int = 200_000, dmesg: int = 2_000,
                     cpus: int = 4, seconds: float = 10.0, seed: int = 1, raw: bool = False) -> Path:
    """A session directory shaped like a pulled one (manifest, state, strace.jsonl, ftrace.jsonl,
    ftrace/meta.json, dmesg.kmsg) with many records; returns dest. raw: ftrace/ holds the
    events as ring-buffer pages too (see the module docstring)."""
    rnd = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    span = int(seconds * 1e9)
    _write_facts(dest, syscalls, dmesg, seconds, span)
    _write_strace(dest, rnd, syscalls, span)
    _write_ftrace(dest, rnd, events, cpus, span, raw)
    _write_dmesg(dest, dmesg, span)
    return dest


def _write_facts(dest: Path, syscalls: int, dmesg: int, seconds: float, span: int) -> None:
    spec = {"id": dest.name, "cmd": ["stress-ng", "--cpu", "4"], "strace": ["-f"],
            "ftrace": ["-e", "sched", "-e", "irq:*"], "dmesg": True, "duration": seconds}
    state = {"state": "done", "reason": f"the duration of {seconds:g} s is over", "id": dest.name,
             "start_monotonic_ns": START_NS, "end_monotonic_ns": START_NS + span, "start_realtime_ns": REALTIME_NS,
             "lost": {"dmesg": 0, "ftrace": LOST_COUNT}, "events": {"strace": syscalls, "dmesg": dmesg}}
    manifest = {"format": "boardtrace-session", "version": 1, "id": dest.name, "spec": spec, "state": state,
                "agent": {"version": "0.1.0", "python": "3.11.2"},
                "board": {"arch": {"name": "aarch64"}, "kernel": {"release": "6.1.0-synthetic"}},
                "clocks": {"start": {"monotonic_ns": START_NS, "realtime_ns": REALTIME_NS},
                           "end": {"monotonic_ns": START_NS + span}}, "files": []}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    (dest / "state.json").write_text(json.dumps(state))
    (dest / "spec.json").write_text(json.dumps(spec))


def _write_strace(dest: Path, rnd: random.Random, syscalls: int, span: int) -> None:
    threads = [(2000 + p, 2000 + p + 100 * t) for p in range(40) for t in range(2)]
    names = ["read", "write", "openat", "close", "futex", "mmap", "newfstatat", "clock_nanosleep", "epoll_wait"]
    with open(dest / "strace.jsonl", "w") as f:
        f.write('{"type":"header","schema":"boardtrace-strace","version":1,"clock":"monotonic","pid":1}\n')
        step = span // syscalls
        for i in range(syscalls):
            pid, tid = threads[i % len(threads)]
            name = names[rnd.randrange(len(names))]
            ts = START_NS + i * step + rnd.randrange(step // 2)
            dur = rnd.randrange(1000, step * len(threads) // 2)
            if name == "openat":
                err = rnd.random() < 0.2
                args = f'[{{"const":"AT_FDCWD","value":-100}},"/usr/lib/file{i % 500}.so",{{"flags":["O_RDONLY","O_CLOEXEC"],"value":524288}}]'
                ret = '-1,"error":"ENOENT","errno":2' if err else '3,"error":null'
            else:
                args = f'[{i % 17},"0x7f{i % 4096:04x}",{rnd.randrange(4096)}]'
                ret = f'{rnd.randrange(4096)},"error":null'
            f.write(f'{{"type":"syscall","syscall":"{name}","args":{args},"retval":{ret},'
                    f'"duration_ns":{dur},"pid":{pid},"tid":{tid},"ts_ns":{ts},"wall":1790000000.0}}\n')


def _write_ftrace(dest: Path, rnd: random.Random, events: int, cpus: int, span: int, raw: bool) -> None:
    tasks = [(f"worker{i}", 1000 + i) for i in range(60)] + [("<idle>", 0)]
    (dest / "ftrace").mkdir(exist_ok=True)
    _write_ftrace_meta(dest / "ftrace", cpus, span, raw)
    pages = RawPages(dest / "ftrace", cpus, tasks) if raw else None
    with open(dest / "ftrace.jsonl", "w") as f:
        step = span / events
        current = [tasks[-1]] * cpus
        for i in range(events):
            ts = START_NS + int(i * step)
            cpu = rnd.randrange(cpus)
            if i == events // 2:
                f.write(f'{{"type":"lost","ts":{ts},"cpu":{LOST_CPU},"count":{LOST_COUNT}}}\n')
                if pages:
                    pages.lost(LOST_CPU, LOST_COUNT)
            comm, pid = current[cpu]
            if rnd.random() < 0.7:
                nxt = tasks[rnd.randrange(len(tasks))]
                current[cpu] = nxt
                text = (f"sched_switch: prev_comm={comm} prev_pid={pid} prev_prio=120 prev_state=S ==> "
                        f"next_comm={nxt[0]} next_pid={nxt[1]} next_prio=120")
                fields = (f'{{"prev_comm":"{comm}","prev_pid":{pid},"prev_prio":120,"prev_state":1,'
                          f'"next_comm":"{nxt[0]}","next_pid":{nxt[1]},"next_prio":120}}')
                event = "sched_switch"
                if pages:
                    pages.add(cpu, ts, SWITCH.pack(SWITCH_ID, 1, 2, pid, comm.encode(), pid, 120, 1,
                                                   nxt[0].encode(), nxt[1], 120))
            else:
                woken = tasks[rnd.randrange(len(tasks) - 1)]
                text = f"sched_wakeup: comm={woken[0]} pid={woken[1]} prio=120 target_cpu={cpu:03d}"
                fields = f'{{"comm":"{woken[0]}","pid":{woken[1]},"prio":120,"target_cpu":{cpu}}}'
                event = "sched_wakeup"
                if pages:
                    pages.add(cpu, ts, WAKEUP.pack(WAKEUP_ID, 1, 2, pid, woken[0].encode(), woken[1], 120, cpu))
            f.write(f'{{"type":"event","ts":{ts},"cpu":{cpu},"pid":{pid},"comm":"{comm}","flags":1,'
                    f'"preempt_count":2,"lat":"d..2.","system":"sched","event":"{event}","fields":{fields},'
                    f'"text":"{text}"}}\n')
    if pages:
        pages.close()


def _write_ftrace_meta(d: Path, cpus: int, span: int, raw: bool) -> None:
    lost = {str(c): (LOST_COUNT if c == LOST_CPU else 0) for c in range(cpus)}
    meta: dict[str, Any] = {"format": "boardtrace-ftrace", "version": 1, "cpus": list(range(cpus)), "clock": "mono",
                            "lost": lost, "start_monotonic_ns": START_NS, "stop_monotonic_ns": START_NS + span}
    if raw:
        meta.update(page_size=PAGE_SIZE, long_size=LONG_SIZE, big_endian=False, tracer="nop",
                    events=["sched:sched_switch", "sched:sched_wakeup"], kernel="6.1.0-synthetic",
                    arch="aarch64", instance="boardtrace-synthetic")
    (d / "meta.json").write_text(json.dumps(meta))


def _write_dmesg(dest: Path, dmesg: int, span: int) -> None:
    with open(dest / "dmesg.kmsg", "wb") as f:
        for i in range(dmesg):
            level = 3 if i % 100 == 0 else 4 if i % 10 == 0 else 6
            ts_usec = (START_NS - span // 2 + i * (span * 3 // 2) // dmesg) // 1000
            f.write(format_kmsg(Record(level, i, ts_usec, b"synthetic record %d" % i)) + b"\0")


# ---- ftrace/ as the kernel's ring-buffer pages -------------------------------------------------

class RawPages:
    """Per-CPU ring-buffer pages (cpuN.raw) written as events are added in time order, with the
    files a capture directory needs next to them."""

    def __init__(self, d: Path, cpus: int, tasks: list[tuple[str, int]]) -> None:
        for system_event, text in (("sched/sched_switch", SWITCH_FORMAT), ("sched/sched_wakeup", WAKEUP_FORMAT)):
            (d / "formats" / system_event).mkdir(parents=True, exist_ok=True)
            (d / "formats" / system_event / "format").write_text(text)
        (d / "header_page").write_text(HEADER_PAGE)
        (d / "header_event").write_text(HEADER_EVENT)
        (d / "saved_cmdlines").write_text("".join(f"{pid} {comm}\n" for comm, pid in tasks if pid))
        self.files: list[IO[bytes]] = [open(d / f"cpu{c}.raw", "wb") for c in range(cpus)]
        self.data: list[list[bytes]] = [[] for _ in range(cpus)]
        self.used = [0] * cpus              # bytes of data in the open page
        self.first = [0] * cpus             # the open page's timestamp
        self.last = [0] * cpus              # the last record's timestamp
        self.flags = [0] * cpus             # the open page's commit flags
        self.missed = [0] * cpus            # lost events stored after the open page's data

    def add(self, cpu: int, ts: int, payload: bytes) -> None:
        room = PAGE_SIZE - PAGE_HEADER - (LONG_SIZE if self.missed[cpu] else 0)
        if self.used[cpu] and self.used[cpu] + 12 + len(payload) > room:    # 12: the longest header
            self._flush(cpu)
        if not self.used[cpu]:
            self.first[cpu] = self.last[cpu] = ts
        record = self._record(cpu, ts, payload)
        self.data[cpu].append(record)
        self.used[cpu] += len(record)
        self.last[cpu] = ts

    def _record(self, cpu: int, ts: int, payload: bytes) -> bytes:
        """The payload behind its header; a time_extend record first for a delta over 27 bits."""
        delta = ts - self.last[cpu]
        head = b""
        if delta >> DELTA_BITS:
            head = struct.pack("<II", TYPE_TIME_EXTEND | (delta & ((1 << DELTA_BITS) - 1)) << 5, delta >> DELTA_BITS)
            delta = 0
        return head + struct.pack("<I", len(payload) // 4 | delta << 5) + payload

    def lost(self, cpu: int, count: int) -> None:
        """Events lost before the next page of this CPU (the kernel's RB_MISSED_* flags)."""
        if self.used[cpu]:
            self._flush(cpu)
        self.flags[cpu] = MISSED_EVENTS | MISSED_STORED
        self.missed[cpu] = count

    def _flush(self, cpu: int) -> None:
        body = b"".join(self.data[cpu])
        page = struct.pack("<QQ", self.first[cpu], len(body) | self.flags[cpu]) + body
        if self.missed[cpu]:
            page += struct.pack("<Q", self.missed[cpu])
        self.files[cpu].write(page.ljust(PAGE_SIZE, b"\0"))
        self.data[cpu], self.used[cpu], self.flags[cpu], self.missed[cpu] = [], 0, 0, 0

    def close(self) -> None:
        for cpu, f in enumerate(self.files):
            if self.used[cpu]:
                self._flush(cpu)
            f.close()
