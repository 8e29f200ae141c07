"""-n, -D, -E change the console log level (saved and restored around each test)."""

import shutil

import pytest

from kmsg import needs_kmsg, ours, reference

pytestmark = needs_kmsg
PRINTK = "/proc/sys/kernel/printk"


def levels():
    with open(PRINTK) as f:
        return [int(v) for v in f.read().split()]


@pytest.fixture
def saved_printk():
    old = levels()
    yield old
    with open(PRINTK, "w") as f:
        f.write(" ".join(str(v) for v in old) + "\n")
    assert levels() == old


@pytest.mark.parametrize("arg,want", [("5", 5), ("debug", 8), ("err", 4), ("EMERG", 1),
                                      ("8", 8), ("1", 1)])
def test_console_level(saved_printk, arg, want):
    done = ours("-n", arg)
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b""
    assert levels()[0] == want
    if shutil.which("dmesg"):
        with open(PRINTK, "w") as f:
            f.write(" ".join(str(v) for v in saved_printk) + "\n")
        assert reference("-n", arg).returncode == 0
        assert levels()[0] == want


def test_console_off_and_on(saved_printk):
    minimum = saved_printk[2]
    assert ours("-D").returncode == 0
    assert levels()[0] == minimum
    assert ours("-E").returncode == 0
    assert levels()[0] == saved_printk[0]


def test_console_level_excludes_reading_options():
    done = ours("-n", "5", "-C")
    assert done.returncode == 2 and b"mutually exclusive" in done.stderr
