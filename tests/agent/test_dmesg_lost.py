"""Records overwritten before we read them (EPIPE on /dev/kmsg) are counted, never hidden."""

import json
import os
import subprocess
import sys


from kmsg import ENV, REPO, inject, marker, needs_kmsg, writable_kmsg  # noqa: F401
from pipe_reader import read_until
from target.dmesg.source import KmsgSource, Lost

pytestmark = needs_kmsg


def buffer_size():
    from target import libc
    return libc.klogctl(libc.SYSLOG_ACTION_SIZE_BUFFER)


def flood(word, count=None):
    """More than the whole ring buffer, so every record older than the flood is gone."""
    text = ("%s flood %%d " % word).encode() + b"x" * 60
    count = count or 2 * buffer_size() // len(text) + 4096
    inject((13, text % i) for i in range(count))
    return count


def test_epipe_is_reported_as_the_seq_gap(writable_kmsg):
    word = marker()
    inject([(13, ("%s before" % word).encode())])
    source = KmsgSource(whence=os.SEEK_END)       # the fd is open before the flood
    inject([(13, ("%s first" % word).encode())])
    try:
        records = source.records()
        first = next(records)
        assert first.text == ("%s first" % word).encode()
        flood(word)
        gap = next(records)
        after = next(records)
        rest = list(records)
    finally:
        source.close()
    assert isinstance(gap, Lost)
    assert gap.seq == after.seq
    assert gap.count == after.seq - first.seq - 1 > 0
    # nothing else is lost after the gap: the rest are consecutive
    seqs = [after.seq] + [r.seq for r in rest if not isinstance(r, Lost)]
    assert seqs == list(range(after.seq, after.seq + len(seqs)))
    assert all(not isinstance(r, Lost) for r in rest)


def test_follow_jsonl_emits_a_lost_record(writable_kmsg):
    """A follower that cannot keep up (its stdout is not read) learns how many it missed."""
    word = marker()
    inject([(13, ("%s start" % word).encode())])
    proc = subprocess.Popen([sys.executable, "-m", "target", "dmesg", "--follow", "--jsonl"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        buf = read_until(proc.stdout, ("%s start" % word).encode())   # it follows from here on
        flood(word)                     # unread, it fills the pipe and blocks in write()
        tail = ("%s tail" % word)
        inject([(13, tail.encode())])
        buf = read_until(proc.stdout, tail.encode(), buf)
        proc.send_signal(2)
        rest, err = proc.communicate(timeout=10)
        lines = (buf + rest).decode("utf-8").splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    objs = [json.loads(line) for line in lines]
    lost = [o for o in objs if "lost" in o]
    assert lost, "no lost record"
    for item in lost:
        index = objs.index(item)
        before, after = objs[index - 1], objs[index + 1]
        assert item["seq"] == after["seq"]
        assert item["lost"] == after["seq"] - before["seq"] - 1
        assert item["source"] == "kmsg"
    seqs = [o["seq"] for o in objs if "lost" not in o]
    total_lost = sum(o["lost"] for o in lost)
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + total_lost
    assert proc.returncode == 0
    messages = [l for l in err.decode().splitlines() if l]
    assert messages == ["dmesg: %d records lost (overwritten before they were read)" % o["lost"]
                        for o in lost]
