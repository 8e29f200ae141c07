"""The strace engine against the real strace: the same programs traced by both, compared line
by line (pids and addresses normalised), plus what only we do (--json, limits, seccomp)."""

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.agent import i386
from tests.agent import strace_ref as R
from tests.agent.pipe_reader import read_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGS = os.path.join(REPO, "tests", "agent", "progs")

needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="the reference strace is not installed (apt-get install strace)")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler to build the test programs (apt-get install gcc)")
pytestmark = [needs_cc]

LINE = re.compile(r"^(\d+) +(.*)$")
ADDR = re.compile(r"0x[0-9a-f]+")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("progs") / "engine_corpus")
    subprocess.run(["cc", "-O1", "-pthread", "-o", exe, os.path.join(PROGS, "engine_corpus.c")],
                   check=True)
    return exe


def ours(args, **kw):
    return subprocess.run([sys.executable, "-m", "target", "strace"] + args, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, **kw)


def reference(args, **kw):
    return subprocess.run(["strace"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, **kw)


def traced_lines(path):
    """-f -o lines as (process label, text): pids become P0 (the first), then P1, P2... in
    the order their parents' fork/clone calls returned them (children run in parallel, so
    their first lines come in any order), addresses 0xADDR, pids inside the text the labels."""
    lines = []
    with open(path) as f:
        for raw in f:
            match = LINE.match(raw.rstrip("\n"))
            lines.append(match.groups() if match else ("main", raw.rstrip("\n")))  # no -f: no pid
    pid_names = {lines[0][0]: "P0"} if lines else {}
    for pid, text in lines:
        born = re.match(r"^(?:<\.\.\. )?(?:clone3?|v?fork)\b.*= (\d+)$", text)
        if born:
            pid_names.setdefault(born.group(1), "P%d" % len(pid_names))
    for pid, _ in lines:   # threads or processes whose creation was not seen
        pid_names.setdefault(pid, "P%d" % len(pid_names))
    return [(pid_names[pid], normalise(text, pid_names)) for pid, text in lines]


def normalise(text, pid_names):
    text = ADDR.sub("0xADDR", text)
    text = re.sub(r"\s+=", " =", text)   # the column padding is compared elsewhere
    text = re.sub(r"^getppid\(\) = \d+", "getppid() = PPID", text)   # the tracer's pid
    text = R.mask_pids(text, pid_names)
    return re.sub(r"(si_pid=|wait4\(|execve in pid )\d+", r"\1PID", text)   # pids not traced


def per_process(lines):
    """{label: [text]}: each process's own sequence (processes run in parallel, so the
    interleaving differs from run to run), an <unfinished ...> line joined with its
    <... resumed> line (where a line is split depends on timing too)."""
    out = {}
    for label, text in lines:
        seq = out.setdefault(label, [])
        resumed = re.match(r"^<\.\.\. \w+ resumed>(.*)$", text)
        if resumed and seq and seq[-1].endswith(" <unfinished ...>"):
            seq[-1] = seq[-1][:-len(" <unfinished ...>")] + resumed.group(1)
        else:
            seq.append(text)
    return out


def both(corpus, tmp_path, opts, scenario):
    mine, theirs = str(tmp_path / "ours.txt"), str(tmp_path / "strace.txt")
    a = ours(opts + ["-o", mine, corpus] + scenario)
    b = reference(opts + ["-o", theirs, corpus] + scenario)
    return a, b, traced_lines(mine), traced_lines(theirs)


def timing_free(lines):
    """Without the SIGCHLD lines: whether a child's end is reported before or after its
    parent's wait4() returns is a matter of timing, under any tracer."""
    return [(p, t) for p, seq in per_process(lines).items() for t in seq
            if not t.startswith(("--- SIGCHLD", "rt_sigreturn("))]


def is_futex(item):
    return item[0] == "futex" if isinstance(item, tuple) else item.startswith("futex(")


def without_unequal_futex(mine, theirs):
    """Futex calls compared only for a process that made as many in both runs (whether
    pthread_join waits is timing). mine, theirs: {label: [line or (name, return)]}."""
    for label in set(mine) & set(theirs):
        if sum(map(is_futex, mine[label])) != sum(map(is_futex, theirs[label])):
            mine[label] = [t for t in mine[label] if not is_futex(t)]
            theirs[label] = [t for t in theirs[label] if not is_futex(t)]


def process_diff(ref, ours):
    """A unified diff per process label of {label: [line]}, for an assertion message."""
    lines = []
    for label in sorted(set(ref) | set(ours)):
        a, b = [str(t) for t in ref.get(label, [])], [str(t) for t in ours.get(label, [])]
        lines += difflib.unified_diff(a, b, "strace %s" % label, "ours %s" % label, lineterm="", n=0)
    return "\n".join(lines[:60])


def names_and_returns(lines):
    """Per process: (syscall name, return) for syscall lines; the other lines as they are."""
    out = {}
    for label, seq in per_process(lines).items():
        for text in seq:
            m = re.match(r"^(\w+)\(.*\) += (.*)$", text)
            out.setdefault(label, []).append((m.group(1), m.group(2)) if m else text)
    return out


@needs_strace
@pytest.mark.parametrize("scenario", [["fork"], ["thread"], ["errors"], ["exec"], ["forks", "5"]])
def test_same_syscalls_and_results_as_strace(corpus, tmp_path, scenario):
    a, b, mine, theirs = both(corpus, tmp_path, ["-f"], scenario)
    assert a.returncode == b.returncode, a.stderr
    mine, theirs = names_and_returns(timing_free(mine)), names_and_returns(timing_free(theirs))
    without_unequal_futex(mine, theirs)
    assert mine == theirs, process_diff(theirs, mine)


@needs_strace
@pytest.mark.parametrize("scenario", [["fork"], ["thread"], ["errors"], ["signal"], ["exec"], ["thread-exec"]])
def test_lines_match_strace_for_simple_syscalls(corpus, tmp_path, scenario):
    opts = ["-f", "-e", "trace=close,getpid,getppid,exit_group,exit"]
    a, b, mine, theirs = both(corpus, tmp_path, opts, scenario)
    assert a.returncode == b.returncode, a.stderr
    if scenario[0] == "signal":   # no children: its signal lines are deterministic
        assert per_process(mine) == per_process(theirs)
    else:
        assert per_process(timing_free(mine)) == per_process(timing_free(theirs))


@needs_strace
def test_column_and_prefix_match_strace_exactly(corpus, tmp_path):
    a = ours(["-e", "trace=close,getpid", "-e", "signal=none", corpus, "signal"])
    b = reference(["-e", "trace=close,getpid", "-e", "signal=none", corpus, "signal"])
    # getpid() in raise() names a pid: the rest must be identical, padding included
    assert digits_masked(a.stderr) == digits_masked(b.stderr)


@needs_strace
def test_killed_by_a_signal_like_strace(corpus):
    a = ours(["-e", "trace=close", corpus, "signal"])
    b = reference(["-e", "trace=close", corpus, "signal"])
    assert a.returncode == b.returncode == -signal.SIGUSR1
    assert a.stderr.splitlines()[-1] == "+++ killed by SIGUSR1 +++"
    assert digits_masked(a.stderr) == digits_masked(b.stderr)


@needs_strace
def test_errors_of_bad_input_are_strace_s(corpus):
    for args in (["boardtrace-no-such-command"], ["-p", "999999999"], ["-e", "trace=nosuchcall", "true"]):
        a, b = ours(args), reference(args)
        assert a.returncode == b.returncode == 1, (args, a.stderr)
        assert a.stderr.strip() == b.stderr.strip().splitlines()[0], args


def test_no_command_and_no_pid():
    a = ours([])
    assert a.returncode == 1 and a.stderr.strip() == "strace: must have PROG [ARGS] or -p PID"


@needs_strace
def test_summary_counts_match_strace(corpus, tmp_path):
    def table(text):
        rows = {}
        for line in text.splitlines():
            cols = line.split()
            if len(cols) >= 5 and cols[-1] != "total" and cols[0][0].isdigit():
                errors = cols[4] if len(cols) == 6 else ""
                rows[cols[-1]] = (cols[3], errors)
        return rows
    a = ours(["-f", "-c", corpus, "forks", "3"])
    b = reference(["-f", "-c", corpus, "forks", "3"])
    assert table(a.stderr) == table(b.stderr)
    assert "close" in table(a.stderr)


def test_seccomp_filter_is_used_and_changes_nothing(corpus, tmp_path):
    opts = ["-f", "-e", "trace=close,getppid", "-o"]
    a = ours(["--seccomp-bpf"] + opts + [str(tmp_path / "a"), corpus, "forks", "3"])
    b = ours(["--no-seccomp-bpf"] + opts + [str(tmp_path / "b"), corpus, "forks", "3"])
    assert a.returncode == b.returncode == 0, a.stderr
    assert per_process(traced_lines(str(tmp_path / "a"))) == per_process(traced_lines(str(tmp_path / "b")))
    probe = ours(["-f", "--seccomp-bpf", "-e", "trace=close", "--", "grep", "^Seccomp:", "/proc/self/status"])
    assert probe.stdout.split() == ["Seccomp:", "2"]


@needs_strace
def test_untraced_children_are_left_alone(corpus, tmp_path):
    """Without -f no seccomp filter: the children it would reach untraced would get ENOSYS."""
    a, b, mine, theirs = both(corpus, tmp_path, ["-e", "trace=close"], ["forks", "3"])
    assert a.returncode == b.returncode == 0
    assert per_process(mine) == per_process(theirs)


def test_many_children_at_once_all_end(corpus, tmp_path):
    out = str(tmp_path / "t")
    a = ours(["-f", "-q", "-e", "trace=close", "-o", out, corpus, "many", "200"])
    assert a.returncode == 0, a.stderr
    children = [seq for seq in per_process(traced_lines(out)).values() if seq[0].startswith("close(-1)")]
    assert len(children) == 200
    assert all(seq[-1] == "+++ exited with 0 +++" for seq in children)


def test_per_process_files(corpus, tmp_path):
    prefix = str(tmp_path / "trace")
    a = ours(["-ff", "-e", "trace=close", "-o", prefix, corpus, "forks", "2"])
    assert a.returncode == 0, a.stderr
    files = sorted(os.listdir(str(tmp_path)))
    assert len(files) == 3 and all(f.startswith("trace.") for f in files)
    for name in files:
        with open(os.path.join(str(tmp_path), name)) as f:
            text = f.read()
        assert "+++ exited with" in text and not re.match(r"^\d", text)


def test_json_lines(corpus):
    a = ours(["-f", "--json", "-e", "trace=close", corpus, "fork"])
    assert a.returncode == 3, a.stderr
    objs = [json.loads(line) for line in a.stderr.splitlines()]
    assert objs[0]["type"] == "header" and objs[0]["version"] == 1
    calls = [o for o in objs if o["type"] == "syscall"]
    assert {c["syscall"] for c in calls} == {"close"}
    assert all(isinstance(c["ts_ns"], int) and c["duration_ns"] >= 0 for c in calls)
    failed = [c for c in calls if c["retval"] == -1]
    assert len(failed) == 1 and failed[0]["error"] == "EBADF" and failed[0]["pid"] != calls[0]["pid"]
    assert [o["code"] for o in objs if o["type"] == "exit"] == [0, 3]


def start_loop(corpus):
    proc = subprocess.Popen([corpus, "loop"])
    time.sleep(0.1)
    return proc


def test_attach_then_detach_leaves_the_process_running(corpus):
    proc = start_loop(corpus)
    try:
        a = ours(["-p", str(proc.pid), "-e", "trace=getppid", "--max-duration", "0.5"])
        assert a.returncode == 0, a.stderr
        lines = a.stderr.splitlines()
        assert lines[0] == "strace: Process %d attached" % proc.pid
        assert lines[-1] == "strace: Process %d detached" % proc.pid
        assert sum(1 for l in lines if l.startswith("getppid()")) >= 5
        time.sleep(0.1)
        assert proc.poll() is None
        with open("/proc/%d/status" % proc.pid) as f:
            assert "TracerPid:\t0\n" in f.read()
    finally:
        proc.kill()
        proc.wait()


def tracer_pid(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^TracerPid:\s+(\d+)", f.read(), re.M).group(1))


def test_sigterm_detaches_attached_processes(corpus):
    proc = start_loop(corpus)
    try:
        tracer = subprocess.Popen([sys.executable, "-m", "target", "strace", "-q", "-p", str(proc.pid)],
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20  # attached: its handlers are set by then
        while tracer_pid(proc.pid) != tracer.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        tracer.terminate()
        _, err = tracer.communicate(timeout=10)
        assert tracer.returncode == 0, err
        time.sleep(0.1)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_max_events_stops_a_spawned_command(corpus):
    a = ours(["--max-events", "3", "-e", "trace=close,getppid,getpid", corpus, "errors"])
    assert a.returncode == 0, a.stderr
    shown = [l for l in a.stderr.splitlines() if re.match(r"^(close|getppid|getpid)\(", l)]
    assert len(shown) == 3


def test_group_stop_is_shown_and_job_control_works(corpus):
    tracer = subprocess.Popen([sys.executable, "-m", "target", "strace", "-e", "trace=close",
                               corpus, "stop"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = read_until(tracer.stderr, b"\n--- stopped by SIGSTOP ---\n").decode().splitlines()
        assert "--- stopped by SIGSTOP ---" in lines, lines
        children = subprocess.run(["pgrep", "-P", str(tracer.pid)], stdout=subprocess.PIPE,
                                  universal_newlines=True).stdout.split()
        assert children, "the traced program is not there"
        with open("/proc/%s/stat" % children[0]) as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
        os.kill(int(children[0]), signal.SIGCONT)
        _, err = tracer.communicate(timeout=10)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    lines += err.decode().splitlines()
    assert any(l.startswith("close(-8)") for l in lines)


def test_the_command_gets_default_signal_dispositions(tmp_path):
    """Python ignores SIGPIPE; a command started by the agent must not inherit that."""
    a = ours(["-e", "trace=none", "--", "grep", "^SigIgn:", "/proc/self/status"])
    b = subprocess.run(["sh", "-c", "grep ^SigIgn: /proc/self/status"], stdout=subprocess.PIPE,
                       universal_newlines=True)
    assert a.stdout == b.stdout


INJECTIONS = ["inject=close:retval=42", "inject=close:error=ENOENT:when=2+",
              "inject=getpid:signal=SIGUSR2", "fault=close:when=3",
              "inject=getppid:error=EPERM:syscall=getpid"]


def digits_masked(text):
    """pids masked: what getpid() and friends return, si_pid=, [pid N] prefixes."""
    text = re.sub(r"^((?:\[pid +\d+\] )?(?:getpid|getppid|gettid)\(\) += )\d+", r"\1N", text, flags=re.M)
    text = re.sub(r"^((?:set_tid_address|clone3?|v?fork|wait4)\(.*= )\d+$", r"\1N", text, flags=re.M)
    text = re.sub(r"si_pid=\d+", "si_pid=N", text)
    return re.sub(r"\[pid +\d+\]", "[pid N]", text)


@needs_strace
@pytest.mark.parametrize("seccomp", ["--seccomp-bpf", "--no-seccomp-bpf"])
@pytest.mark.parametrize("expression", INJECTIONS)
def test_injection_like_strace(corpus, expression, seccomp):
    opts = ["-f", "-e", "trace=close,getpid,getppid", "-e", expression, "-e", "signal=none"]
    a = ours([seccomp] + opts + [corpus, "errors"])
    b = reference(opts + [corpus, "errors"])
    assert a.returncode == b.returncode
    assert digits_masked(a.stderr) == digits_masked(b.stderr)


@pytest.fixture(scope="module")
def corpus_i386(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("progs32") / "engine_corpus")
    try:
        built = subprocess.run(i386.CC + ["-O1", "-pthread", "-o", exe,
                                          os.path.join(PROGS, "engine_corpus.c")], stderr=subprocess.PIPE)
    except FileNotFoundError:
        pytest.skip(i386.MISSING)
    if built.returncode != 0:
        pytest.skip(i386.MISSING)
    return exe


@needs_strace
@pytest.mark.parametrize("opts", [["-f"], ["-e", "inject=close:error=EACCES:when=3+"],
                                  ["-e", "trace=close,getppid"]])
def test_i386_program_on_x86_64_like_strace(corpus_i386, tmp_path, opts):
    """The compat personality is told by PTRACE_GET_SYSCALL_INFO's arch: i386 table, i386
    registers for injection."""
    a, b, mine, theirs = both(corpus_i386, tmp_path, opts, ["fork"])
    assert a.returncode == b.returncode, a.stderr

    # set_thread_area's struct user_desc is not decoded yet; the static build's getrandom
    # bytes differ from run to run
    def comparable(lines):
        return per_process([(p, digits_masked(t)) for p, t in timing_free(lines)
                            if not t.startswith(("set_thread_area(", "getrandom("))])
    assert comparable(mine) == comparable(theirs)


def test_injected_calls_are_marked_in_json(corpus):
    a = ours(["--json", "-e", "trace=close", "-e", "inject=close:error=ENOENT:when=3", corpus, "errors"])
    calls = [json.loads(l) for l in a.stderr.splitlines() if '"syscall"' in l]
    marked = [c for c in calls if c.get("injected")]
    assert len(marked) == 1 and marked[0]["error"] == "ENOENT" and marked[0]["args"] == [-1]


def test_the_register_path_gives_the_same_lines(corpus, tmp_path):
    """--regs reads syscalls from the registers, as on kernels older than 5.3."""
    for name, extra in (("info", []), ("regs", ["--regs"])):
        done = ours(extra + ["-f", "-o", str(tmp_path / name), corpus, "fork"])
        assert done.returncode == 3, done.stderr
    assert per_process(traced_lines(str(tmp_path / "info"))) == \
        per_process(traced_lines(str(tmp_path / "regs")))


@needs_strace
def test_attach_without_permission_like_strace(corpus):
    """An unprivileged user may not trace a root process."""
    proc = start_loop(corpus)
    nobody = lambda: os.setuid(65534)   # noqa: E731
    python = shutil.which("python3", path="/usr/bin:/bin")
    try:
        a = subprocess.run([python, "-m", "target", "strace", "-p", str(proc.pid)], cwd=REPO,
                           preexec_fn=nobody, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        b = reference(["-p", str(proc.pid)], preexec_fn=nobody)
    finally:
        proc.kill()
        proc.wait()
    if not a.stderr.startswith("strace: "):   # e.g. a checkout under /root
        pytest.skip("user nobody cannot run the agent from %s: %s" % (REPO, a.stderr.strip()[-200:]))
    assert a.returncode == b.returncode == 1
    assert a.stderr.strip() == b.stderr.strip().splitlines()[0]
    assert "Operation not permitted" in a.stderr


@needs_strace
@pytest.mark.parametrize("opts,stamp", [
    (["-t"], r"\d\d:\d\d:\d\d "), (["-tt"], r"\d\d:\d\d:\d\d\.\d{6} "),
    (["-ttt"], r"\d{10}\.\d{6} "), (["-r"], r" +\d+\.\d{6} "),
    (["-T"], r""), (["-tt", "-T", "-f"], r"\d\d:\d\d:\d\d\.\d{6} ")])
def test_time_stamps_have_strace_s_shape(corpus, tmp_path, opts, stamp):
    def shapes(path):
        with open(path) as f:
            text = f.read()
        text = re.sub(r"^(\d+ +)?" + stamp, "STAMP ", text, flags=re.M) if stamp else text
        text = re.sub(r" <\d+\.\d{6}>$", " <T>", text, flags=re.M)
        return [l for l in text.splitlines() if "close(" in l or "+++" in l]
    mine, theirs = str(tmp_path / "a"), str(tmp_path / "b")
    ours(opts + ["-e", "trace=close", "-o", mine, corpus, "errors"])
    reference(opts + ["-e", "trace=close", "-o", theirs, corpus, "errors"])
    assert shapes(mine) == shapes(theirs)
    assert shapes(mine)[0].startswith("STAMP" if stamp else "close(")


REAL_PROGRAMS = [
    ["sh", "-c", "ls / | wc -l > /dev/null; cat /etc/hostname > /dev/null"],
    ["/usr/bin/python3", "-S", "-c", "import json, os; os.write(1, json.dumps([1]).encode())"],
    ["tar", "-cf", "/dev/null", "/etc/hostname", "/etc/passwd"],
]


@needs_strace
@pytest.mark.parametrize("command", REAL_PROGRAMS, ids=lambda c: c[0].split("/")[-1])
def test_real_programs_same_syscalls_and_results(tmp_path, command):
    a, b, mine, theirs = both(command[0], tmp_path, ["-f"], command[1:])
    assert a.returncode == b.returncode == 0, a.stderr

    # which child a shell reaps first is timing too: each process's calls as a multiset
    def calls(lines):
        return {p: sorted(map(str, seq)) for p, seq in names_and_returns(timing_free(lines)).items()}
    assert calls(mine) == calls(theirs)


def test_json_names_process_and_thread(corpus):
    a = ours(["-f", "--json", "-e", "trace=close", corpus, "thread"])
    objs = [json.loads(l) for l in a.stderr.splitlines()]
    calls = {c["args"][0]: c for c in objs if c["type"] == "syscall" and c["args"][0] < 0}
    thread, main = calls[-5], calls[-6]       # close(-5) in the thread, close(-6) in main
    assert main["pid"] == main["tid"] == thread["pid"] != thread["tid"]
