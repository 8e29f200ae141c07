#!/usr/bin/env python3
"""Benchmark: the session report (report.html) against `trace-cmd report`, in the same run.

Growing synthetic sessions; `trace-cmd report` reads the same sessions' trace.dat.

    .venv/bin/python bench/report.py [--sizes 10000,100000,1000000] [--reps 3] [--keep DIR]

For each size N: the synthetic session of tests/host/synthetic.py with N ftrace events
(sched_switch/sched_wakeup on 4 CPUs), N/5 syscalls (200,000 at 1M), 2,000 kernel log records,
10 s long; its ftrace/ also as ring-buffer pages holding the same events, written as trace.dat
by host/tracedat.py (not timed). Then, median of --reps runs:

1. Host: `render_report(DIR)` in a fresh Python (interpreter start-up included), its peak RSS
   (wait4), report.html's size; and `trace-cmd report -i trace.dat` with stdout to /dev/null,
   the runs of the two interleaved.
   The ratio is ours / trace-cmd. What it compares: the time the classic tool takes to turn the
   capture's ftrace part into something readable (text) against ours turning the whole capture
   (ftrace events, syscalls, kernel log) into the page; the second ratio adds the browser's load.
2. Headless Chromium (tests/host/browser.py, a fresh browser per size): load from driver.get to
   the page's own ready mark (document.body.dataset.ready, set after the first timeline draw),
   the page script's share (boardtraceReport.loadMs); the JS heap after a GC (CDP
   Runtime.getHeapUsage: usedSize, and backingStorageSize for the typed arrays); the renderer's
   peak RSS (VmHWM); a search (the value set and applySearch() called directly, so without
   the input's 150 ms debounce) for "ENOENT" (few matches), "worker1" (a fifth of the ftrace
   events) and back to "", each up to a forced layout; a redraw of the whole session; 30 zoom
   steps of 0.8 from the whole session down to ~12 ms, and 20 pan steps of a tenth of a 100 ms
   view (median and max of the steps; draw() is synchronous, so a step is timed to its return).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, REPO)
from host.report import REPORT  # noqa: E402
from host.tracedat import write_tracedat  # noqa: E402
from tests.host import browser  # noqa: E402
from tests.host.synthetic import make_big_session  # noqa: E402

RENDER = "import sys; from host.report import render_report; render_report(sys.argv[1])"
QUERIES = ("ENOENT", "worker1")

SEARCH_JS = """
const R = boardtraceReport, box = document.getElementById('search'), t = performance.now();
box.value = arguments[0]; R.applySearch(); R.draw(); document.body.offsetHeight;
return [performance.now() - t, document.getElementById('search-status').textContent];"""

# steps: [[a, b], ...] views to draw one after the other; the ms each draw() took
DRAW_JS = """
const R = boardtraceReport, out = [];
for (const [a, b] of arguments[0]) {
  const t = performance.now();
  R.view.a = a; R.view.b = b; R.draw();
  out.push(performance.now() - t);
}
R.view.a = 0; R.view.b = R.data.end; R.draw();
return out;"""


def run(cmd):
    """Run cmd from the repository, output to /dev/null; (wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"bench/report.py: exit status {child.returncode} from {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def trace_cmd_events(dat):
    """The event lines `trace-cmd report` prints (not `cpus=`, not `CPU:n [... DROPPED]`)."""
    out = subprocess.run(["trace-cmd", "report", "-i", str(dat)], capture_output=True, text=True,
                         check=True).stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith(("cpus=", "CPU:")))


def make_session(work, events):
    d = make_big_session(Path(work) / "synthetic" / f"bench-{events}", events, events // 5, raw=True)
    write_tracedat(d / "ftrace", d / "trace.dat")
    counted = trace_cmd_events(d / "trace.dat")
    if counted != events:
        sys.exit(f"bench/report.py: trace-cmd shows {counted} events of {events}")
    return d


def host_bench(d, reps):
    """Ours and trace-cmd's runs interleaved, so that other work on the machine hits both alike."""
    ours, ref = [], []
    for _ in range(reps):
        ours.append(run([sys.executable, "-c", RENDER, str(d)]))
        ref.append(run(["trace-cmd", "report", "-i", str(d / "trace.dat")]))
    return {"render": statistics.median(w for w, _ in ours), "rss": max(m for _, m in ours),
            "ref": statistics.median(w for w, _ in ref), "html": (d / REPORT).stat().st_size / 1e6,
            "dat": (d / "trace.dat").stat().st_size / 1e6}


def renderer_peak_mb(driver):
    """The highest VmHWM of the renderer processes under this driver's chromedriver."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    peak = 0
    for pid in parents:
        if not descends(pid, driver.service.process.pid, parents):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"--type=renderer" in cmdline:
            hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
            peak = max([peak] + [int(kb) / 1024 for kb in hwm])
    return peak


def descends(pid, ancestor, parents):
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == ancestor:
            return True
    return False


def load(driver, page, reps):
    runs = []
    for _ in range(reps):
        driver.get("about:blank")
        seconds = browser.open_page(driver, page, timeout=600)
        runs.append((seconds, driver.execute_script("return boardtraceReport.loadMs") / 1000))
    return statistics.median(s for s, _ in runs), statistics.median(m for _, m in runs)


def heap(driver):
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    usage = driver.execute_cdp_cmd("Runtime.getHeapUsage", {})
    return usage["usedSize"] / 1e6, usage.get("backingStorageSize", 0) / 1e6


def search(driver, query, reps):
    """Median ms of applying query (from no query), and the page's match status."""
    runs, status = [], ""
    for _ in range(reps):
        driver.execute_script(SEARCH_JS, "")
        ms, status = driver.execute_script(SEARCH_JS, query)
        runs.append(ms)
    return statistics.median(runs), status


def clear(driver, reps):
    runs = []
    for _ in range(reps):
        driver.execute_script(SEARCH_JS, QUERIES[1])
        runs.append(driver.execute_script(SEARCH_JS, "")[0])
    return statistics.median(runs)


def views(end):
    """The whole session 10 times; 30 zoom steps of 0.8 around the middle; 20 pan steps."""
    whole = [[0, end]] * 10
    zoom, a, b = [], 0.0, float(end)
    for _ in range(30):
        mid, half = (a + b) / 2, (b - a) * 0.8 / 2
        a, b = mid - half, mid + half
        zoom.append([a, b])
    span = end / 100
    pan = [[end / 2 + i * span / 10, end / 2 + i * span / 10 + span] for i in range(20)]
    return whole, zoom, pan


def draw_times(driver):
    end = driver.execute_script("return boardtraceReport.data.end")
    whole, zoom, pan = (driver.execute_script(DRAW_JS, steps) for steps in views(end))
    return statistics.median(whole), zoom, pan


def browser_bench(d, reps):
    with browser.chromium() as driver:
        page = d / REPORT
        ready, script = load(driver, page, reps)
        used, buffers = heap(driver)
        found = {q: search(driver, q, reps) for q in QUERIES}
        cleared = clear(driver, reps)
        whole, zoom, pan = draw_times(driver)
        return {"ready": ready, "script": script, "heap": used, "buffers": buffers,
                "rss": renderer_peak_mb(driver), "search": found, "clear": cleared,
                "whole": whole, "zoom": zoom, "pan": pan}


def print_host(rows):
    print("1. host: report.html rendered in Python (fresh interpreter) vs `trace-cmd report -i trace.dat`")
    print("   (trace-cmd renders the ftrace events only, as text; ours the whole session as a page)")
    print()
    print("%9s %8s %9s %10s %9s %8s %8s %7s %12s" % (
        "ftrace", "syscalls", "trace.dat", "trace-cmd", "html", "render", "RSS", "ratio", "+load ratio"))
    for n, h, b in rows:
        print("%9d %8d %7.1fMB %9.2fs %7.1fMB %7.2fs %6.0fMB %6.1fx %11.1fx" % (
            n, n // 5, h["dat"], h["ref"], h["html"], h["render"], h["rss"],
            h["render"] / h["ref"], (h["render"] + b["ready"]) / h["ref"]))
    print()
    print("ratio: render / trace-cmd report; +load ratio: (render + browser load to ready) / trace-cmd report")


def print_browser(rows):
    print()
    print("2. headless Chromium: load to ready, memory, search, redraw (ms unless said)")
    print()
    print("%9s %7s %7s %8s %8s %8s %8s %8s %6s %6s %11s %11s" % (
        "ftrace", "ready", "script", "JS heap", "buffers", "renderer", "ENOENT", "worker1", "clear",
        "whole", "zoom med/max", "pan med/max"))
    for n, _, b in rows:
        print("%9d %6.2fs %6.2fs %6.0fMB %6.0fMB %6.0fMB %8.0f %8.0f %6.0f %6.1f %5.1f/%5.1f %5.1f/%5.1f" % (
            n, b["ready"], b["script"], b["heap"], b["buffers"], b["rss"],
            b["search"]["ENOENT"][0], b["search"]["worker1"][0], b["clear"], b["whole"],
            statistics.median(b["zoom"]), max(b["zoom"]), statistics.median(b["pan"]), max(b["pan"])))
    print()
    for n, _, b in rows:
        print("%9d: %s" % (n, "; ".join(f"{q!r}: {s}" for q, (_, s) in b["search"].items())))


def versions():
    tc = subprocess.run(["trace-cmd", "--version"], capture_output=True, text=True).stdout.strip()
    chrome = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()
    return "%s; %s; Python %s; %d CPUs" % (tc.splitlines()[0] if tc else "trace-cmd ?", chrome,
                                          sys.version.split()[0], os.cpu_count())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="ftrace events per session, comma-separated")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--keep", help="make the sessions in this directory and keep them")
    args = p.parse_args()
    if shutil.which("trace-cmd") is None or browser.unavailable():
        sys.exit("bench/report.py: needs trace-cmd and %s" % (browser.unavailable() or "a browser"))
    work = args.keep or tempfile.mkdtemp(prefix="bench-report-")
    print("report benchmark: %s; median of %d runs" % (versions(), args.reps))
    print()
    rows = []
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            d = make_session(work, n)
            rows.append((n, host_bench(d, args.reps), browser_bench(d, args.reps)))
            if not args.keep:
                shutil.rmtree(d)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_host(rows)
    print_browser(rows)


if __name__ == "__main__":
    main()
