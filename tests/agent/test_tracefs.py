"""tracefs discovery, mounting and the function tracer dry run, on the real tracefs.

The tests mount their own tracefs at a private temporary directory (the same kernel
tracing state as /sys/kernel/tracing) so they neither depend on nor disturb a mount that
someone else owns.
"""

import errno
import os
import subprocess
import tempfile

import pytest

from target import mounts
from target.ftrace import probe, tracefs


def proc_mounts_of_type(fstype):
    """Mount points of that type from /proc/mounts: a second source besides mountinfo."""
    points = []
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == fstype:
                points.append(fields[1].replace("\\040", " "))
    return points


def mount(fstype, where, options=None):
    """mount(8); returns None or the reason it failed."""
    cmd = ["mount", "-t", fstype] + (["-o", options] if options else []) + ["nodev", where]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    return None if done.returncode == 0 else done.stdout.strip() or "mount failed"


def umount(where):
    subprocess.run(["umount", where], check=True)


@pytest.fixture(scope="module")
def tracefs_dir():
    where = tempfile.mkdtemp(prefix="bt-tracefs-")
    try:
        failed = mount("tracefs", where)
        if failed:
            pytest.skip("cannot mount tracefs: %s" % failed)
        try:
            yield where
        finally:
            umount(where)
    finally:
        os.rmdir(where)


@pytest.fixture
def tfs(tracefs_dir):
    return tracefs.Tracefs(tracefs_dir)


@pytest.fixture
def instance(tfs):
    """A private instance of the test's own, removed after."""
    inst = tfs.instance("bt-test-%d" % os.getpid())
    os.mkdir(inst.path)
    try:
        yield inst
    finally:
        os.rmdir(inst.path)


def dead_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_locate_prefers_the_mount_table(tracefs_dir):
    where = tracefs.locate()
    points = proc_mounts_of_type("tracefs")
    assert tracefs_dir in points
    assert where["found_by"] == "mountinfo"
    assert where["mounted"] is True
    assert where["path"] in points
    if tracefs.TRACING in points:
        assert where["path"] == tracefs.TRACING


def test_locate_override(tracefs_dir, tmp_path):
    assert tracefs.locate(tracefs_dir) == {"path": tracefs_dir, "mounted": True,
                                           "found_by": "argument"}
    empty = str(tmp_path)
    assert tracefs.locate(empty)["mounted"] is False


def test_locate_without_tracefs_in_the_table():
    """With no tracefs in the table, the fallback looks at the directories themselves."""
    where = tracefs.locate(table=[])
    has_files = bool(os.path.isdir(tracefs.TRACING) and os.listdir(tracefs.TRACING))
    if has_files:
        assert where == {"path": tracefs.TRACING, "mounted": True, "found_by": "directory"}
    elif where["found_by"] is None:
        assert where == {"path": tracefs.TRACING, "mounted": False, "found_by": None}
    else:
        assert where["path"] == tracefs.DEBUG_TRACING and os.listdir(tracefs.DEBUG_TRACING)


def test_supported_matches_proc_filesystems():
    with open("/proc/filesystems") as f:
        listed = "tracefs" in f.read().split()
    assert tracefs.supported() is listed


def test_mount_tracefs_and_umount(tmp_path):
    where = str(tmp_path)
    try:
        mounted = tracefs.mount_tracefs(where)
    except PermissionError as e:
        pytest.skip("mounting is not permitted here: %s" % e)
    try:
        assert mounted is True
        assert where in proc_mounts_of_type("tracefs")
        assert tracefs.mount_tracefs(where) is False, "mounted twice"
        entry = mounts.find_mount(where)
        assert entry["fstype"] == "tracefs" and entry["mount_point"] == where
        assert {"nosuid", "nodev", "noexec"} <= set(entry["options"])
        assert os.path.exists(os.path.join(where, "available_tracers"))
    finally:
        tracefs.umount_tracefs(where)
    assert where not in proc_mounts_of_type("tracefs")


def test_umount_of_a_plain_directory_names_it(tmp_path):
    with pytest.raises(OSError) as info:
        tracefs.umount_tracefs(str(tmp_path))
    assert info.value.errno == errno.EINVAL
    assert info.value.filename == str(tmp_path)


def test_tracers_match_the_file(tfs, tracefs_dir):
    with open(os.path.join(tracefs_dir, "available_tracers")) as f:
        direct = f.read().split()
    assert tracefs.tracers(tfs) == direct
    assert "nop" in direct


def test_event_count_matches_wc(tfs, tracefs_dir):
    out = subprocess.run(["wc", "-l", os.path.join(tracefs_dir, "available_events")],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    count = tracefs.event_count(tfs)
    assert count == int(out.split()[0])
    assert count > 0


def test_read_write_exists(instance):
    assert instance.exists("current_tracer")
    assert not instance.exists("no_such_file")
    instance.write("current_tracer", "nop")
    assert instance.read("current_tracer").strip() == "nop"
    with pytest.raises(OSError) as info:
        instance.write("current_tracer", "no_such_tracer")
    assert info.value.errno == errno.EINVAL
    assert info.value.filename == instance.file("current_tracer")
    with pytest.raises(FileNotFoundError):
        instance.read("no_such_file")


def test_instances_listing(tfs, instance):
    assert os.path.basename(instance.path) in tfs.instances()
    assert tracefs.Tracefs("/nonexistent").instances() == []


def direct_write(tfs, tracer):
    """Try the tracer in an instance of the test's own: None if it works, else the errno."""
    inst = tfs.instance("bt-direct-%d" % os.getpid())
    os.mkdir(inst.path)
    try:
        fd = os.open(inst.file("current_tracer"), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, tracer.encode())
            return None
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)
    finally:
        try:
            with open(inst.file("current_tracer"), "w") as f:
                f.write("nop")
        finally:
            os.rmdir(inst.path)


def own_probe_instances(tfs):
    return [n for n in tfs.instances() if n == "%s%d" % (probe.PREFIX, os.getpid())]


def test_function_tracer_probe_agrees_with_a_direct_write(tfs):
    result = probe.function_tracer_works(tfs)
    assert own_probe_instances(tfs) == [], "probe instance left behind"
    assert "cleanup_error" not in result
    listed = "function" in tfs.read("available_tracers").split()
    assert result["listed"] is listed
    if not listed:
        assert result["ok"] is False and "CONFIG_FUNCTION_TRACER" in result["reason"]
        return
    err = direct_write(tfs, "function")
    if err is None:
        assert result["ok"] is True and result["errno"] is None
    else:
        assert result["ok"] is False
        assert result["step"] == "write current_tracer"
        assert result["errno"] == errno.errorcode[err]
        assert result["reason"] == probe.classify(err, "CONFIG_FUNCTION_TRACER",
                                                  result["reason"].partition(": ")[2] or None)


def test_nop_tracer_works(tfs):
    """nop is always there: the whole dry run succeeds, and cleans up."""
    result = probe.tracer_works(tfs, "nop")
    assert result["ok"] is True, result
    assert result["errno"] is None and result["reason"] is None
    assert own_probe_instances(tfs) == []


def test_unlisted_tracer_is_not_built_in(tfs):
    before = tfs.instances()
    result = probe.tracer_works(tfs, "function_graph_no_such")
    assert result["ok"] is False and result["listed"] is False
    assert "not in available_tracers" in result["reason"]
    assert tfs.instances() == before


def test_stale_probe_instances_are_removed(tfs):
    stale = tfs.instance("%s%d" % (probe.PREFIX, dead_pid()))
    os.mkdir(stale.path)
    try:
        probe.tracer_works(tfs, "nop")
        assert not os.path.exists(stale.path)
    finally:
        if os.path.exists(stale.path):
            os.rmdir(stale.path)


def test_leftover_named_after_our_own_pid(tfs):
    """A dead probe whose pid we now have left its instance: it is ours to replace."""
    mine = tfs.instance("%s%d" % (probe.PREFIX, os.getpid()))
    os.mkdir(mine.path)
    try:
        result = probe.tracer_works(tfs, "nop")
        assert result["ok"] is True, result
        assert not os.path.exists(mine.path)
    finally:
        if os.path.exists(mine.path):
            os.rmdir(mine.path)


def test_live_owner_instance_is_kept(tfs):
    """An instance named after a live process (pid 1) is not ours to remove."""
    other = tfs.instance("%s1" % probe.PREFIX)
    os.mkdir(other.path)
    try:
        assert probe.remove_stale(tfs) == []
        assert os.path.isdir(other.path)
    finally:
        os.rmdir(other.path)


def test_without_instances_directory(tmp_path):
    """An old kernel's tracefs (before 3.10) lists tracers but has no instances/."""
    (tmp_path / "available_tracers").write_text("function nop\n")
    result = probe.function_tracer_works(tracefs.Tracefs(str(tmp_path)))
    assert result["ok"] is False
    assert result["step"] == "mkdir instance" and result["errno"] == "ENOENT"
    assert result["reason"].startswith("private instances not supported")


def test_instance_that_cannot_be_made(tmp_path):
    """instances/ exists but mkdir in it fails (here: it is a file, ENOTDIR)."""
    (tmp_path / "available_tracers").write_text("function nop\n")
    (tmp_path / "instances").write_text("")
    result = probe.function_tracer_works(tracefs.Tracefs(str(tmp_path)))
    assert result["ok"] is False
    assert result["step"] == "mkdir instance" and result["errno"] == "ENOTDIR"
    assert result["reason"] == "cannot create a private instance: " + os.strerror(
        errno.ENOTDIR)


def test_error_log_is_quoted_for_einval(instance):
    """A bad event filter is a real EINVAL that leaves a line in error_log."""
    if not instance.exists("error_log"):
        pytest.skip("this kernel has no error_log (before 5.1)")
    filt = "events/sched/sched_switch/filter"
    if not instance.exists(filt):
        pytest.skip("no sched_switch event here")
    with pytest.raises(OSError) as info:
        instance.write(filt, "prev_pid ==")
    assert info.value.errno == errno.EINVAL
    line = probe.last_error(instance)
    assert line and "error:" in line
    assert probe.classify(errno.EINVAL, error_log=line) == "unsupported: " + line


@pytest.mark.parametrize("err,words", [
    (errno.ENOENT, "not built into this kernel (CONFIG_FUNCTION_TRACER)"),
    (errno.EPERM, "blocked by policy or privileges"),
    (errno.EACCES, "blocked by policy or privileges"),
    (errno.EINVAL, "unsupported"),
    (errno.EBUSY, "in use"),
    (errno.ENOMEM, os.strerror(errno.ENOMEM)),
])
def test_classify(err, words):
    assert words in probe.classify(err, "CONFIG_FUNCTION_TRACER")
