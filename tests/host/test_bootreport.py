"""host.bootreport / `invoke boot-report`: a REAL kernel log (qemu-aarch64's Debian kernel booted
with initcall_debug, its `dmesg --json` saved in tests/host/data/), this machine's own kernel log
(through the agent and through util-linux dmesg), the page in a real headless Chromium; crafted
initcall_debug lines only for the parser's corner cases."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import host.diff
from host.bootreport import (PAGE, BootReport, make_report, records_from_file, render_html, slowest_first,
                             table_text)
from host.initcalls import initcalls, parse_initcalls
from host.report import DmesgRecord
from tests.agent.kmsg import devkmsg_on, inject, marker, needs_kmsg
from tests.host import browser

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")
QEMU_LOG = REPO / "tests" / "host" / "data" / "qemu-aarch64-initcall_debug.dmesg.json.gz"
QEMU_KERNEL = "6.1.0-50-cloud-arm64"

needs_browser = pytest.mark.skipif(browser.unavailable() is not None, reason=str(browser.unavailable()))


def boot_report(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INVOKE), "-r", str(REPO), "boot-report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def qemu_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The saved `dmesg --json` of a real qemu-aarch64 boot with initcall_debug."""
    path = tmp_path_factory.mktemp("qemu-log") / "dmesg.json"
    path.write_bytes(gzip.decompress(QEMU_LOG.read_bytes()))
    return path


@pytest.fixture(scope="module")
def qemu_records(qemu_log: Path) -> list[dict]:
    return json.loads(qemu_log.read_text())["dmesg"]


@pytest.fixture(scope="module")
def report(qemu_log: Path) -> BootReport:
    return make_report(records_from_file(qemu_log), "qemu-aarch64")


# ---- the parser: crafted lines -------------------------------------------------------------------

def records(lines: list[tuple[float, str]]) -> list[DmesgRecord]:
    return [DmesgRecord(round(t * 1e9), 7, 0, seq, text) for seq, (t, text) in enumerate(lines)]


def test_calling_and_returned_lines_pair_up() -> None:
    calls = initcalls(records([
        (0.100000, "calling  foo_init+0x0/0x40 @ 1"),
        (0.100300, "initcall foo_init+0x0/0x40 returned 0 after 250 usecs"),
        (1.000000, "calling  bar_init+0x0/0x1000 [bar] @ 87"),
        (1.000010, "calling  baz_init+0x0/0x10 [baz] @ 88"),          # two modules load at once
        (1.000500, "initcall baz_init+0x0/0x10 [baz] returned -19 after 400 usecs"),
        (1.002000, "initcall bar_init+0x0/0x1000 [bar] returned 0 after 1900 usecs"),
        (1.100000, "initcall lost_init+0x0/0x8 returned 0 after 3 msecs"),  # its calling line is gone
        (2.000000, "calling  bar_init+0x0/0x1000 [bar] @ 90"),          # the module loaded again
        (2.000100, "initcall bar_init+0x0/0x1000 [bar] returned -16 after 50 usecs"),
        (2.1, "initcall bad_init+0x0/0x8 returned with disabled interrupts"),
        (2.2, "calling the doctor @ 5 pm"),
    ]))
    assert [(c.name, c.module, c.start_ns, c.duration_us, c.returned, c.pid) for c in calls] == [
        ("foo_init", None, 100_000_000, 250, 0, 1),
        ("baz_init [baz]", "baz", 1_000_010_000, 400, -19, 88),
        ("bar_init [bar]", "bar", 1_000_000_000, 1900, 0, 87),
        ("lost_init", None, 1_097_000_000, 3000, 0, None),
        ("bar_init [bar]", "bar", 2_000_000_000, 50, -16, 90),
    ]
    assert calls[0].end_ns == 100_250_000
    assert [c.name for c in slowest_first(calls)] == ["lost_init", "bar_init [bar]", "baz_init [baz]",
                                                       "foo_init", "bar_init [bar]"]


def test_diff_reads_initcalls_with_the_same_parser(report: BootReport, qemu_log: Path) -> None:
    assert host.diff.parse_initcalls is parse_initcalls
    durations = parse_initcalls(records_from_file(qemu_log))
    assert sum(us for us, _ in durations.values()) == report.total_us


# ---- a real kernel log: qemu-aarch64 booted with initcall_debug -----------------------------------

def test_a_real_boot_log(report: BootReport, qemu_records: list[dict]) -> None:
    returned = [r for r in qemu_records if r["msg"].startswith("initcall ")]
    calling = [(r["msg"].split()[1].split("+")[0], round(r["time"] * 1e6)) for r in qemu_records
               if r["msg"].startswith("calling ")]
    assert report.kernel == QEMU_KERNEL
    assert report.records == len(qemu_records) and report.first_seq == 0
    assert len(report.initcalls) == len(returned) == len(calling) > 500
    assert report.total_us == sum(int(r["msg"].split(" after ")[1].split()[0]) for r in returned)
    durations = [c.duration_us for c in report.initcalls]
    assert durations == sorted(durations, reverse=True)
    # every initcall starts at its calling line; two drivers here share a name (arm_smmu_driver_init)
    assert sorted((c.function, c.start_ns // 1000) for c in report.initcalls) == sorted(calling)
    assert all(c.pid is not None for c in report.initcalls)
    assert [c.function for c in report.initcalls].count("arm_smmu_driver_init") == 2
    slowest = report.initcalls[0]
    assert (slowest.function, slowest.module, slowest.duration_us, slowest.returned) == \
        ("crypto_kdf108_init", None, 807150, 0)
    modules = {c.module for c in report.initcalls} - {None}
    assert {"virtio", "virtio_pci", "virtio_net"} <= modules
    # sequential on pid 1 and /init's modprobes: the sum stays under the time the last one returned
    assert 0.5e6 < report.total_us < report.end_ns / 1000 <= qemu_records[-1]["time"] * 1e6
    assert len(report.nonzero) == sum(" returned 0 " not in r["msg"] for r in returned)


def test_the_terminal_table(report: BootReport) -> None:
    lines = table_text(report, top=5).splitlines()
    assert lines[0] == (f"qemu-aarch64: kernel {QEMU_KERNEL}, {len(report.initcalls)} initcalls (initcall_debug), "
                        f"slowest first")
    assert lines[1].split() == ["initcall", "module", "start", "(s)", "duration", "returned"]
    start = f"{report.initcalls[0].start_ns / 1e9:.6f}"
    assert lines[2].split() == ["crypto_kdf108_init", "-", start, "807", "ms", "0"]
    assert len(lines) == 2 + 5 + 2
    assert lines[7] == f"  ... {len(report.initcalls) - 5} more in the HTML page"
    assert re.fullmatch(rf"  all {len(report.initcalls)} initcalls: 1\.91 s in total \(sum of their durations\), "
                        rf"{len(report.nonzero)} returned non-zero; the last returned 2\.772 s after boot", lines[8])


def test_a_log_that_lost_its_start(qemu_log: Path) -> None:
    log = records_from_file(qemu_log)
    cut = next(i for i, r in enumerate(log) if i >= 400 and r.text.startswith("calling ")) + 1
    lost = make_report(log[cut:], "qemu-aarch64")
    assert lost.first_seq == cut
    assert f"no longer holds its first {cut} records" in table_text(lost).splitlines()[1]
    orphans = [c for c in lost.initcalls if c.pid is None]   # returned lines whose calling line is gone
    assert orphans and all(c.start_ns == c.end_ns - c.duration_us * 1000 for c in orphans)


def test_the_task_on_a_saved_log(qemu_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "boot.html"
    result = boot_report("--dmesg", str(qemu_log), "--top", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == str(out) and out.is_file()
    assert lines[2].startswith("  crypto_kdf108_init ") and "... " in lines[5]
    # the default page lands next to the log
    assert boot_report("--dmesg", str(qemu_log)).returncode == 0
    assert (qemu_log.parent / PAGE).is_file()


# ---- this machine's own kernel log -----------------------------------------------------------------

def has_initcall_debug() -> bool:
    return "initcall_debug" in Path("/proc/cmdline").read_text().split()


@needs_kmsg
def test_this_machine_through_the_agent(tmp_path: Path) -> None:
    with devkmsg_on():   # another test may have cleared the log (dmesg -C): it is never empty here
        inject([(6, marker().encode())])
    result = boot_report("--board", "local", "--out", str(tmp_path / "local.html"))
    if has_initcall_debug():
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1 and result.stdout == ""
    assert re.fullmatch(r"error: local: no initcall_debug lines in the kernel log \(\d+ records\): boot the kernel "
                        r"with initcall_debug on its command line(; the log no longer holds its first \d+ "
                        r"records \(overwritten: read it soon after boot, or boot with a bigger log_buf_len=\))?\n",
                        result.stderr), result.stderr
    assert not (tmp_path / "local.html").exists()


@pytest.mark.skipif(shutil.which("dmesg") is None, reason="util-linux dmesg is not installed")
def test_a_util_linux_dmesg_json(tmp_path: Path) -> None:
    saved = tmp_path / "host.json"
    dumped = subprocess.run(["dmesg", "--json"], capture_output=True, text=True)
    if dumped.returncode != 0:
        pytest.skip(f"util-linux dmesg cannot read the kernel log here: {dumped.stderr.strip()}")
    saved.write_text(dumped.stdout)
    expected = len(json.loads(dumped.stdout)["dmesg"]) if dumped.stdout.strip() else 0
    assert len(records_from_file(saved)) == expected
    result = boot_report("--dmesg", str(saved))
    if has_initcall_debug() and expected:
        assert result.returncode in (0, 1)      # the boot lines may have been overwritten since
        return
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {saved}: no ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--dmesg", "/nonexistent/dmesg.json"], "error: /nonexistent/dmesg.json: no such file"),
    (["--dmesg", "{tmp}/not.json"], "error: {tmp}/not.json: not a `dmesg --json` document ("),
    (["--dmesg", "{tmp}/list.json"], "error: {tmp}/list.json: not a `dmesg --json` document (no \"dmesg\" list)"),
    (["--dmesg", "{tmp}/bad.json"], "error: {tmp}/bad.json: a `dmesg --json` record that is not one ("),
    (["--dmesg", "{tmp}/empty.json"], "error: {tmp}/empty.json: no kernel log records"),
    (["--dmesg", "{tmp}/list.json", "--reboot"], "error: --dmesg FILE reads a saved kernel log: it goes without "
                                                 "--board and --reboot"),
    (["--board", "local", "--reboot"], "error: --reboot: board local is not a QEMU board; add initcall_debug to "
                                      "its kernel command line (bootloader) and reboot it"),
    (["--board", "nosuchboard"], "error: unknown board 'nosuchboard'"),
    (["--dmesg", "{tmp}/list.json", "--top", "0"], "error: --top 0: must be at least 1"),
])
def test_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "not.json").write_text("[   0.000000] Booting Linux\n")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "bad.json").write_text('{"dmesg": [{"pri": 6, "time": "soon", "msg": "x"}]}')
    (tmp_path / "empty.json").write_text("")
    result = boot_report(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 1
    assert result.stderr.startswith(message.replace("{tmp}", str(tmp_path))), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# ---- the page --------------------------------------------------------------------------------------

def test_the_page_is_self_contained(report: BootReport, tmp_path: Path) -> None:
    html = render_html(report, tmp_path / "page.html").read_text()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "an external URL"
    assert not re.search(r"<(?:link|img|iframe)\b|\bsrc=", html, re.I)
    assert html.count('<g class="bar ') == html.count('<tr data-rank=') == len(report.initcalls)


def test_names_are_escaped(tmp_path: Path) -> None:
    hostile = make_report(records([(0.1, "calling  <script>x</script>+0x0/0x4 @ 1"),
                                   (0.2, "initcall <script>x</script>+0x0/0x4 returned 0 after 5 usecs")]), "<b>")
    html = render_html(hostile, tmp_path / "hostile.html").read_text()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<b>" not in html


@needs_browser
def test_the_page_in_chromium(report: BootReport, tmp_path: Path) -> None:
    page = render_html(report, tmp_path / "boot.html")
    with browser.chromium() as driver:
        browser.open_page(driver, page)
        bars = driver.execute_script("""
            return Array.from(document.querySelectorAll('#chart g.bar')).map(function (g) {
              var r = g.getBoundingClientRect(), rect = g.querySelector('rect').getBoundingClientRect();
              return [g.querySelector('title').textContent, r.top, rect.left, rect.width]; });""")
        rows = driver.execute_script("""
            return Array.from(document.querySelectorAll('#initcalls tbody tr')).map(function (tr) {
              return Array.from(tr.cells).map(function (td) { return td.textContent; }); });""")
        assert len(bars) == len(rows) == len(report.initcalls)
        assert [r[1] for r in rows] == [c.function for c in report.initcalls]
        micros = [int(r[4]) for r in rows]
        assert micros == sorted(micros, reverse=True) and rows[0][1] == "crypto_kdf108_init"
        tops = [b[1] for b in bars]
        assert tops == sorted(tops) and len(set(tops)) == len(tops)     # one row per bar, slowest on top
        assert bars[0][0].startswith("crypto_kdf108_init: started ")
        # on the boot time axis: the slowest bar is the widest, and a later start is further right
        assert bars[0][3] == max(b[3] for b in bars)
        first, last = min(report.initcalls, key=lambda c: c.start_ns), max(report.initcalls, key=lambda c: c.start_ns)
        left = {b[0].split(":")[0]: b[2] for b in bars}
        assert left[first.name] < left[last.name]
        driver.save_screenshot(str(tmp_path / "slowest-first.png"))

        driver.execute_script("var s = document.getElementById('order'); s.value = 'order';"
                              "s.dispatchEvent(new Event('change'));")
        starts = driver.execute_script("""
            return Array.from(document.querySelectorAll('#initcalls tbody tr')).map(function (tr) {
              return Number(tr.cells[3].textContent); });""")
        assert starts == sorted(starts) and len(starts) == len(report.initcalls)
        top_bar = driver.execute_script("""
            var gs = Array.from(document.querySelectorAll('#chart g.bar'));
            gs.sort(function (a, b) { return a.getBoundingClientRect().top - b.getBoundingClientRect().top; });
            return gs[0].querySelector('title').textContent;""")
        assert top_bar.startswith(first.name + ": ")
        driver.save_screenshot(str(tmp_path / "boot-order.png"))
        assert [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []
    assert (tmp_path / "slowest-first.png").stat().st_size > 10_000
