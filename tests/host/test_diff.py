"""host.diff / `invoke diff A B`: two REAL sessions captured on this machine (real strace, real
tracefs, real /dev/kmsg), B doing more than A and logging a warning; and synthetic kernel logs
(dmesg.kmsg written here) for initcall_debug timing and the normalised comparisons."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from host.capture import CaptureRequest
from host.diff import DIFF, compare, diff_sessions, normalise, parse_initcalls, summary_text
from host.errors import BoardtraceError
from host.profiles import load_board
from host.report import load_session
from host.sessions import capture
from target.dmesg.record import Record, format_kmsg
from tests.agent.kmsg import devkmsg_on

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")
FTRACE = ("-e", "sched:sched_switch", "-e", "sched:sched_process_exec")


# ---- two real sessions ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def word() -> str:
    """Unique per run (an earlier run's warning is still in the kernel log buffer, which both
    sessions copy); letters past f only, so no placeholder swallows it."""
    return "difftest" + "".join(random.choice("ghijklmnopqrstuvwxyz") for _ in range(12))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, word: str) -> tuple[Path, Path]:
    if not (os.path.exists("/dev/kmsg") and os.geteuid() == 0):
        pytest.skip("needs root and /dev/kmsg (strace, ftrace and the kernel log of a real capture)")
    home = tmp_path_factory.mktemp("diff-home")
    a = CaptureRequest(cmd=("sh", "-c", "ls / >/dev/null"), strace=("-f",), ftrace=FTRACE, dmesg=True)
    b = CaptureRequest(cmd=("sh", "-c", f'ls / >/dev/null; cat /nonexistent; echo "<4>diff-test-warning {word}" > /dev/kmsg'),
                       strace=("-f",), ftrace=FTRACE, dmesg=True)
    with devkmsg_on():                # writes to /dev/kmsg are rate limited otherwise
        for request in (a, b):
            assert capture([load_board("local")], request, home=home) == 0
    return home / "local" / a.session_id, home / "local" / b.session_id


def records(path: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("type") == kind]


def test_the_warning_is_new_in_b_and_not_the_reverse(pair: tuple[Path, Path], word: str) -> None:
    a, b = pair
    mine = [line for line in compare(a, b).new_warnings if word in line.text]
    assert len(mine) == 1
    assert mine[0].text == f"diff-test-warning {word}" and mine[0].level_name == "warn" and mine[0].count == 1
    # B's log holds A's records too (one buffer, one boot): nothing of A's is new the other way,
    # and B's warning is not "new in A"
    back = compare(b, a)
    assert not [line for line in back.new_warnings if word in line.text]


def test_syscall_changes_match_strace_jsonl(pair: tuple[Path, Path]) -> None:
    a, b = pair
    rows = {r.name: r for r in compare(a, b).syscalls}
    for side, path in (("a", a), ("b", b)):
        calls = records(path / "strace.jsonl", "syscall")
        for name, n in Counter(c["syscall"] for c in calls).items():
            assert getattr(rows[name].count, side) == n, name
        openat = [c for c in calls if c["syscall"] == "openat"]
        assert getattr(rows["openat"].errors, side) == sum(1 for c in openat if c.get("error"))
        assert getattr(rows["openat"].time_ns, side) == sum(c.get("duration_ns") or 0 for c in openat)
    assert rows["openat"].errors.delta >= 1        # cat's failed open of /nonexistent, at least
    # sorted by the size of the change (calls + errors first)
    sizes = [abs(r.count.delta) + abs(r.errors.delta) for r in rows.values()]
    assert sizes == sorted(sizes, reverse=True)


def test_ftrace_event_changes_match_ftrace_jsonl(pair: tuple[Path, Path]) -> None:
    a, b = pair
    ca = Counter(f"{e['system']}:{e['event']}" for e in records(a / "ftrace.jsonl", "event"))
    cb = Counter(f"{e['system']}:{e['event']}" for e in records(b / "ftrace.jsonl", "event"))
    assert ca and cb
    diff = compare(a, b)
    assert {r.name: (r.count.a, r.count.b, r.count.delta) for r in diff.events} == \
        {name: (ca[name], cb[name], cb[name] - ca[name]) for name in ca.keys() | cb.keys()}
    assert [abs(r.count.delta) for r in diff.events] == sorted((abs(r.count.delta) for r in diff.events), reverse=True)
    lost = {r.what: r.count for r in diff.lost}
    state_b = json.loads((b / "state.json").read_text())
    assert lost["ftrace: session total (state.json)"].b == state_b["lost"]["ftrace"]
    meta_a = json.loads((a / "ftrace" / "meta.json").read_text())
    assert lost["ftrace: ring buffer (ftrace/meta.json)"].a == sum(meta_a["lost"].values())


class Tables(HTMLParser):
    """Every <table id=...> of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe") or "src" in a or "href" in a:
            self.links.append(tag)
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def page(path: Path) -> Tables:
    parser = Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_diff_html_has_the_full_tables(pair: tuple[Path, Path], word: str) -> None:
    a, b = pair
    (b / DIFF).unlink(missing_ok=True)
    text = diff_sessions(a, b, top=1)
    assert text.splitlines()[-1] == str(b / DIFF)
    assert "... " in text and f"more in {DIFF}" in text          # top 1: the rest only in the page
    p = page(b / DIFF)
    assert p.links == []                                          # self-contained: nothing loaded
    warnings = p.tables["new-warnings"][1:]
    assert ["warn", "user", "1", f"diff-test-warning {word}", f"diff-test-warning {word}"] in warnings
    diff = compare(a, b)
    syscalls = p.tables["syscalls"][1:]
    assert len(syscalls) == len(diff.syscalls) > 1                # every row, not the top 1
    openat = next(r for r in syscalls if r[0] == "openat")
    row = next(r for r in diff.syscalls if r.name == "openat")
    assert openat[1:7] == [str(row.count.a), str(row.count.b), f"{row.count.delta:+d}",
                           str(row.errors.a), str(row.errors.b), f"{row.errors.delta:+d}"]
    assert {r[0]: r[1:] for r in p.tables["ftrace-events"][1:]} == \
        {r.name: [str(r.count.a), str(r.count.b), f"{r.count.delta:+d}"] for r in diff.events}
    assert len(p.tables["lost"]) == 1 + len(diff.lost)


def test_invoke_diff_prints_the_summary(pair: tuple[Path, Path], word: str, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "cmp.html"
    done = subprocess.run([str(INVOKE), "diff", str(a), str(b), "-o", str(out), "--top", "3"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"A: local {a.name} (") and lines[1].startswith(f"B: local {b.name} (")
    assert any(re.fullmatch(r"kernel log lines new in B at warning level or worse: \d+", x) for x in lines)
    assert any(re.fullmatch(rf"  warn +x1 +diff-test-warning {word}", x) for x in lines)
    assert "boot timing: no initcall_debug lines (boot with initcall_debug)" in lines
    assert any(re.match(r"  openat +\d+ -> \d+ +[+-]\d+ +\d+ -> \d+ +\+[1-9]\d*", x) for x in lines)
    assert lines[-1] == str(out) and out.stat().st_size > 0
    syscall_rows = lines[lines.index(next(x for x in lines if x.startswith("syscalls (A -> B)"))) + 2:]
    assert syscall_rows[3].startswith("  ... ")                   # header + 3 rows, then the rest is counted


def test_a_bad_path_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(BoardtraceError, match="not a session directory"):
        compare(missing, tmp_path)
    for args, message in (([str(missing), str(tmp_path)], f"error: {missing}: not a session directory (no such directory)"),
                          ([str(tmp_path), str(tmp_path)], f"error: {tmp_path}: not a session directory (no manifest.json)")):
        done = subprocess.run([str(INVOKE), "diff", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.strip() == message and done.stdout == ""


# ---- synthetic kernel logs ------------------------------------------------------------------------

def session(d: Path, lines: list[tuple[int, str]], kernel: str = "6.1.0") -> Path:
    """A session directory with only a manifest and a dmesg.kmsg of these (pri, text) records."""
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({
        "format": "boardtrace-session", "version": 1, "id": d.name,
        "board": {"arch": {"name": "aarch64"}, "kernel": {"release": kernel}}}))
    (d / "dmesg.kmsg").write_bytes(b"".join(
        format_kmsg(Record(pri, seq, 1000 * seq, text.encode())) + b"\0" for seq, (pri, text) in enumerate(lines)))
    return d


KERN_INFO, KERN_WARN, KERN_ERR = 6, 4, 3

BOOT_A = [
    (KERN_INFO, "calling  foo_init+0x0/0x40 @ 1"),
    (KERN_INFO, "initcall foo_init+0x0/0x40 returned 0 after 100 usecs"),
    (KERN_INFO, "calling  zap_init+0x0/0x1c0 @ 1"),
    (KERN_INFO, "initcall zap_init+0x0/0x1c0 returned 0 after 2000 usecs"),
    (KERN_INFO, "initcall baz_init+0x0/0x10 [baz] returned 0 after 50 usecs"),
    (KERN_INFO, "virtio_net virtio1: registered device eth0"),
    (KERN_INFO, "sd 0:0:0:0: [sda] Attached SCSI disk"),
    (KERN_INFO, "mmc0: new high speed SDHC card at address 1234"),
    (KERN_ERR, "dwc2 ff580000.usb: timeout after 1200 usecs at 0xffff000012345678, pid 77"),
    (KERN_INFO, "Memory: 2048K/4096K available"),
]
BOOT_B = [
    (KERN_INFO, "calling  foo_init+0x0/0x48 @ 1"),
    (KERN_INFO, "initcall foo_init+0x0/0x48 returned 0 after 150 usecs"),
    (KERN_INFO, "initcall zap_init+0x0/0x1c0 returned 0 after 500 usecs"),
    (KERN_INFO, "initcall qux_init+0x0/0x20 returned -19 after 30 usecs"),
    (KERN_INFO, "sd 1:0:0:0: [sda] Attached SCSI disk"),
    (KERN_ERR, "dwc2 ff580000.usb: timeout after 77 usecs at 0xffff0000deadbeef, pid 4242"),
    (KERN_WARN, "thermal thermal_zone0: critical temperature reached <script>x</script>"),
    (KERN_INFO, "Memory: 8192K/16384K available"),
    (KERN_WARN, "random: crng not ready"),
    (KERN_ERR, "random: crng not ready"),
]


def test_initcall_times_slowest_changes_first(tmp_path: Path) -> None:
    a = session(tmp_path / "board-a" / "s1", BOOT_A)
    b = session(tmp_path / "board-b" / "s2", BOOT_B, kernel="6.6.0")
    diff = compare(a, b)
    assert [(i.name, i.a_us, i.b_us, i.delta_us) for i in diff.initcalls] == [
        ("zap_init", 2000, 500, -1500),
        ("baz_init [baz]", 50, None, -50),
        ("foo_init", 100, 150, 50),
        ("qux_init", None, 30, 30),
    ]
    assert [i.b_ret for i in diff.initcalls] == [0, None, 0, -19]
    assert diff.initcall_note == ""
    text = summary_text(diff, top=2)
    assert re.search(r"\n  zap_init +2 ms +500 µs +-1\.5 ms\n", text)
    assert "  ... 2 more in diff.html" in text
    assert re.search(r"\n  all initcalls +2\.15 ms +680 µs +-1\.47 ms\n", text)
    # msecs on old kernels; an initcall that runs twice adds up
    records = load_session(session(tmp_path / "old" / "s", [
        (KERN_INFO, "initcall m_init+0x0/0x10 [m] returned 0 after 3 msecs"),
        (KERN_INFO, "initcall m_init+0x0/0x10 [m] returned -16 after 2 msecs")])).dmesg
    assert parse_initcalls(records) == {"m_init [m]": (5000, -16)}


def test_no_initcall_debug_lines_says_so(tmp_path: Path) -> None:
    plain = [(KERN_INFO, "Linux version 6.1.0"), (KERN_INFO, "virtio_net virtio1: registered device eth0")]
    a = session(tmp_path / "b" / "a", plain)
    b = session(tmp_path / "b" / "b", plain)
    c = session(tmp_path / "b" / "c", BOOT_B)
    diff = compare(a, b)
    assert diff.initcalls == [] and diff.initcall_note == "no initcall_debug lines (boot with initcall_debug)"
    assert "boot timing: no initcall_debug lines (boot with initcall_debug)" in summary_text(diff).splitlines()
    one_sided = compare(a, c)
    assert one_sided.initcall_note == "no initcall_debug lines in A (boot it with initcall_debug)"
    assert [i.name for i in one_sided.initcalls] == ["zap_init", "foo_init", "qux_init"]
    # B without initcall_debug: its calling/initcall lines are not "missing probe messages"
    assert compare(c, a).missing_probes and all("initcall" not in p.text and "calling" not in p.text
                                                for p in compare(c, a).missing_probes)


def test_log_lines_compare_normalised(tmp_path: Path) -> None:
    a = session(tmp_path / "x" / "a", BOOT_A)
    b = session(tmp_path / "x" / "b", BOOT_B)
    diff = compare(a, b)
    # the dwc2 timeout differs only in numbers and addresses: not new; the thermal warning is,
    # and "random: crng not ready" twice is one line at its worst level
    assert [(w.level_name, w.count, w.text) for w in diff.new_warnings] == [
        ("err", 2, "random: crng not ready"),
        ("warn", 1, "thermal thermal_zone0: critical temperature reached <script>x</script>"),
    ]
    # A's probe messages absent from B: the virtio one and the mmc card (its address is a number);
    # the sd line is there with another SCSI address, Memory: is no probe message
    assert [p.text for p in diff.missing_probes] == ["virtio_net virtio1: registered device eth0",
                                                     "mmc0: new high speed SDHC card at address 1234"]
    out = diff_sessions(a, b)
    html = (b / DIFF).read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html   # autoescaped
    assert page(b / DIFF).tables["new-warnings"][2][3] == "thermal thermal_zone0: critical temperature reached <script>x</script>"
    assert "probe/driver messages of A missing from B: 2" in out.splitlines()
    assert out.splitlines()[0] == f"A: x a (aarch64, kernel 6.1.0): 0 syscalls, 0 ftrace events, 10 kernel log records  [{a}]"
    assert "  (strace was not recorded in A and B)" in out.splitlines()


def test_normalise_replaces_what_varies_between_boots() -> None:
    assert normalise("dwc2 ff580000.usb: timeout after 1200 usecs at 0xffff000012345678, pid 77") == \
        "dwc2 ff580000.usb: timeout after <dur> at <hex>, pid <pid>"
    assert normalise("sh[1234]: segfault at 0 ip 00007f3c2a1b2c3d sp 00007ffd12345678 error 4") == \
        "sh[<pid>]: segfault at <n> ip <hex> sp <hex> error <n>"
    assert normalise("virtio_net virtio1: MAC 52:54:00:12:34:56 on eth0") == "virtio_net virtio1: MAC <mac> on eth0"
    assert normalise("hrtimer: interrupt took 12345 ns") == "hrtimer: interrupt took <dur>"
    assert normalise("[   12.345678] nested  time") == "[<time>] nested time"
    assert normalise("calling  foo+0x0/0x40 @ 1") == "calling foo+<hex>/<hex> @ <pid>"
    assert normalise("deadbeef facade CPU0 sda1") == "deadbeef facade CPU0 sda1"
