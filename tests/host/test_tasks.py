"""The invoke tasks, run as a user runs them: `invoke <task> ...` in the repo root."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from host import REPO

INVOKE = str(Path(sys.executable).parent / "invoke")


def invoke(*args):
    return subprocess.run([INVOKE, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_tasks_are_listed():
    out = invoke("--list").stdout
    for name in ("boards", "build-agent", "info", "dmesg"):
        assert name in out


def test_build_agent_reports_size_and_hash():
    result = invoke("build-agent")
    assert result.returncode == 0, result.stderr
    size = (REPO / "build" / "agent.pyz").stat().st_size
    assert f"build/agent.pyz: {size:,} bytes, sha256 " in result.stdout


def test_boards_lists_every_profile_and_local_is_reachable():
    result = invoke("boards", "--reachable")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {p.stem for p in (REPO / "boards").glob("*.yaml") if p.stem != "groups"}
    assert rows["local"][2:] == ["local", "yes"]
    assert rows["rpi4"][1] == "aarch64"


def test_info_on_the_local_board_is_the_agents_json():
    result = invoke("info", "--board", "local")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["kernel"]["release"] == os.uname().release


def test_unknown_board_is_one_line_and_exit_1():
    result = invoke("info", "--board", "no-such-board")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown board 'no-such-board'" in result.stderr


def test_an_unreachable_ssh_board_is_one_line():
    result = invoke("dmesg", "--board", "rpi4")   # raspberrypi.local does not resolve here
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: board rpi4: ")
    assert "raspberrypi.local" in result.stderr


def test_dmesg_on_the_local_board_shows_a_fresh_record():
    marker = f"boardtrace-task-test-{uuid.uuid4()}"
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"<11>{marker}\n")  # user.err
    result = invoke("dmesg", "--board", "local", "--level", "err", "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["dmesg"]
    mine = [r for r in records if r["msg"] == marker]
    assert len(mine) == 1 and mine[0]["pri"] == 11


def test_dmesg_passes_options_through_and_errors_stay_one_line():
    result = invoke("dmesg", "--board", "local", "--level", "loud")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "loud" in result.stderr


def tracefs_mounts():
    with open("/proc/self/mounts") as f:
        return sorted(line for line in f if line.split()[2] == "tracefs")


def test_info_mount_tracefs_probes_and_leaves_the_mounts_as_they_were():
    before = tracefs_mounts()
    result = invoke("info", "--board", "local", "--mount-tracefs")
    assert result.returncode == 0, result.stderr
    ftrace = json.loads(result.stdout)["ftrace"]
    assert ftrace["mounted"] and ftrace["events"] > 0
    assert tracefs_mounts() == before


def test_strace_on_the_local_board_traces_a_command():
    result = invoke("strace", "--board", "local", "--opts", "-e trace=close -qq", "--cmd", "sh -c 'exit 5'")
    assert result.returncode == 5
    assert "close(" in result.stderr and "+++" not in result.stderr


def test_strace_bad_option_is_one_line():
    result = invoke("strace", "--board", "local", "--opts", "-e trace=nosuchcall", "--cmd", "true")
    assert result.returncode != 0
    assert result.stderr.strip() == "strace: invalid system call 'nosuchcall'"


def test_ftrace_record_report_and_trace_dat_on_the_local_board(tmp_path):
    cap = tmp_path / "cap"
    result = invoke("ftrace", "--board", "local", "--args", f"record -o {cap} -e sched:sched_process_exec -- /bin/true")
    assert result.returncode == 0, result.stderr
    report = invoke("ftrace", "--board", "local", "--args", f"report {cap}")
    assert report.returncode == 0 and "sched_process_exec: filename=/bin/true" in report.stdout
    dat = invoke("trace-dat", "--capture", str(cap))
    assert dat.returncode == 0, dat.stderr
    assert (cap / "trace.dat").stat().st_size > 0
