"""Helpers for the dmesg tests: inject records into the real /dev/kmsg, run our dmesg and
util-linux's, compare them on a live buffer, and turn our output into util-linux 2.38's shape
where 2.38 is known to be wrong (so the rest can still be compared byte for byte)."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KMSG = "/dev/kmsg"
DEVKMSG_SETTING = "/proc/sys/kernel/printk_devkmsg"
# Same locale and zone for both tools: the output depends on them.
ENV = dict(os.environ, LC_ALL="C.UTF-8", TZ="UTC", TERM="dumb")
ENV.pop("BOARDTRACE_DEBUG", None)
ENV.pop("NO_COLOR", None)

# util-linux 2.38 knows facilities 0..11 (kern..ftp) only
UL238_FACILITIES = 12

needs_kmsg = pytest.mark.skipif(not (os.path.exists(KMSG) and os.geteuid() == 0),
                                reason="needs root and /dev/kmsg")
needs_util_linux = pytest.mark.skipif(shutil.which("dmesg") is None,
                                      reason="util-linux dmesg is not installed")


def marker():
    """A unique word that lets a test find its own records in the shared buffer."""
    return "bt%s" % uuid.uuid4().hex[:16]


@contextlib.contextmanager
def devkmsg_on():
    """printk_devkmsg=on (writes to /dev/kmsg are not rate-limited), restored afterwards."""
    with open(DEVKMSG_SETTING) as f:
        old = f.read().strip()
    # the file shows the active mode in brackets on some kernels: "[on]"
    old = old.strip("[]")
    with open(DEVKMSG_SETTING, "w") as f:
        f.write("on\n")
    try:
        yield
    finally:
        with open(DEVKMSG_SETTING, "w") as f:
            f.write(old + "\n")


@pytest.fixture(scope="module")
def writable_kmsg():
    if not (os.path.exists(KMSG) and os.geteuid() == 0):
        pytest.skip("needs root and /dev/kmsg")
    with devkmsg_on():
        yield


def inject(records):
    """Write (pri, text-bytes) records to /dev/kmsg, one write() each.

    Each write ends with a newline, which the kernel strips: a record without one stays open
    for a continuation and readers do not see it until the next record is logged."""
    fd = os.open(KMSG, os.O_WRONLY)
    try:
        for pri, text in records:
            os.write(fd, b"<%d>%s\n" % (pri, text))
    finally:
        os.close(fd)


def ours(*args, **kw):
    """Run `python -m target dmesg ARGS`; returns the CompletedProcess (bytes)."""
    python = kw.pop("python", sys.executable)
    env = kw.pop("env", ENV)
    return subprocess.run([python, "-m", "target", "dmesg"] + list(args), cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **kw)


def reference(*args, **kw):
    env = kw.pop("env", ENV)
    return subprocess.run(["dmesg"] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, **kw)


def stable(ref_args, our_args=None, tries=8, env=ENV):
    """(reference stdout, our stdout) for one buffer state: the kernel (and other tests) may
    log at any time, so run reference, ours, reference until both reference runs agree."""
    our_args = ref_args if our_args is None else our_args
    for _ in range(tries):
        before = reference(*ref_args, env=env)
        mine = ours(*our_args, env=env)
        after = reference(*ref_args, env=env)
        assert mine.returncode == 0, mine.stderr
        assert before.returncode == 0, before.stderr
        if before.stdout == after.stdout:
            return before.stdout, mine.stdout
        time.sleep(0.05)
    pytest.fail("the kernel log kept changing under %r" % (ref_args,))


def stable_with_raw(ref_args, tries=8, env=ENV):
    """Like stable(), plus our output with -r added (same records, same line structure, and
    the true pri at the start of each record) from the same buffer state. syslog(2) refuses
    -r with -l: there -x gives the facility name instead."""
    extra = ["-x"] if "-S" in ref_args else ["-r"]
    for _ in range(tries):
        before = reference(*ref_args, env=env)
        mine = ours(*ref_args, env=env)
        raw = ours(*(list(ref_args) + extra), env=env)
        after = reference(*ref_args, env=env)
        assert mine.returncode == 0 and raw.returncode == 0, mine.stderr + raw.stderr
        if before.stdout == after.stdout:
            return before.stdout, mine.stdout, raw.stdout
        time.sleep(0.05)
    pytest.fail("the kernel log kept changing under %r" % (ref_args,))


def drop_records(text, raw, drop):
    """Remove from `text` the records whose pri (read from the matching `-r` output) makes
    drop(pri) true. Continuation lines go with their record."""
    lines, raw_lines = text.split(b"\n"), raw.split(b"\n")
    assert len(lines) == len(raw_lines)
    out, dropping = [], False
    for line, raw_line in zip(lines[:-1], raw_lines):
        match = _RAW_PRI.match(raw_line)
        decoded = _DECODED.match(raw_line)
        if match:
            dropping = drop(int(match.group(1)))
        elif decoded:
            dropping = drop(FACILITY_NAMES.index(decoded.group(1).decode()) << 3)
        if not dropping:
            out.append(line)
    return b"\n".join(out + lines[-1:])


FACILITY_NAMES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
                  "cron", "authpriv", "ftp", "res0", "res1", "res2", "res3", "local0",
                  "local1", "local2", "local3", "local4", "local5", "local6", "local7")
_DECODED = re.compile(rb"^([a-z]+[0-7]?) *:[a-z]+ *: ")


def as_ul238_filter(args, text, raw):
    """2.38 drops from -l every record whose facility it cannot parse (> 12), and -u shows
    only the facilities of its table (1..11)."""
    if "-u" in args:
        return drop_records(text, raw, lambda pri: pri >> 3 >= UL238_FACILITIES)
    if "-l" in args:
        return drop_records(text, raw, lambda pri: pri >> 3 > UL238_FACILITIES)
    return text


def lines_with(output, word):
    return [line for line in output.split(b"\n") if word.encode() in line]


# ---- util-linux 2.38 compatibility transforms ----------------------------------------------

def ul238_pri(pri):
    """What 2.38 prints for a priority: LOG_MAKEPRI(fac, lev) = fac | lev (the facility is not
    shifted), -1 when the facility is past its table."""
    fac, lev = pri >> 3, pri & 7
    return (fac | lev) if fac <= UL238_FACILITIES else -1


_RAW_PRI = re.compile(rb"^<(\d+)>")


def raw_as_ul238(text):
    """-r lines with 2.38's priorities; continuation lines re-indented to its shorter prefix."""
    out, shift = [], 0
    for line in text.split(b"\n"):
        match = _RAW_PRI.match(line)
        if match:
            new = b"<%d>" % ul238_pri(int(match.group(1)))
            shift = len(match.group()) - len(new)
            line = new + line[match.end():]
        elif line.startswith(b" ") and shift > 0:
            line = line[shift:]
        elif line.startswith(b" ") and shift < 0:
            line = b" " * -shift + line
        out.append(line)
    return b"\n".join(out)


_EXTRA_JSON_LINE = re.compile(rb'^ {9}"(seq|level|facility)": .*\n', re.M)
_DICT_BLOCK = re.compile(rb'^ {9}"dict": \{\n(?: {12}.*\n)* {9}\}\n', re.M)
_SOURCE_TAIL = re.compile(rb'\n   \],\n   "source": "[a-z-]+"\n\}\n$')


def json_as_ul238(text, decode=False):
    """Our -J output in util-linux 2.38's shape: drop our extra keys and the top-level source,
    and write "pri" the way 2.38 does (facility dropped; no pri past its facility table)."""
    text = _DICT_BLOCK.sub(b"", text)
    text = _EXTRA_JSON_LINE.sub(b"", text)
    text = re.sub(rb',\n(      \})', rb"\n\1", text)           # msg is the last key again
    text = re.sub(rb',\n(      \}$)', rb"\n\1", text)
    text = _SOURCE_TAIL.sub(b"\n   ]\n}\n", text)
    if decode:
        return _drop_local_decode(text)
    return re.sub(rb'^ {9}"pri": (\d+),\n', _ul238_json_pri, text, flags=re.M)


def _ul238_json_pri(match):
    pri = int(match.group(1))
    if pri >> 3 >= UL238_FACILITIES:
        return b""
    return b'         "pri": %d,\n' % ul238_pri(pri)


def _drop_local_decode(text):
    known = b"|".join(n.encode() for n in ("kern", "user", "mail", "daemon", "auth", "syslog",
                                          "lpr", "news", "uucp", "cron", "authpriv", "ftp"))
    return re.sub(rb'^ {9}"fac": "(?!(?:' + known + rb')")[a-z0-9]+",\n {9}"pri": "[a-z]+",\n',
                  b"", text, flags=re.M)


def decode_as_ul238(text):
    """-x text: 2.38 prints no 'fac:lev:' prefix for facilities it does not know."""
    return re.sub(rb"^(?:res[0-3]|local[0-7]) *:[a-z]+ *: ", b"", text, flags=re.M)


def json_objects(text):
    """Our -J output parsed with the json module (util-linux writes raw bytes, so decode
    with surrogateescape first)."""
    import json
    return json.loads(text.decode("utf-8", "surrogateescape"))


def read_kmsg_raw(word):
    """Our own plain read of /dev/kmsg (SEEK_DATA, like dmesg): the records containing word."""
    fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    found = []
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
        while True:
            try:
                data = os.read(fd, 8193)
            except BlockingIOError:
                return found
            except BrokenPipeError:
                continue
            if word.encode() in data:
                found.append(data)
    finally:
        os.close(fd)
