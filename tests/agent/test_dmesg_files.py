"""-F (syslog-format file) against util-linux's -F on the same bytes, including random ones."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsg import ENV, needs_util_linux, ours, reference

pytestmark = needs_util_linux

OPTIONS = [[], ["-x"], ["-t"], ["-d"], ["-r"], ["-k"], ["-l", "err,warn"], ["-f", "user"],
           ["--noescape"], ["--color=always"], ["-x", "-e", "--color=always"], ["-t", "-d"],
           ["-p"]]

AWKWARD = [
    b"<6>[    0.000000] plain", b"<14>[    1.500000] user \x01 ctrl \xc3\xa9 \xff bad",
    b"<11>[    2.000001] subsys: with err", b"<9>[   13.000000] alert",
    b"<13>[   12.345678] zwsp \xe2\x80\x8b nbsp \xc2\xa0 c1 \xc2\x85 cut \xe2\x80",
    b"<12>[   15.000000] tab\there cr\rx vt\x0b ff\x0c", b"<13>[   16.000000] ",
    b"<13>[   17.000000] segfault at 0000", b"<5>[ 1234.000000] kern notice",
    b"<6>[123456.000001] big stamp", b"<7>[123456.100000] debug: x",
    b"<2>[123456.200000] crit: y: z", b"<4>[123456.300000] warn: ", b"no prefix at all",
    b"<13>[   18.000000] esc \x1b[1m and del \x7f",
]


def compare(tmp_path, data, options=OPTIONS, env=ENV):
    path = tmp_path / "log"
    path.write_bytes(data)
    for args in options:
        ref = reference("-F", str(path), *args, env=env)
        mine = ours("-F", str(path), *args, env=env)
        assert (mine.stdout, mine.returncode) == (ref.stdout, ref.returncode), args


def test_awkward_lines_match_util_linux(tmp_path):
    compare(tmp_path, b"\n".join(AWKWARD) + b"\n")


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_escaping_follows_the_locale(tmp_path, locale):
    compare(tmp_path, b"\n".join(AWKWARD) + b"\n", [[], ["-x"]], dict(ENV, LC_ALL=locale))


def test_no_trailing_newline_and_nul_padding(tmp_path):
    compare(tmp_path, b"\n".join(AWKWARD[:4]), [[], ["-r"]])
    compare(tmp_path, b"\n".join(AWKWARD[:4]) + b"\n\0\0\0", [[]])


def test_random_bytes_match_util_linux(tmp_path):
    """Every byte value, in random lines, escaped exactly as util-linux escapes it."""
    rng = random.Random(1234)
    alphabet = list(range(256)) + [0x20] * 64 + list(b"\xc3\xa9\xe2\x80\x8b\xf0\x9f\x98\x80")
    lines = []
    for i in range(300):
        text = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        text = text.replace(b"\n", b" ").replace(b"\0", b"0")
        # facilities util-linux 2.38 knows (0..11): it decodes no others
        lines.append(b"<%d>[%5d.%06d] %s" % (rng.randint(0, 95), i, rng.randint(0, 999999), text))
    compare(tmp_path, b"\n".join(lines) + b"\n", [[], ["-r"], ["-x"], ["-d"]])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 95), st.integers(0, 99999), st.integers(0, 999999),
                          st.binary(max_size=60)), min_size=1, max_size=30))
def test_generated_logs_match_util_linux(tmp_path, records):
    lines = [b"<%d>[%5d.%06d] %s" % (pri, sec, usec, text.replace(b"\n", b"_").replace(b"\0", b"_"))
             for pri, sec, usec, text in records]
    compare(tmp_path, b"\n".join(lines) + b"\n", [[], ["-x", "-d"]])


def run_on_pty(cmd, env):
    """stdout on a terminal (auto colours); returns what the terminal received."""
    import os
    import pty
    import subprocess
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, env=env,
                                cwd=__import__("kmsg").REPO)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:      # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=30)
        return out
    finally:
        os.close(master)


@pytest.mark.parametrize("term,colored", [("xterm", True), ("dumb", False), ("vt100", False)])
def test_auto_colour_on_a_terminal_matches_util_linux(tmp_path, term, colored):
    import sys
    path = tmp_path / "log"
    path.write_bytes(b"\n".join(AWKWARD[:8]) + b"\n")
    env = dict(ENV, TERM=term)
    ref = run_on_pty(["dmesg", "-F", str(path)], env)
    mine = run_on_pty([sys.executable, "-m", "target", "dmesg", "-F", str(path)], env)
    assert mine == ref
    assert (b"\x1b[" in mine) == colored
    never = ours("-F", str(path), "--color=never").stdout
    always = ours("-F", str(path), "--color=always").stdout
    assert b"\x1b" not in never and always.count(b"\x1b[32m") == 7
