"""-C / -c move the kernel's clear_seq for every reader; SEEK_DATA readers (util-linux and us)
then start after it, SEEK_SET still sees the records. Runs after the other dmesg tests."""

import os
import shutil

from kmsg import (inject, lines_with, marker, needs_kmsg, ours, read_kmsg_raw,  # noqa: F401
                  reference, writable_kmsg)

pytestmark = needs_kmsg


def seek_set_has(word):
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                if word.encode() in os.read(fd, 8193):
                    return True
            except BlockingIOError:
                return False
            except BrokenPipeError:
                continue
    finally:
        os.close(fd)


def test_clear(writable_kmsg):
    before, after = marker(), marker()
    inject([(13, before.encode())])
    done = ours("-C")
    assert done.returncode == 0 and done.stdout == b""
    inject([(13, after.encode())])
    mine = ours().stdout
    assert before.encode() not in mine and after.encode() in mine
    assert read_kmsg_raw(before) == [] and seek_set_has(before)
    if shutil.which("dmesg"):
        ref = reference().stdout
        assert before.encode() not in ref and after.encode() in ref


def test_read_clear_prints_then_clears(writable_kmsg):
    word = marker()
    inject([(11, word.encode())])
    done = ours("-c", "-x")
    assert done.returncode == 0 and len(lines_with(done.stdout, word)) == 1
    assert lines_with(done.stdout, word)[0].startswith(b"user  :err   : [")
    assert word.encode() not in ours().stdout
    word = marker()
    inject([(11, word.encode())])
    done = ours("-c", "-S")
    assert done.returncode == 0 and word.encode() in done.stdout
    assert word.encode() not in ours("-S").stdout
