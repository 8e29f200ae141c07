#!/usr/bin/env python3
"""Benchmark: QEMU boards, boot to SSH per arch, and the README's main job.

    .venv/bin/python bench/qemu.py [--boards qemu-aarch64,qemu-riscv64,...] [--reps 3]

Boot: for each board (its image built or taken from the cache first, not timed), boot it with
host.qemu.runner.up into a private state dir and stop it, --reps times. Printed: the median time
from launching QEMU to the console's readiness marker (/init has started dropbear: what a harness
watching the serial console waits for, the reference) and to the first command run over SSH with
the pinned host key (what our runner waits for), and their ratio; then all boards booted at once.

Main job: on qemu-aarch64 (booted, agent deployed), `invoke capture --cmd "ls -l /" --strace
--ftrace=... --dmesg` end to end, against the reference on the same board: Debian's strace over a
plain SSH command writing a file, fetched over SFTP (no ftrace, no dmesg, no checks). Then the
same capture piece by piece, in this process through the same functions (host.sessions.capture),
each board round trip and host step timed; beside them what every round trip pays: an SSH
command (`true`), the board's Python start-up (`python3 -I -S -c pass`) and the agent's
(`agent.pyz --version`).
"""

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from host import fleet, pull  # noqa: E402
from host.capture import make_request  # noqa: E402
from host.deploy import DeployedAgent, deploy  # noqa: E402
from host.profiles import load_board  # noqa: E402
from host.qemu import CACHE, STATE, ensure_up  # noqa: E402
from host.qemu import runner  # noqa: E402
from host.qemu.image import READY, build_image  # noqa: E402
from host.sessions import capture  # noqa: E402
from host.ssh import SshTransport  # noqa: E402

MAIN_FTRACE = "-p function -l vfs_* -e sched:sched_process_exec -e sched:sched_process_exit"


def quiet(message):
    pass


def boot_once(board, image, state):
    """(seconds to the console marker, seconds to SSH) of one boot."""
    console = runner.console_log(board, state)
    marker = {}
    started = time.monotonic()

    def watch():
        while "t" not in marker and time.monotonic() - started < runner.BOOT_TIMEOUT:
            if console.exists() and READY.encode() in console.read_bytes():
                marker["t"] = time.monotonic() - started
            time.sleep(0.02)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        runner.up(board, image, state, say=quiet)
        ssh = time.monotonic() - started
    finally:
        marker.setdefault("t", float("nan"))
        watcher.join()
        runner.down(board, state)
    return marker["t"], ssh


def boots(names, reps):
    images = {name: build_image(load_board(name), CACHE, quiet) for name in names}
    print(f"boot to SSH under TCG (median of {reps}); reference: the console's readiness marker")
    print(f"{'board':<14} {'marker':>8} {'ssh':>8} {'ssh/marker':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-qemu-") as tmp:
        for name in names:
            board = load_board(name)
            runs = [boot_once(board, images[name], Path(tmp)) for _ in range(reps)]
            mark, ssh = (statistics.median(r[i] for r in runs) for i in (0, 1))
            print(f"{name:<14} {mark:7.1f}s {ssh:7.1f}s {ssh / mark:10.2f}x")
        started = time.monotonic()
        done = {}

        def up(name):
            runner.up(load_board(name), images[name], Path(tmp), say=quiet)
            done[name] = time.monotonic() - started
        threads = [threading.Thread(target=up, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in names:
            runner.down(load_board(name), Path(tmp))
    print("all at once: " + ", ".join(f"{n} {done.get(n, float('nan')):.1f}s" for n in names))


def main_job():
    board = ensure_up(load_board("qemu-aarch64"))
    invoke = [str(REPO / ".venv" / "bin" / "invoke"), "-r", str(REPO)]
    subprocess.run(invoke + ["deploy", "--board", "qemu-aarch64"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-main-") as home:
        started = time.monotonic()
        subprocess.run(invoke + ["capture", "--board", "qemu-aarch64", "--cmd", "ls -l /", "--strace",
                                 f"--ftrace={MAIN_FTRACE}", "--dmesg", "--home", home],
                       check=True, capture_output=True)
        ours = time.monotonic() - started
    transport = SshTransport(board)
    try:
        started = time.monotonic()
        done = transport.run(["strace", "-f", "-o", "/tmp/bench-ref.txt", "ls", "-l", "/"])
        if done.code == 127:
            print(f"main job (invoke capture, qemu-aarch64): {ours:.1f}s; reference skipped: no strace on the board")
            return
        with tempfile.NamedTemporaryFile() as local:
            transport.get("/tmp/bench-ref.txt", Path(local.name))
        reference = time.monotonic() - started
    finally:
        transport.close()
    print(f"main job on qemu-aarch64: invoke capture (strace + function tracer + dmesg, pulled, "
          f"verified, rendered) {ours:.1f}s; reference (ssh strace + sftp get) {reference:.1f}s; "
          f"ratio {ours / reference:.1f}x")


@contextlib.contextmanager
def timed_steps(steps):
    """Append (step, seconds) to steps for each agent run, download and render while inside."""
    def wrap(owner, attr, name):
        original = getattr(owner, attr)

        def step(*args, **kwargs):
            started = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                steps.append((name(args), time.monotonic() - started))
        setattr(owner, attr, step)
        return original

    wrapped = [(fleet, "deploy", lambda a: "deploy (is the agent there?)"),
               (DeployedAgent, "run", lambda a: "agent " + " ".join(a[1][:2])),
               (SshTransport, "download", lambda a: "download"),
               (pull, "render_session", lambda a: "render text, JSON, trace.dat (host)"),
               (pull, "render_report", lambda a: "render report.html (host)")]
    originals = [wrap(owner, attr, name) for owner, attr, name in wrapped]
    try:
        yield
    finally:
        for (owner, attr, _), original in zip(wrapped, originals):
            setattr(owner, attr, original)


def main_job_pieces(reps=3):
    """The main job's steps (median of reps) and the cost of one round trip."""
    board = ensure_up(load_board("qemu-aarch64"))
    runs = []
    for _ in range(reps):
        steps = []
        request = make_request("ls -l /", True, MAIN_FTRACE, True, None)
        with tempfile.TemporaryDirectory(prefix="bench-pieces-") as home, timed_steps(steps):
            started = time.monotonic()
            if capture([board], request, home=Path(home)) != 0:
                raise SystemExit("the main job failed")
            steps.append(("total", time.monotonic() - started))
        totals = {}   # a step that runs twice (follow) counts once, its times summed
        for name, seconds in steps:
            totals[name] = totals.get(name, 0.0) + seconds
        runs.append(totals)
    print("main job piece by piece (median of %d):" % reps)
    for name in runs[0]:
        print(f"  {statistics.median(r.get(name, 0.0) for r in runs):5.2f}s  {name}")
    transport = SshTransport(board)
    try:
        agent = deploy(transport)
        for label, argv in (("ssh true", ["true"]),
                            ("python3 -I -S -c pass", [agent.python, "-I", "-S", "-c", "pass"]),
                            ("agent --version", [agent.python, "-I", "-S", agent.path, "--version"])):
            times = []
            for _ in range(reps):
                started = time.monotonic()
                transport.run(argv)
                times.append(time.monotonic() - started)
            print(f"  {statistics.median(times):5.2f}s  one round trip: {label}")
    finally:
        transport.close()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boards", default="qemu-aarch64,qemu-riscv64,qemu-armhf,qemu-x86_64")
    p.add_argument("--reps", type=int, default=3)
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    names = args.boards.split(",")
    for name in names:
        runner.down(load_board(name), STATE)   # boot times are for boards that were down
    boots(names, args.reps)
    main_job()
    main_job_pieces(args.reps)
