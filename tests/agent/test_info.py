"""`agent info` on the real machine: every fact is compared with a second source."""

import errno
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import zipapp

import pytest

import target
from target import arch, info, kconfig, libc, mounts
from target.strace import probe as strace_probe

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.path.expanduser("~/.pyenv/versions")

SECTIONS = {"agent", "arch", "clocks", "cpus", "ftrace", "kconfig", "kernel", "kmsg",
            "ptrace", "python", "seccomp", "user", "workdir"}

# getppid and ptrace syscall numbers, per audit arch name
GETPPID = {"x86_64": 110, "i386": 64, "aarch64": 173, "riscv64": 173, "arm": 64}
PTRACE_NR = {"x86_64": 101, "i386": 26, "aarch64": 117, "riscv64": 117, "armhf": 26,
             "armel": 26}


def run_agent(*args, python=None, cwd=REPO, prefix=()):
    cmd = list(prefix) + [python or sys.executable, "-m", "target", "info"] + list(args)
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


def agent_json(*args, **kw):
    done = run_agent(*args, **kw)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def command(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout.strip()


def mount(fstype, where, options=None):
    """mount(8); returns None or why it failed."""
    cmd = ["mount", "-t", fstype] + (["-o", options] if options else []) + ["nodev", where]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    return None if done.returncode == 0 else done.stdout.strip() or "mount failed"


@pytest.fixture
def mounted(tmp_path):
    """mounted(fstype, name, options) -> path of a fresh mount; all unmounted after."""
    made = []

    def make(fstype, name, options=None):
        where = str(tmp_path / name)
        os.makedirs(where, exist_ok=True)
        failed = mount(fstype, where, options)
        if failed:
            pytest.skip("cannot mount %s here: %s" % (fstype, failed))
        made.append(where)
        return where

    yield make
    for where in reversed(made):
        subprocess.run(["umount", where], check=True)


@pytest.fixture(scope="module")
def report():
    return agent_json()


# --- the whole report -----------------------------------------------------------------

def test_every_section_and_no_probe_failed(report):
    assert set(report) == SECTIONS
    for name, section in report.items():
        assert not (isinstance(section, dict) and set(section) == {"error"}), (name, section)


def test_run_time_well_under_a_second(report):
    assert report["agent"]["elapsed_ns"] < 1e9
    assert report["agent"]["version"] == target.VERSION
    assert report["agent"]["archive"] is None


def test_start_time_is_clock_monotonic_ns(tmp_path):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    data = info.collect(str(tmp_path))
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert before <= data["agent"]["start_monotonic_ns"] <= after
    assert 0 < data["agent"]["elapsed_ns"] <= after - before


def test_compact_and_indented_output():
    compact = run_agent("--compact")
    pretty = run_agent()
    assert compact.returncode == pretty.returncode == 0
    assert compact.stdout.count("\n") == 1
    assert pretty.stdout.count("\n") > len(SECTIONS)
    assert set(json.loads(compact.stdout)) == set(json.loads(pretty.stdout)) == SECTIONS
    keys = list(json.loads(pretty.stdout))
    assert keys == sorted(keys)


@pytest.mark.parametrize("args,status,words", [
    (["--workdir", "/nonexistent/dir"], 1, "info: --workdir /nonexistent/dir: not a directory"),
    (["--tracefs", "/nonexistent/t"], 1, "info: --tracefs /nonexistent/t: not a directory"),
    (["--bogus"], 2, "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line(args, status, words):
    done = run_agent(*args)
    assert done.returncode == status
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and words in done.stderr


def test_a_failing_probe_does_not_end_the_report(tmp_path):
    gone = str(tmp_path / "gone")
    data = info.collect(gone)
    assert data["workdir"] == {"error": "ValueError: %s: not a directory" % gone}
    assert data["kernel"]["release"] == os.uname().release
    assert data["ptrace"]["allowed"] is True


@pytest.mark.parametrize("version", ["3.8", "3.13"])
def test_runs_under_other_pythons(version):
    found = sorted(glob.glob(os.path.join(PYENV, "%s.*" % version, "bin",
                                          "python%s" % version)))
    python = found[-1] if found else shutil.which("python%s" % version)
    if not python:
        pytest.skip("CPython %s is not installed (no pyenv version, not on PATH)" % version)
    data = agent_json("--compact", python=python)
    assert set(data) == SECTIONS
    assert data["python"]["version"].startswith(version + ".")
    assert data["arch"]["file"] == os.path.realpath(python)
    assert data["ptrace"]["allowed"] is True


def test_from_a_zipapp_the_workdir_is_its_directory(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "target"), str(src / "target"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    pyz = str(tmp_path / "out" / "agent.pyz")
    os.makedirs(os.path.dirname(pyz))
    zipapp.create_archive(str(src), pyz, main="target.__main__:main")
    done = subprocess.run([sys.executable, pyz, "info", "--compact"], cwd="/",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["agent"]["archive"] == pyz
    assert data["workdir"]["path"] == os.path.dirname(pyz)


# --- plain facts against other sources ------------------------------------------------

def test_kernel_matches_uname(report):
    assert report["kernel"]["release"] == command("uname", "-r")
    assert report["kernel"]["version"] == command("uname", "-v")
    assert report["kernel"]["hostname"] == command("uname", "-n")
    assert report["kernel"]["page_size"] == int(command("getconf", "PAGESIZE"))


def test_arch_matches_the_interpreter(report):
    assert report["arch"]["name"] == arch.elf_arch(os.path.realpath(sys.executable))
    assert report["arch"]["uname_machine"] == command("uname", "-m")
    assert report["arch"]["bits"] == report["python"]["bits"] == (
        64 if sys.maxsize > 2 ** 32 else 32)


def test_python_and_user(report):
    assert report["python"]["executable"] == sys.executable
    assert report["python"]["implementation"] == sys.implementation.name
    assert report["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert report["user"]["uid"] == os.getuid() and report["user"]["euid"] == os.geteuid()
    assert report["user"]["root"] is (command("id", "-u") == "0")


def test_cpus(report):
    cpus = report["cpus"]
    assert cpus["count"] == os.cpu_count()
    assert cpus["affinity"] == int(command("nproc"))
    assert cpus["online"] == int(command("getconf", "_NPROCESSORS_ONLN"))
    assert info.cpu_list_count("0-3,6,8-9") == 7
    assert info.cpu_list_count("0") == 1


def test_clocks(report):
    assert report["clocks"]["monotonic"]["resolution_ns"] == round(
        time.clock_getres(time.CLOCK_MONOTONIC) * 1e9)
    assert {"realtime", "monotonic", "monotonic_raw", "boottime"} <= set(report["clocks"])


# --- ptrace and seccomp ---------------------------------------------------------------

def children():
    found = set()
    for path in glob.glob("/proc/self/task/*/children"):
        with open(path) as f:
            found.update(f.read().split())
    return found


def test_ptrace_probe_sees_the_getppid_syscall():
    before = children()
    result = strace_probe.ptrace_probe()
    assert children() == before, "probe child outlived the probe"
    assert result["allowed"] is True and result["error"] is None
    assert result["exitkill"] is True
    scope = "/proc/sys/kernel/yama/ptrace_scope"
    if os.path.exists(scope):
        with open(scope) as f:
            assert result["yama_ptrace_scope"] == int(f.read())
    else:
        assert result["yama_ptrace_scope"] is None
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    assert result["get_syscall_info"] is ((major, minor) >= (5, 3))
    if result["get_syscall_info"]:
        seen = result["syscall_info"]
        assert seen["op"] == "entry" and seen["size"] == 80
        native = arch.interpreter_arch()
        assert seen["arch"] == ("arm" if native in ("armhf", "armel") else native)
        if seen["arch"] in GETPPID:
            assert seen["nr"] == GETPPID[seen["arch"]]


SECCOMP_CHILD = r"""
import ctypes, json, struct, sys
from target import arch, libc
from target.strace import probe

def insn(code, k, jt=0, jf=0):
    return struct.pack("=HBBI", code, jt, jf, k)

audit, ptrace_nr = int(sys.argv[1]), int(sys.argv[2])
prog = b"".join([
    insn(0x20, 4),                   # A = seccomp_data.arch
    insn(0x15, audit, 0, 3),         # foreign arch -> allow
    insn(0x20, 0),                   # A = seccomp_data.nr
    insn(0x15, ptrace_nr, 0, 1),     # ptrace -> EPERM
    insn(0x06, 0x00050000 | 1),
    insn(0x06, 0x7fff0000),          # allow
])

class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

code = ctypes.create_string_buffer(prog)
fprog = Fprog(len(prog) // 8, ctypes.addressof(code))
libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
libc.prctl(22, 2, ctypes.addressof(fprog))   # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
print(json.dumps({"ptrace": probe.ptrace_probe(), "seccomp": probe.seccomp_probe()}))
"""


def test_ptrace_refused_by_a_seccomp_filter():
    """A real denial: a filter that makes ptrace(2) fail with EPERM, inherited by the
    probe's child; the same run shows the filter in the seccomp facts."""
    name = arch.interpreter_arch()
    if name not in PTRACE_NR or name not in arch.AUDIT_ARCH:
        pytest.skip("no ptrace syscall number in this test for %s" % name)
    done = subprocess.run([sys.executable, "-c", SECCOMP_CHILD, str(arch.AUDIT_ARCH[name]),
                           str(PTRACE_NR[name])], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ptrace"]["allowed"] is False
    assert data["ptrace"]["error"].startswith("EPERM: PTRACE_TRACEME")
    assert data["seccomp"]["mode"] == "filter"
    assert data["seccomp"]["status"]["Seccomp"] == 2
    if data["seccomp"]["status"]["Seccomp_filters"] is not None:
        assert data["seccomp"]["status"]["Seccomp_filters"] == 1


def test_seccomp(report):
    sec = report["seccomp"]
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if line.startswith("Seccomp"))
    assert sec["status"]["Seccomp"] == int(status["Seccomp"])
    assert sec["mode"] == {0: "disabled", 1: "strict", 2: "filter"}[int(status["Seccomp"])]
    assert sec["syscall_nr"] == arch.SECCOMP_SYSCALL[report["arch"]["name"]]
    avail = "/proc/sys/kernel/seccomp/actions_avail"
    if os.path.exists(avail):
        with open(avail) as f:
            names = f.read().split()
        assert sec["actions_avail"] == names
        assert sec["ret_trace"] is ("trace" in names)


def test_seccomp_action_avail_rejects_an_unknown_action():
    nr = arch.SECCOMP_SYSCALL[arch.interpreter_arch()]
    with pytest.raises(OSError) as e:
        libc.seccomp_action_avail(nr, 0x7FF10000)
    assert e.value.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


# --- /dev/kmsg ------------------------------------------------------------------------

def test_kmsg(report):
    kmsg = report["kmsg"]
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
        direct = None
    except OSError as e:
        direct = e.errno
    assert kmsg["readable"] is (direct is None)
    assert kmsg["exists"] is os.path.exists("/dev/kmsg")
    with open("/proc/sys/kernel/dmesg_restrict") as f:
        assert kmsg["dmesg_restrict"] == int(f.read())
    with open("/proc/sys/kernel/printk_devkmsg") as f:
        assert kmsg["printk_devkmsg"] == f.read().strip()


def test_kmsg_missing_device(tmp_path):
    result = info.kmsg_facts(str(tmp_path / "kmsg"))
    assert result["exists"] is False and result["readable"] is False
    assert result["error"].startswith("ENOENT: ")


# --- kernel config --------------------------------------------------------------------

def test_kconfig_matches_zcat(report):
    source = report["kconfig"]["source"]
    if source is None:
        assert not os.path.exists("/proc/config.gz")
        assert not os.path.exists("/boot/config-" + os.uname().release)
        assert report["kconfig"]["options"] is None
        assert "no kernel config available" in report["kconfig"]["reason"]
        return
    reader = ["gzip", "-dc", source] if source.endswith(".gz") else ["cat", source]
    text = subprocess.run(reader, stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout
    for name, value in report["kconfig"]["options"].items():
        if value == "not set":
            assert "CONFIG_%s=" % name not in text
        else:
            assert "\nCONFIG_%s=%s\n" % (name, value) in text
    assert list(report["kconfig"]["options"]) == sorted(kconfig.RELEVANT)


def test_kconfig_without_any_config(tmp_path):
    paths = [str(tmp_path / "config.gz"), str(tmp_path / "config-6.1")]
    result = kconfig.describe(paths)
    assert result["source"] is None and result["options"] is None
    for path in paths:
        assert path + ": No such file or directory" in result["reason"]


KCONFIG = """#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_FTRACE=y
CONFIG_KPROBE_EVENTS=m
# CONFIG_FUNCTION_GRAPH_TRACER is not set
CONFIG_LOG_BUF_SHIFT=17
CONFIG_LOCALVERSION="-board \\"x\\""
CONFIG_PHYSICAL_START=0x1000000
"""


def test_kconfig_parser_on_written_files(tmp_path):
    gz = str(tmp_path / "config.gz")
    with gzip.open(gz, "wt") as f:
        f.write(KCONFIG)
    plain = str(tmp_path / "config-x")
    with open(plain, "w") as f:
        f.write(KCONFIG)
    for path in (gz, plain):
        source, options = kconfig.load([str(tmp_path / "absent"), path])
        assert source == path
        assert options == {"FTRACE": "y", "KPROBE_EVENTS": "m",
                           "FUNCTION_GRAPH_TRACER": "not set", "LOG_BUF_SHIFT": 17,
                           "LOCALVERSION": '-board "x"', "PHYSICAL_START": "0x1000000"}
    result = kconfig.describe([gz])
    assert result["options"]["FTRACE"] == "y"
    assert result["options"]["TRACING"] == "not set"  # absent from the file


def test_kconfig_corrupt_gzip_falls_through(tmp_path):
    bad = tmp_path / "config.gz"
    bad.write_bytes(b"not gzip at all")
    plain = tmp_path / "config-x"
    plain.write_text(KCONFIG)
    source, options = kconfig.load([str(bad), str(plain)])
    assert source == str(plain) and options["FTRACE"] == "y"
    source, reason = kconfig.load([str(bad)])
    assert source is None and str(bad) in reason


# --- workdir and the mount table ------------------------------------------------------

def test_workdir_default_is_the_current_directory(report):
    assert report["workdir"]["path"] == os.path.realpath(REPO)
    entry = mounts.find_mount(REPO)
    assert report["workdir"]["mount_point"] == entry["mount_point"]
    assert report["workdir"]["writable"] is os.access(REPO, os.W_OK)
    out = command("findmnt", "-n", "-o", "TARGET,FSTYPE", "-T", REPO).split() \
        if shutil.which("findmnt") else None
    if out:
        assert [report["workdir"]["mount_point"], report["workdir"]["fstype"]] == out


def test_noexec_tmpfs_is_detected(mounted):
    where = mounted("tmpfs", "noexec", "noexec,size=1m")
    sub = os.path.join(where, "sessions")
    os.mkdir(sub)
    facts = mounts.describe_workdir(sub)
    assert facts["mount_point"] == where and facts["fstype"] == "tmpfs"
    assert facts["noexec"] is True and facts["writable"] is True
    if shutil.which("df"):
        avail = command("df", "-B1", "--output=avail", sub).split()[-1]
        assert facts["free_bytes"] == int(avail)
    data = agent_json("--workdir", sub, "--compact")
    assert data["workdir"]["noexec"] is True
    assert data["workdir"]["path"] == sub


def test_exec_and_read_only_tmpfs(mounted):
    where = mounted("tmpfs", "ro", "ro,size=1m")
    facts = mounts.describe_workdir(where)
    assert facts["noexec"] is False
    assert facts["read_only"] is True and facts["writable"] is False


def test_nested_mount_and_escaped_names(mounted):
    outer = mounted("tmpfs", "outer dir", "size=1m")
    inner = os.path.join(outer, "in\tner")
    os.mkdir(inner)
    mounted("tmpfs", os.path.join("outer dir", "in\tner"), "size=1m,noexec")
    points = [m["mount_point"] for m in mounts.read_mounts()]
    assert outer in points and inner in points
    assert mounts.find_mount(os.path.join(inner, "x"))["mount_point"] == inner
    assert mounts.describe_workdir(inner)["noexec"] is True
    assert mounts.describe_workdir(outer)["noexec"] is False


def test_mountinfo_matches_proc_mounts():
    table = mounts.read_mounts()
    with open("/proc/mounts") as f:
        proc = [line.split()[:3] for line in f]
    assert [[m["source"].replace(" ", "\\040"), m["mount_point"].replace(" ", "\\040")
             .replace("\t", "\\011"), m["fstype"]] for m in table] == proc


def test_malformed_mountinfo_line():
    with pytest.raises(ValueError, match="separator"):
        mounts.parse_line("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3 /dev/root rw")


# --- tracefs through the CLI ----------------------------------------------------------

@pytest.fixture
def private_tracefs(mounted):
    return mounted("tracefs", "tracefs")


def test_function_tracer_through_the_cli(private_tracefs):
    data = agent_json("--tracefs", private_tracefs, "--compact")
    ft = data["ftrace"]
    assert ft["path"] == private_tracefs and ft["mounted"] is True
    assert ft["found_by"] == "argument"
    with open(os.path.join(private_tracefs, "available_tracers")) as f:
        assert ft["tracers"] == f.read().split()
    with open(os.path.join(private_tracefs, "available_events")) as f:
        assert ft["events"] == sum(1 for line in f if line.strip())
    func = ft["function_tracer"]
    assert func["listed"] is ("function" in ft["tracers"])
    if not func["ok"]:
        assert func["errno"] in errno.errorcode.values() or func["errno"] is None
        if func["errno"] in ("EPERM", "EACCES"):
            assert "policy or privileges" in func["reason"]
    leftovers = [n for n in os.listdir(os.path.join(private_tracefs, "instances"))
                 if n.startswith("boardtrace-probe-")]
    for name in leftovers:  # only other, live probes may have instances now
        assert os.path.exists("/proc/" + name.rsplit("-", 1)[1])


def test_mount_tracefs_mounts_for_the_probes_and_unmounts(tmp_path):
    where = str(tmp_path / "t")
    os.mkdir(where)
    facts = info.ftrace_facts(where, mount=True)
    if "mount_error" in facts:
        pytest.skip("mounting tracefs is not permitted here: %s" % facts["mount_error"])
    assert facts["mounted_by_agent"] is True and facts["unmounted_after"] is True
    assert "nop" in facts["tracers"] and facts["events"] > 0
    assert isinstance(facts["function_tracer"]["ok"], bool)
    assert where not in [m["mount_point"] for m in mounts.read_mounts()]
    assert os.listdir(where) == []


def test_unmounted_tracefs_gives_a_hint(tmp_path):
    facts = info.ftrace_facts(str(tmp_path), mount=False)
    assert facts["mounted"] is False
    assert facts["tracers"] is None and facts["function_tracer"] is None
    assert "--mount-tracefs" in facts["hint"]


# --- as an unprivileged user ----------------------------------------------------------

def test_as_nobody():
    """The same agent as uid 65534: refusals are reported, the report is still whole."""
    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip("needs root, setpriv(1) and /usr/bin/python3")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    check = subprocess.run(prefix + [python, "-c", "import target.info"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
    if check.returncode != 0:
        pytest.skip("uid 65534 cannot run the agent from %s: %s" % (REPO, check.stdout))
    data = agent_json("--compact", "--mount-tracefs", python=python, prefix=prefix)
    assert set(data) == SECTIONS
    assert data["user"] == {"uid": 65534, "euid": 65534, "gid": 65534, "egid": 65534,
                            "root": False}
    ft = data["ftrace"]
    if not ft["mounted"]:
        assert ft["mount_error"].startswith("EPERM: ")
    if data["kmsg"]["dmesg_restrict"] == 1:
        assert data["kmsg"]["readable"] is False
        assert data["kmsg"]["error"].startswith("EPERM: ")
    assert data["ptrace"]["allowed"] is True
    assert data["workdir"]["writable"] is bool(os.stat(REPO).st_mode & 0o002)


# --- the documentation ----------------------------------------------------------------

def documented_keys(data, depth=3):
    """Every key of the report down to depth, except the kconfig option names (listed
    separately) and the clock names."""
    keys = set()
    for key, value in data.items():
        keys.add(key)
        if isinstance(value, dict) and depth > 1 and key not in ("options", "status"):
            keys |= documented_keys(value, depth - 1)
    return keys


def test_every_key_is_documented(report, private_tracefs):
    with open(os.path.join(REPO, "docs", "info.md")) as f:
        doc = f.read()
    data = agent_json("--tracefs", private_tracefs, "--compact")
    for key in documented_keys(report) | documented_keys(data):
        assert "`%s`" % key in doc, "docs/info.md does not mention `%s`" % key
    for name in kconfig.RELEVANT:
        assert name in doc
