"""Bad input: one line on stderr, a non-zero exit, never a traceback; util-linux agrees it is bad."""

import shutil

import pytest

from kmsg import ours, reference


@pytest.mark.parametrize("args", [
    ["-l", "bogus"], ["-l", "8"], ["-l", "err,,info"], ["-f", "nosuch"], ["-f", "24"],
    ["--since", "not a time"], ["--until", "10 parsecs ago"], ["--since", "2026-13-01"],
    ["-F", "/nonexistent/file"], ["-n", "0"], ["-n", "loud"],
    ["--time-format", "bogus"], ["--color=sometimes"], ["-C", "-c"], ["-r", "-x"],
    ["-r", "-T"], ["-S", "-w"], ["-F", "/etc/hostname", "-K", "/etc/hostname"],
    ["--no-such-option"], ["extra-argument"], ["-s", "x"],
], ids=" ".join)
def test_bad_input_gets_one_line(args):
    done = ours(*args)
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr
    assert done.stderr.count(b"\n") == 1 and done.stderr.startswith(b"dmesg: "), done.stderr
    assert done.stdout == b""
    if shutil.which("dmesg"):
        assert reference(*args).returncode != 0, "util-linux accepts %r" % (args,)


def test_unreadable_file(tmp_path):
    # root reads mode-0 files, so use what nobody can read as a file: a directory
    for option in ("-F", "-K"):
        done = ours(option, str(tmp_path))
        assert done.returncode == 1
        assert done.stderr == b"dmesg: cannot open %s: Is a directory\n" % str(tmp_path).encode()


def test_raw_with_level_on_syslog_is_refused_like_util_linux():
    done = ours("-S", "-r", "-l", "err")
    assert done.returncode == 1 and b"--raw can be used together with --level" in done.stderr
    assert reference("-S", "-r", "-l", "err").returncode != 0


def test_help_and_version_style_options_work():
    done = ours("--help")
    assert done.returncode == 0 and b"--jsonl" in done.stdout
