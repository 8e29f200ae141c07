"""host.report: one self-contained report.html per session, from REAL captures made on this
machine (real strace, real tracefs, real /dev/kmsg), opened in a real headless Chromium; and a
big synthetic session (1,000,000 ftrace events, 200,000 syscalls) for the size limits."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from host.clocks import printk_offset_ns
from host.capture import CaptureRequest, make_request
from host.errors import BoardtraceError
from host.profiles import load_board
from host.report import REPORT, load_session, render_report, value_text
from host.sessions import capture
from tests.agent.kmsg import devkmsg_on, needs_kmsg
from tests.host import browser
from tests.host.synthetic import make_big_session

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")
SCRIPT = "ls / >/dev/null; cat /nonexistent; echo '<3>report-test' > /dev/kmsg"
BIG_EVENTS, BIG_SYSCALLS, BIG_DMESG = 1_000_000, 200_000, 2_000
PRINTK_SKEW = 50_000_000   # ns: how far printk's clock may be from CLOCK_MONOTONIC here
BIG_LOAD_BOUND = 60.0       # seconds for headless Chromium to load the big page (measured: docs/report.md)

needs_browser = pytest.mark.skipif(browser.unavailable() is not None, reason=str(browser.unavailable()))


# ---- a real capture -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (os.path.exists("/dev/kmsg") and os.geteuid() == 0):
        pytest.skip("needs root and /dev/kmsg (strace, ftrace and the kernel log of a real capture)")
    home = tmp_path_factory.mktemp("report-home")
    request = CaptureRequest(cmd=("sh", "-c", SCRIPT), strace=("-f",),
                             ftrace=("-e", "sched:sched_switch", "-e", "sched:sched_process_exec"), dmesg=True)
    with devkmsg_on():
        assert capture([load_board("local")], request, home=home) == 0
    session = home / "local" / request.session_id
    assert (session / "manifest.json").is_file()
    return session


def jsonl(path: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("type") == kind]


def test_load_session_reads_every_part(real_session: Path) -> None:
    s = load_session(real_session)
    calls = jsonl(real_session / "strace.jsonl", "syscall")
    events = jsonl(real_session / "ftrace.jsonl", "event")
    assert len(s.syscalls) == len(calls) > 0
    assert len(s.events) == len(events) > 0
    assert s.facts.board == "local" and s.facts.arch == platform.machine()
    assert s.facts.kernel == platform.release()
    assert s.facts.state == "done"
    failed = [c for c in s.syscalls if c.name == "openat" and '"/nonexistent"' in c.args]
    assert len(failed) == 1
    assert failed[0].error == "ENOENT" and failed[0].result == "-1 ENOENT" and failed[0].retval == -1
    assert failed[0].args.startswith('AT_FDCWD, "/nonexistent", O_RDONLY')
    assert {e.event for e in s.events} <= {"sched:sched_switch", "sched:sched_process_exec"}
    assert any(e.event == "sched:sched_process_exec" and e.fields.get("filename", "").endswith("/cat")
               for e in s.events)
    # the kernel log holds what was there at the start too (an earlier run's report-test)
    mine = [r for r in s.dmesg if r.text == "report-test" and r.ts_ns >= s.facts.start_ns]
    assert len(mine) == 1 and mine[0].level_name == "err"
    # one clock: the syscalls within the session; the kernel log line too, within PRINTK_SKEW:
    # printk stamps local_clock() (sched_clock), which may run a few ms apart from
    # CLOCK_MONOTONIC (4.1 ms behind it on this test VM; docs/report.md)
    assert s.facts.start_ns <= failed[0].ts_ns <= s.facts.end_ns
    assert s.facts.start_ns - PRINTK_SKEW <= mine[0].ts_ns <= s.facts.end_ns + PRINTK_SKEW
    # the same records as util-linux JSON, to the microsecond
    by_seq = {r["seq"]: r for r in json.loads((real_session / "dmesg.json").read_text())["dmesg"]}
    # dmesg.json has the printk clock; the report moves it to CLOCK_MONOTONIC (host/clocks.py)
    offset = printk_offset_ns(json.loads((real_session / "manifest.json").read_text()))
    assert abs(by_seq[mine[0].seq]["time"] - (mine[0].ts_ns + offset) / 1e9) < 1e-6


def test_the_command_to_run_it_again_gives_the_same_spec(real_session: Path) -> None:
    s = load_session(real_session)
    words = shlex.split(s.facts.command)
    assert words[:4] == ["invoke", "capture", "--board", "local"]
    options: dict[str, Any] = {}
    i = 4
    while i < len(words):
        name, eq, value = words[i].partition("=")
        if name in ("--cmd", "--home", "--duration"):
            options[name], i = words[i + 1], i + 2
            continue
        options[name] = value if eq else True
        i += 1
    again = make_request(options.get("--cmd"), options.get("--strace"), options.get("--ftrace"),
                         bool(options.get("--dmesg")), None)
    spec = dict(again.spec(), id=s.facts.spec["id"])
    assert spec == s.facts.spec
    assert Path(options["--home"]) == real_session.parent.parent


def test_the_page_is_self_contained_and_its_data_is_escaped(real_session: Path, tmp_path: Path) -> None:
    copy = tmp_path / "local" / real_session.name
    shutil.copytree(real_session, copy)
    hostile = "</script><script>window.pwned=1</script><!--"
    with open(copy / "strace.jsonl", "a") as f:
        f.write(json.dumps({"type": "syscall", "syscall": "openat", "args": [hostile], "retval": -1,
                            "error": "EACCES", "errno": 13, "duration_ns": 5, "pid": 1, "tid": 1,
                            "ts_ns": load_session(copy).facts.start_ns + 1}) + "\n")
    html = render_report(copy).read_text()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "an external URL"
    assert not re.search(r"<(?:link|img|iframe)\b|\bsrc=", html, re.I)
    assert html.count("</script>") == 2           # the data block and the inline script
    assert hostile not in html
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert any(hostile in s for s in data["strings"])
    if browser.unavailable() is None:
        with browser.chromium() as driver:
            browser.open_page(driver, copy / REPORT)
            assert driver.execute_script("return window.pwned") is None
            driver.execute_script("boardtraceReport.showDetails('sys', boardtraceReport.findSyscall('openat', '</script>'))")
            assert hostile in driver.find_element("id", "details").text


def test_argument_values_read_like_strace() -> None:
    assert value_text({"const": "AT_FDCWD", "value": -100}) == "AT_FDCWD"
    assert value_text({"flags": ["O_RDONLY", "O_CLOEXEC"], "value": 524288}) == "O_RDONLY|O_CLOEXEC"
    assert value_text({"fd": 3, "path": "/etc/passwd"}) == "3</etc/passwd>"
    assert value_text({"str": "0123", "truncated": True}) == '"0123"...'
    assert value_text({"hex": "ff00", "truncated": False}) == '"\\xff\\x00"'
    assert value_text({"st_mode": 33188, "st_size": 3, "abbreviated": True}) == "{st_mode=33188, st_size=3, ...}"
    assert value_text({"value": "0x7ffd1000", "comment": "3 vars"}) == "0x7ffd1000 /* 3 vars */"
    assert value_text({"in": 128, "out": 16}) == "[128 => 16]"
    assert value_text(["ls", "-l", "..."]) == '["ls", "-l", ...]'
    assert value_text(None) == "NULL" and value_text("0x7f00") == "0x7f00" and value_text("/tmp") == '"/tmp"'


def test_not_a_session_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BoardtraceError, match="not a session directory"):
        render_report(tmp_path)
    done = subprocess.run([str(INVOKE), "report", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path}: not a session directory (no manifest.json)"


def test_invoke_report_prints_the_path(real_session: Path) -> None:
    (real_session / REPORT).unlink(missing_ok=True)
    done = subprocess.run([str(INVOKE), "report", str(real_session)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(real_session / REPORT)
    assert (real_session / REPORT).stat().st_size > 0


# ---- in the browser -----------------------------------------------------------------------------

def rows(driver: Any, table: str) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(r => "
        "[r.className, ...[...r.cells].map(c => c.textContent)])", f"#{table}")


def pixel(driver: Any, x: float, y: float) -> list[int]:
    return driver.execute_script(
        "const c = document.getElementById('timeline'), r = c.width / c.clientWidth;"
        "return [...c.getContext('2d').getImageData(Math.round(arguments[0] * r), Math.round(arguments[1] * r), 1, 1).data]",
        x, y)


def click_canvas(driver: Any, x: float, y: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "timeline")
    size = canvas.size
    ActionChains(driver).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)).click().perform()


def search_for(driver: Any, text: str) -> None:
    """Type into #search as a user does; wait until the page applied that query."""
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("id", "search")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if text:
        box.send_keys(text)
    deadline = time.monotonic() + 60
    while driver.execute_script("return document.getElementById('search-status').dataset.query") != text.lower():
        assert time.monotonic() < deadline, f"the search for {text!r} was not applied"
        time.sleep(0.05)


@needs_kmsg
@needs_browser
def test_the_report_in_chromium(real_session: Path, tmp_path: Path) -> None:
    report = render_report(real_session)
    calls = jsonl(real_session / "strace.jsonl", "syscall")
    events = jsonl(real_session / "ftrace.jsonl", "event")
    with browser.chromium() as driver:
        browser.open_page(driver, report)
        text = lambda id_: driver.find_element("id", id_).text   # noqa: E731
        assert text("syscall-count") == str(len(calls))
        assert text("syscall-errors") == str(sum(1 for c in calls if c["error"]))
        assert text("ftrace-count") == str(len(events))
        assert text("fact-arch") == platform.machine() and text("fact-kernel") == platform.release()
        assert text("command") == load_session(real_session).facts.command
        # the summary per process adds up to every call
        foot = driver.execute_script("return [...document.querySelectorAll('#syscall-summary tfoot td')].map(c => c.textContent)")
        assert foot[2] == str(len(calls))
        # ftrace per CPU
        ftrace_rows = {r[1]: r for r in rows(driver, "ftrace-summary")}
        assert int(ftrace_rows["sched:sched_switch"][-1]) == sum(e["event"] == "sched_switch" for e in events)
        # the kernel log: most severe first; report-test is an err
        levels = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]
        dmesg = rows(driver, "dmesg")
        mine = [i for i, r in enumerate(dmesg) if r[4] == "report-test"]
        assert len(mine) == 1 and dmesg[mine[0]][1] == "err"
        assert all(levels.index(r[1]) <= levels.index("err") for r in dmesg[:mine[0]])
        assert [levels.index(r[1]) for r in dmesg] == sorted(levels.index(r[1]) for r in dmesg)

        # the failed openat: red on the timeline, its details on a click
        index = driver.execute_script("return boardtraceReport.findSyscall('openat', '\"/nonexistent\"')")
        assert index >= 0
        where = driver.execute_script("return boardtraceReport.reveal('sys', arguments[0])", index)
        r, g, b, _ = pixel(driver, where["x"], where["y"])
        assert r > 180 and g < 60 and b < 60, (r, g, b)
        hit = driver.execute_script("return boardtraceReport.itemAt(arguments[0], arguments[1])", where["x"], where["y"])
        assert hit == {"kind": "sys", "index": index}
        assert "openat(" not in text("details")
        click_canvas(driver, where["x"], where["y"])
        details = text("details")
        assert 'openat(AT_FDCWD, "/nonexistent", O_RDONLY' in details and "= -1 ENOENT" in details
        assert "FAILED: ENOENT" in details
        # a kernel log record by a click too
        dm_index = driver.execute_script("return boardtraceReport.findDmesg('report-test')")
        assert dm_index >= 0
        where = driver.execute_script("return boardtraceReport.reveal('dm', arguments[0])", dm_index)
        click_canvas(driver, where["x"], where["y"])
        assert text("details").startswith("report-test") and "level     err (3)" in text("details")

        # signals and thread ends are on the threads' lanes, as in strace's output, not in the counts
        ended = jsonl(real_session / "strace.jsonl", "exit")
        signals = jsonl(real_session / "strace.jsonl", "signal")
        assert ended and signals, "sh's children exit and it gets SIGCHLD"
        strace_txt = (real_session / "strace.txt").read_text()
        end = driver.execute_script("return boardtraceReport.findSyscall('exited', '+++ exited with')")
        where = driver.execute_script("return boardtraceReport.reveal('sys', arguments[0])", end)
        click_canvas(driver, where["x"], where["y"])
        assert text("details").splitlines()[0] in strace_txt and "event     exited" in text("details")
        sig = driver.execute_script("return boardtraceReport.findSyscall('signal', '--- SIGCHLD')")
        where = driver.execute_script("return boardtraceReport.reveal('sys', arguments[0])", sig)
        click_canvas(driver, where["x"], where["y"])
        line = text("details").splitlines()[0]
        assert re.match(r"^--- SIGCHLD \{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=\d+, ", line), line
        assert any(l.split(None, 1)[-1].startswith(line[:40]) for l in strace_txt.splitlines())

        # zoom and pan change the view
        driver.find_element("id", "zoom-session").click()
        span = lambda: driver.execute_script("const v = boardtraceReport.view; return [v.a, v.b]")  # noqa: E731
        a, b = span()
        driver.find_element("id", "zoom-in").click()
        a2, b2 = span()
        assert abs((b2 - a2) - (b - a) / 2) < 1e-6 * (b - a)
        from selenium.webdriver.common.action_chains import ActionChains
        canvas = driver.find_element("id", "timeline")
        ActionChains(driver).move_to_element(canvas).click_and_hold().move_by_offset(-200, 0).release().perform()
        a3, b3 = span()
        assert a3 > a2 and abs((b3 - a3) - (b2 - a2)) < 1e-6 * (b2 - a2)
        driver.execute_script("document.getElementById('timeline').dispatchEvent(new WheelEvent('wheel', "
                              "{deltaY: -100, clientX: 600, clientY: 40, bubbles: true, cancelable: true}))")
        a4, b4 = span()
        assert b4 - a4 < b3 - a3

        # one search box filters every table
        search_for(driver, "/nonexistent")
        listed = rows(driver, "syscalls")
        assert listed and all("/nonexistent" in " ".join(r) for r in listed)
        assert len(listed) == sum("/nonexistent" in json.dumps(c) for c in calls)
        openat = [r for r in listed if r[3] == "openat"]
        assert len(openat) == 1 and openat[0][0] == "error" and openat[0][5] == "-1 ENOENT"
        assert text("syscall-errors") == "1"
        search_for(driver, "report-test")
        assert [r[4] for r in rows(driver, "dmesg")] == ["report-test"]
        assert text("dmesg-count") == "1"
        assert int(text("syscall-count")) == sum("report-test" in json.dumps(c) for c in calls) > 0
        # and the timeline: only matching items remain clickable
        hidden = driver.execute_script("return boardtraceReport.reveal('sys', arguments[0])", index)
        assert driver.execute_script("return boardtraceReport.itemAt(arguments[0], arguments[1])",
                                     hidden["x"], hidden["y"]) is None
        search_for(driver, "")
        assert text("syscall-count") == str(len(calls))
        driver.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000


# ---- a big synthetic session --------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_big_session(tmp_path_factory.mktemp("big") / "synthetic" / "20260101-000000-big0",
                            BIG_EVENTS, BIG_SYSCALLS, BIG_DMESG)


def test_a_big_session_renders_compact(big_session: Path) -> None:
    began = time.monotonic()
    report = render_report(big_session)
    seconds = time.monotonic() - began
    size = report.stat().st_size
    print(f"\nbig session: {BIG_EVENTS:,} ftrace events, {BIG_SYSCALLS:,} syscalls, {BIG_DMESG:,} dmesg: "
          f"report.html {size / 1e6:.1f} MB, rendered in {seconds:.1f} s")
    source = sum((big_session / n).stat().st_size for n in ("strace.jsonl", "ftrace.jsonl"))
    assert size < source / 10          # compact: a tenth of the JSON Lines it comes from
    s = load_session(big_session)
    assert len(s.events) == BIG_EVENTS and len(s.syscalls) == BIG_SYSCALLS and len(s.dmesg) == BIG_DMESG
    assert s.ftrace_lost == {0: 0, 1: 1234, 2: 0, 3: 0} and s.ftrace_lost_records == {1: 1234}


@needs_browser
def test_a_big_session_loads_and_draws_in_chromium(big_session: Path, tmp_path: Path) -> None:
    report = big_session / REPORT
    if not report.exists():
        render_report(big_session)
    with browser.chromium() as driver:
        seconds = browser.open_page(driver, report, timeout=BIG_LOAD_BOUND * 2)
        script_ms = driver.execute_script("return boardtraceReport.loadMs")
        print(f"\nbig session: loaded in headless Chromium in {seconds:.1f} s (its script: {script_ms / 1000:.1f} s)")
        assert seconds < BIG_LOAD_BOUND
        assert driver.find_element("id", "ftrace-count").text == str(BIG_EVENTS)
        assert driver.find_element("id", "syscall-count").text == str(BIG_SYSCALLS)
        pager = driver.execute_script("return document.querySelector('#ftrace-events .pager .rows').textContent")
        assert pager == f"rows 1–200 of {BIG_EVENTS}"
        # the timeline is drawn: coloured pixels in every ftrace lane
        inked = driver.execute_script("""
            const c = document.getElementById('timeline'), r = c.width / c.clientWidth, R = boardtraceReport;
            const out = [];
            R.lanes.forEach((l, j) => {
              if (l.kind !== 'ft') return;
              const y = Math.round((22 + j * 16 + 8) * r), x0 = Math.round(180 * r);
              const d = c.getContext('2d').getImageData(x0, y, c.width - x0, 1).data;
              let n = 0;
              for (let i = 0; i < d.length; i += 4) if (!(d[i] === d[i + 1] && d[i + 1] === d[i + 2])) n++;
              out.push(n);
            });
            return out;""")
        assert len(inked) == 4 and all(n > 100 for n in inked), inked
        began = time.monotonic()
        search_for(driver, "ENOENT")
        print(f"big session: a search took {time.monotonic() - began:.1f} s")
        assert 0 < int(driver.find_element("id", "syscall-count").text) < BIG_SYSCALLS
        assert driver.find_element("id", "ftrace-count").text == "0"
        driver.save_screenshot(str(tmp_path / "big.png"))
