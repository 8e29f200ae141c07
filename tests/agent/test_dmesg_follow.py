"""--follow / --follow-new: records appear as they are logged; SIGINT/SIGTERM end it cleanly."""

import json
import signal
import subprocess
import sys
import time

import pytest

from kmsg import ENV, REPO, inject, marker, needs_kmsg, writable_kmsg  # noqa: F401
from pipe_reader import read_until

pytestmark = needs_kmsg


class Follower(object):
    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "target", "dmesg"] + list(args),
                                     cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = b""

    def wait_for(self, word, timeout=15):
        """Read stdout until word shows up (inject_until_seen logs it again meanwhile)."""
        self.out = read_until(self.proc.stdout, word.encode(), self.out, timeout)
        assert word.encode() in self.out, "never saw %s in %r (follower %s)" % (
            word, self.out[-500:], "running" if self.proc.poll() is None else "exited")
        return self.out

    def stop(self, signum):
        self.proc.send_signal(signum)
        rest, err = self.proc.communicate(timeout=10)
        self.out += rest
        return self.proc.returncode, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def follower():
    started = []

    def start(*args):
        f = Follower(*args)
        started.append(f)
        return f
    yield start
    for f in started:
        f.kill()


def inject_until_seen(f, text, pri=14):
    """Log `text` until the follower prints it (it may still be starting)."""
    deadline = time.time() + 15
    while text.encode() not in f.out:
        inject([(pri, text.encode())])
        try:
            f.wait_for(text, timeout=1)
        except AssertionError:
            assert time.time() < deadline, "follower never printed %s" % text
    return f.out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_follow_prints_new_records_and_stops_cleanly(writable_kmsg, follower, signum):
    f = follower("--follow")
    word = marker()
    inject_until_seen(f, "%s ready" % word)
    later = "%s second record" % word
    inject([(11, later.encode())])
    out = f.wait_for(later)
    line = [l for l in out.split(b"\n") if later.encode() in l][0]
    assert line.startswith(b"[") and line.endswith(later.encode())
    code, err = f.stop(signum)
    assert code == 0
    assert err == b""


def test_follow_new_skips_old_records_and_jsonl_is_valid(writable_kmsg, follower):
    old = marker()
    inject([(14, ("%s old" % old).encode())])
    f = follower("--follow-new", "--jsonl")
    word = marker()
    inject_until_seen(f, "%s ready" % word)
    inject([(23 << 3 | 3, ("%s local7 err" % word).encode())])
    f.wait_for("%s local7 err" % word)
    code, err = f.stop(signal.SIGINT)
    assert code == 0 and err == b""
    objs = [json.loads(line) for line in f.out.decode("utf-8").splitlines()]
    assert not any(old in o.get("msg", "") for o in objs)
    mine = [o for o in objs if o.get("msg") == "%s local7 err" % word][0]
    assert (mine["pri"], mine["facility"], mine["level"], mine["source"]) == (
        23 << 3 | 3, "local7", "err", "kmsg")
    assert isinstance(mine["seq"], int) and isinstance(mine["time"], float)


def test_follow_json_is_a_complete_document_after_sigint(writable_kmsg, follower):
    f = follower("--follow", "--json")
    word = marker()
    inject_until_seen(f, "%s ready" % word)
    code, err = f.stop(signal.SIGINT)
    assert code == 0 and err == b""
    doc = json.loads(f.out.decode("utf-8", "surrogateescape"))
    assert doc["source"] == "kmsg"
    assert any(word in o["msg"] for o in doc["dmesg"])
    assert f.out.endswith(b"\n   ],\n   \"source\": \"kmsg\"\n}\n")


def test_follow_with_filters(writable_kmsg, follower):
    f = follower("-w", "-l", "err", "-x")
    word = marker()
    inject([(14, ("%s filtered out" % word).encode())])
    inject_until_seen(f, "%s shown" % word, pri=11)
    code, err = f.stop(signal.SIGINT)
    assert code == 0 and err == b""
    assert ("%s filtered out" % word).encode() not in f.out
    assert b"user  :err   : [" in f.out


def test_follow_refuses_a_file(tmp_path):
    from kmsg import ours
    done = ours("-w", "-F", str(tmp_path / "x"))
    assert done.returncode != 0 and done.stderr.count(b"\n") == 1
