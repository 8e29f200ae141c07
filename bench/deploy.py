#!/usr/bin/env python3
"""Benchmark: deploy, capture start and pull over a real OpenSSH server on loopback.

    sudo .venv/bin/python bench/deploy.py [--reps 5] [--dd-bytes 100000]

Starts Debian's sshd on 127.0.0.1 (tests/host/sshd.py) and reaches this machine through it as
an SSH board. Prints: the agent's size; the first deploy (fresh workdir each rep: upload and
the board's bytecode archive); a no-op redeploy with its round trips (transport run/put calls)
against one bare `ssh true` round trip; capture start latency (`start()` returning: every part
running) for dmesg alone and for strace + ftrace + dmesg around `sleep 1`; and pull throughput
of an ftrace bundle (raw_syscalls of `dd bs=1`) against a raw SFTP download of the same tar in
the same run, with the pull split into its parts. Median of --reps runs (more for the cheap
round trips).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, REPO)
import host.pull  # noqa: E402
from host.agentbuild import build_agent  # noqa: E402
from host.capture import DEFAULT_FTRACE, CaptureRequest, follow, start, stop  # noqa: E402
from host.deploy import deploy  # noqa: E402
from host.errors import BoardtraceError  # noqa: E402
from host.progress import Progress  # noqa: E402
from host.transport import open_transport  # noqa: E402
from tests.host.sshd import ssh_board, sshd_available, start_sshd  # noqa: E402

MB = 1e6


def clock(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def connected(server, workdir):
    transport = open_transport(ssh_board(server, workdir))
    transport.run(["true"])  # connect and authenticate outside the timings
    return transport


def counting(transport):
    """Count transport.run and transport.put calls (the instance's methods are replaced)."""
    calls = {"run": 0, "put": 0}
    for name in calls:
        def wrapped(*a, _name=name, _orig=getattr(transport, name), **k):
            calls[_name] += 1
            return _orig(*a, **k)
        setattr(transport, name, wrapped)
    return calls


def timed_parts(targets, times):
    """Wrap (object, attribute) functions to add their run time to times[attribute]."""
    for obj, name in targets:
        orig = getattr(obj, name)

        def wrapped(*a, _orig=orig, _name=name, **k):
            t, result = clock(_orig, *a, **k)
            times[_name] = times.get(_name, 0.0) + t
            return result
        setattr(obj, name, wrapped)


def start_latency(agent, make_request, reps, quiet):
    runs = []
    for _ in range(reps):
        request = make_request()
        t, session = clock(start, agent, request)
        runs.append(t)
        if request.cmd:
            follow(agent, session, quiet, interval=0.2)
        else:
            stop(agent, session)
    return statistics.median(runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--dd-bytes", type=int, default=100000, help="dd bs=1 count for the pull bundle")
    args = p.parse_args()
    if os.geteuid() != 0 or not sshd_available():
        sys.exit("bench/deploy.py: needs root (ftrace, sshd) and Debian's openssh-server")
    reps = args.reps
    quiet = Progress("bench", stream=open(os.devnull, "w"), in_place=False)
    agent_build = build_agent()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp, start_sshd(Path(tmp)) as server:
        tmp = Path(tmp)
        print("deploy benchmark: OpenSSH sshd on 127.0.0.1:%d, paramiko client; median of %d runs"
              " (bare and no-op round trips: %d)" % (server.port, reps, 4 * reps))
        print("agent: %d bytes, sha256 %s..." % (agent_build.size, agent_build.sha256[:16]))

        first = []
        for i in range(reps):
            transport = connected(server, tmp / ("fresh%d" % i) / "work")
            calls = counting(transport)
            t, deployed = clock(deploy, transport, agent_build)
            assert deployed.uploaded
            first.append(t)
            transport.close()
        print("first deploy (fresh workdir: upload + bytecode archive): %.0f ms; %d run, %d put"
              % (statistics.median(first) * 1e3, calls["run"], calls["put"]))

        transport = connected(server, tmp / "work")
        agent = deploy(transport, agent_build)
        bare = statistics.median(clock(transport.run, ["true"])[0] for _ in range(4 * reps))
        calls = counting(transport)
        noop = [clock(deploy, transport, agent_build) for _ in range(4 * reps)]
        assert not any(d.uploaded for _, d in noop)
        noop_time = statistics.median(t for t, _ in noop)
        print("no-op redeploy: %.1f ms; round trips: %d, uploaded: no (per deploy: %d run, %d put)"
              % (noop_time * 1e3, (calls["run"] + calls["put"]) // len(noop),
                 calls["run"] // len(noop), calls["put"] // len(noop)))
        print("one bare round trip (transport.run(['true'])): %.1f ms; no-op redeploy / bare = %.1fx"
              % (bare * 1e3, noop_time / bare))

        try:
            dmesg = start_latency(agent, lambda: CaptureRequest(dmesg=True), reps, quiet)
            print("capture start, dmesg only: %.0f ms" % (dmesg * 1e3))
            full = lambda: CaptureRequest(cmd=("sleep", "1"), strace=("-f",),  # noqa: E731
                                          ftrace=tuple(DEFAULT_FTRACE.split()), dmesg=True)
            try:
                both = start_latency(agent, full, reps, quiet)
                print("capture start, strace -f + ftrace (sched, irq) + dmesg, `sleep 1`: %.0f ms"
                      % (both * 1e3))
            except BoardtraceError as e:
                print("capture start with ftrace: not possible here (%s)" % e)
                both = start_latency(agent, lambda: CaptureRequest(
                    cmd=("sleep", "1"), strace=("-f",), dmesg=True), reps, quiet)
                print("capture start, strace -f + dmesg, `sleep 1`: %.0f ms" % (both * 1e3))
            pull_report(agent, transport, tmp, reps, args.dd_bytes, quiet)
        finally:
            agent.run(["capture", "clean", "--all"])
            transport.close()


def pull_report(agent, transport, tmp, reps, dd_bytes, quiet):
    dd = ("dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=%d" % dd_bytes)
    request = CaptureRequest(cmd=dd, ftrace=("-e", "raw_syscalls", "-f", 'comm == "dd"'))
    follow(agent, start(agent, request), quiet, interval=0.2)
    session = request.session_id
    raw, pulls, parts = [], [], {}
    timed_parts([(transport, "download"), (host.pull, "sha256_file"),
                 (host.pull, "unpack_bundle"), (host.pull, "render_session")], parts)
    sftp = transport._client().open_sftp()  # a second SFTP session on the same connection
    try:
        for i in range(reps):
            packed = agent.json(["capture", "pack", session])
            local = tmp / ("raw%d.tar" % i)
            raw.append(clock(sftp.get, transport._remote_path(packed["tar"]), str(local))[0])
            assert local.stat().st_size == packed["size"]
            local.unlink()
            pulled = clock(host.pull.pull, agent, session, tmp / ("home%d" % i))
            pulls.append(pulled[0])
    finally:
        sftp.close()
    size = packed["size"]
    files = ", ".join(sorted(f.name for f in pulled[1].outputs))
    raw_t, pull_t = statistics.median(raw), statistics.median(pulls)
    print()
    print("pull: ftrace -e raw_syscalls -f 'comm == \"dd\"' of `%s`: tar %.1f MB; renders %s"
          % (" ".join(dd), size / MB, files))
    print("%-44s %9s %9s" % ("", "time", "MB/s"))
    print("%-44s %8.2fs %9.1f" % ("raw SFTP get of the same tar (paramiko)", raw_t, size / MB / raw_t))
    print("%-44s %8.2fs %9.1f" % ("pull() end to end", pull_t, size / MB / pull_t))
    for name, what in (("download", "  transport.download"), ("sha256_file", "  sha256 of the tar"),
                       ("unpack_bundle", "  unpack + verify (host.bundle)"),
                       ("render_session", "  render (host.outputs)")):
        t = parts.get(name, 0.0) / len(pulls)
        print("%-44s %8.2fs %9.1f" % (what, t, size / MB / t if t else 0))
    rest = statistics.mean(pulls) - sum(parts.values()) / len(pulls)
    print("%-44s %8.2fs" % ("  rest (pack, clean --tar round trips)", rest))
    download = parts["download"] / len(pulls)
    print("pull / raw throughput: %.2f end to end, %.2f for the download alone"
          % (raw_t / pull_t, raw_t / download))


if __name__ == "__main__":
    main()
