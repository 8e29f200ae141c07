"""Our dmesg against util-linux's on the same live /dev/kmsg buffer, byte for byte.

Records with known levels, facilities and awkward bytes are injected first. Where util-linux
2.38 is known to be wrong (pri without the facility, no local0..7, no decode for them), our
output is turned into 2.38's shape for the byte comparison, and the true values are checked
separately against what was injected.
"""

import calendar
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from kmsg import (ENV, REPO, UL238_FACILITIES, as_ul238_filter, decode_as_ul238, inject,  # noqa: F401
                  json_as_ul238, json_objects, lines_with, marker, needs_kmsg,
                  needs_util_linux, ours, raw_as_ul238, read_kmsg_raw, reference, stable,
                  stable_with_raw, writable_kmsg)

pytestmark = [needs_kmsg, needs_util_linux]

WORD = marker()
LATE = marker()      # records injected after a pause, so --since/--until have a clean gap
# util-linux 2.38 dates a record floor(boot) + floor(stamp): up to 2 s early. --since/--until
# tests cut at the first whole second SPLIT after the first batch, the late record comes
# 2.1 s after SPLIT, so records land on the same side of it for both tools.
SPLIT = []

# (pri, text): every level, named facilities 2.38 knows, and local/reserved ones it does not
INJECTED = [
    (1 << 3 | 0, b"%s user emerg"), (1 << 3 | 1, b"%s user alert"),
    (1 << 3 | 2, b"%s user crit"), (1 << 3 | 3, b"%s user err"),
    (1 << 3 | 4, b"%s user warn"), (1 << 3 | 5, b"%s user notice"),
    (1 << 3 | 6, b"%s user info"), (1 << 3 | 7, b"%s user debug"),
    (3 << 3 | 6, b"%s daemon info"), (4 << 3 | 5, b"%s auth notice"),
    (10 << 3 | 3, b"%s authpriv err"), (11 << 3 | 4, b"%s ftp warn"),
    (16 << 3 | 6, b"%s LOCAL local0 info"), (20 << 3 | 2, b"%s LOCAL local4 crit"),
    (23 << 3 | 7, b"%s LOCAL local7 debug"), (13 << 3 | 5, b"%s LOCAL res1 notice"),
    (13, b"%s MULTI line one\nline two\n  indented three"),
    (13, b"%s ctrl \x01 esc \x1b[31m del \x7f tab\there cr\rx"),
    (13, b"%s utf8 \xc3\xa9 \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac nbsp\xc2\xa0 zwsp\xe2\x80\x8b "
         b"c1\xc2\x85 bad\xff\xfe trunc\xe2\x80"),
    (13, b"%s backslash \\ and \\x41 literal \"quoted\""),
    (12, b"%s subsys: coloured prefix"), (14, b"%s segfault at 0000 ip 1"),
    (13, b"%s MULTI trailing newline\n"),
]
INJECTED = [(pri, text.replace(b"%s", WORD.encode())) for pri, text in INJECTED]
LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")


@pytest.fixture(scope="module", autouse=True)
def injected(writable_kmsg):
    inject(INJECTED)
    SPLIT.append(int(time.time()) + 1)
    time.sleep(SPLIT[0] + 2.1 - time.time())
    inject([(14, ("%s late record" % LATE).encode())])
    return INJECTED


def ours_only(*args):
    done = ours(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---- byte-for-byte comparisons ----------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [], ["-t"], ["-d"], ["-p"], ["-k"], ["-l", "err,warn"], ["-l", "3"],
    ["-l", "emerg,alert,crit"], ["-f", "user"], ["-f", "daemon,auth"], ["-f", "authpriv,ftp"],
    ["-t", "-d"], ["--noescape"], ["--color=always"],
    ["--time-format", "delta"], ["--time-format", "notime"],
    ["-p", "-d"], ["-f", "kern,user", "-l", "err"],
], ids=lambda a: " ".join(a) or "default")
def test_text_matches_util_linux(args):
    if "-l" in args:   # 2.38's level filter drops every facility it does not know
        ref, mine, raw = stable_with_raw(args)
        mine = as_ul238_filter(args, mine, raw)
    else:
        ref, mine = stable(args)
    assert mine == ref
    assert WORD.encode() in ref or "-k" in args or "kern" in args


@pytest.mark.parametrize("args", [["-x"], ["-x", "-d"], ["-x", "-t"], ["-x", "-p"]],
                         ids=" ".join)
def test_decode_matches_util_linux(args):
    ref, mine = stable(args)
    assert decode_as_ul238(mine) == ref


_RELTIME = re.compile(rb"^((?:[a-z0-9]+ *:[a-z]+ *: )?)((?:\x1b\[[0-9;]*m)*)\[([^\]]*)\] "
                      rb"((?:\x1b\[0m)?)(.*)$")
_MINUTE = re.compile(rb"^[A-Z][a-z]{2}[ 0-9]\d \d\d:\d\d$")
_DELTA = re.compile(rb"^ {1,2}\+ *\d+\.\d{6}$")


def minutes_apart(a, b):
    """How far apart two "[Nov27 18:10]" stamps are in minutes (across midnight too)."""
    minute = lambda s: int(s[-5:-3]) * 60 + int(s[-2:])  # noqa: E731
    apart = abs(minute(a) - minute(b))
    return min(apart, 24 * 60 - apart)


@pytest.mark.parametrize("args", [["-e"], ["--time-format", "reltime"], ["-e", "-x"],
                                  ["-e", "--color=always"], ["-x", "--color=always", "-e"]],
                         ids=" ".join)
def test_reltime_matches_util_linux_up_to_minute_breaks(args):
    """Lines are identical, except that a minute break ("[Nov26 16:55]") can land one record
    apart: 2.38 places records up to 1 s early (whole-second boot time)."""
    ref, mine = stable(args)
    if "-x" in args:
        mine = decode_as_ul238(mine)
    ref_lines, my_lines = ref.split(b"\n"), mine.split(b"\n")
    assert len(ref_lines) == len(my_lines)
    moved = 0
    for ref_line, my_line in zip(ref_lines, my_lines):
        if ref_line == my_line:
            continue
        r, m = _RELTIME.match(ref_line), _RELTIME.match(my_line)
        assert r and m, (ref_line, my_line)
        assert (r.group(1), r.group(5)) == (m.group(1), m.group(5))
        kinds = {stamp: bool(_MINUTE.match(stamp)) for stamp in (r.group(3), m.group(3))}
        if all(kinds.values()):   # a break both print, in the minutes either side of it
            assert minutes_apart(r.group(3), m.group(3)) == 1, (ref_line, my_line)
        else:
            assert sorted(kinds.values()) == [False, True], (ref_line, my_line)
            assert all(_DELTA.match(s) for s, minute in kinds.items() if not minute)
        moved += 1
    breaks = sum(1 for line in my_lines if _RELTIME.match(line)
                 and _MINUTE.match(_RELTIME.match(line).group(3)))
    assert moved <= 2 * breaks


def test_json_matches_util_linux_layout():
    ref, mine = stable(["--json"])
    assert json_as_ul238(mine) == ref
    assert ref.startswith(b'{\n   "dmesg": [\n      {\n')


def test_decoded_json_matches_util_linux_layout():
    ref, mine = stable(["--json", "-x"])
    assert json_as_ul238(mine, decode=True) == ref


def test_raw_matches_util_linux_with_238_priorities():
    ref, mine = stable(["-r"])
    assert raw_as_ul238(mine) == ref


def test_userspace_matches_except_the_facilities_238_does_not_know():
    ref, mine, raw = stable_with_raw(["-u"])
    assert as_ul238_filter(["-u"], mine, raw) == ref
    assert len(lines_with(mine, "%s LOCAL" % WORD)) == 4


# ---- the true values, where util-linux 2.38 is wrong ---------------------------------------------

def test_json_has_true_pri_level_facility_and_seq():
    doc = json_objects(ours_only("--json"))
    assert doc["source"] == "kmsg"
    mine = [o for o in doc["dmesg"] if WORD in o["msg"]]
    raw = read_kmsg_raw(WORD)
    assert [o["seq"] for o in mine] == [int(r.split(b",")[1]) for r in raw]
    for obj, (pri, text) in zip(mine, INJECTED):
        assert obj["pri"] == pri
        assert obj["level"] == LEVELS[pri & 7]
        facility = pri >> 3
        assert obj["facility"] == {1: "user", 3: "daemon", 4: "auth", 10: "authpriv",
                                   11: "ftp", 13: "res1", 16: "local0", 20: "local4",
                                   23: "local7"}[facility]


def test_raw_has_true_pri_and_agrees_with_syslog_raw():
    mine = lines_with(ours_only("-r"), WORD)
    starts = [int(re.match(rb"<(\d+)>", line).group(1)) for line in mine]
    assert starts == [pri for pri, _ in INJECTED]
    # util-linux's syslog(2) backend prints the true pri: single-line records agree
    syslog_raw = lines_with(reference("-S", "-r").stdout, WORD)
    single = [line for line in mine if b"MULTI" not in line]
    assert single == [line for line in syslog_raw if b"MULTI" not in line]


def test_decode_names_local_facilities():
    mine = lines_with(ours_only("-x"), "%s LOCAL" % WORD)
    assert [line.split(b"[")[0] for line in mine] == [
        b"local0:info  : ", b"local4:crit  : ", b"local7:debug : ", b"res1  :notice: "]


@pytest.mark.parametrize("levels", ["err+", "+warn", "crit+,debug", "0,+notice", "ERR"])
def test_level_ranges(levels):
    want = set()
    for item in levels.split(","):
        index = int(item.strip("+")) if item.strip("+").isdigit() else \
            LEVELS.index(item.strip("+").lower())
        want |= set(range(index + 1)) if item.endswith("+") else \
            set(range(index, 8)) if item.startswith("+") else {index}
    mine = lines_with(ours_only("-l", levels, "-r"), WORD)
    expected = [pri for pri, _ in INJECTED if pri & 7 in want]
    assert [int(re.match(rb"<(\d+)>", line).group(1)) for line in mine] == expected


def test_local_facility_filter():
    mine = lines_with(ours_only("-f", "local0,local7,res1", "-r"), WORD)
    assert [int(re.match(rb"<(\d+)>", line).group(1)) for line in mine] == [
        16 << 3 | 6, 23 << 3 | 7, 13 << 3 | 5]


def test_multi_line_message_is_one_record():
    mine = ours_only()
    start = mine.index(b"%s MULTI line one" % WORD.encode())
    block = mine[start:].split(b"\n")[:3]
    assert block == [b"%s MULTI line one" % WORD.encode(), b"               line two",
                     b"                 indented three"]
    objs = [o for o in json_objects(ours_only("-J"))["dmesg"] if "MULTI line" in o["msg"]]
    assert objs[0]["msg"].endswith("line one\nline two\n  indented three")


# ---- syslog(2) backend ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["-S"], ["-S", "-r"], ["-S", "-t", "-d"], ["-S", "-l", "err"],
                                  ["-S", "-p"], ["-S", "-s", "1000000"], ["-S", "-s", "4096"]],
                         ids=" ".join)
def test_syslog_backend_matches_util_linux(args):
    if "-l" in args:
        ref, mine, raw = stable_with_raw(args)
        mine = as_ul238_filter(args, mine, raw)
    else:
        ref, mine = stable(args)
    assert mine == ref
    assert WORD.encode() in ref


def test_syslog_backend_agrees_with_kmsg_for_single_line_records():
    kmsg = [line for line in lines_with(ours_only(), WORD) if b"MULTI" not in line]
    syslog = [line for line in lines_with(ours_only("-S"), WORD) if b"MULTI" not in line]
    assert kmsg == syslog and len(kmsg) == len(INJECTED) - 2
    kmsg_json = [o for o in json_objects(ours_only("-J"))["dmesg"]
                 if WORD in o["msg"] and "MULTI" not in o["msg"]]
    syslog_doc = json_objects(ours_only("-J", "-S"))
    assert syslog_doc["source"] == "syslog"
    syslog_json = [o for o in syslog_doc["dmesg"] if WORD in o["msg"] and "MULTI" not in o["msg"]]
    for obj in kmsg_json:
        del obj["seq"]
    assert kmsg_json == syslog_json


def test_verbose_names_the_source():
    done = ours("-v", "-k")
    assert done.stderr == b"dmesg: source: kmsg\n"
    done = ours("-v", "-S", "-k")
    assert done.stderr.startswith(b"dmesg: source: syslog")


# ---- wall-clock times ---------------------------------------------------------------------------

def boot_usec():
    now = time.time_ns() // 1000
    return now - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def stamps(word):
    return [int(r.split(b",")[2]) for r in read_kmsg_raw(word)]


def test_ctime_is_boot_time_plus_stamp():
    """util-linux 2.38 adds whole seconds only (boot.tv_sec + stamp.tv_sec, fixed upstream);
    we add the exact times. Everything else on the line is the same."""
    ref, mine = stable(["-T"])
    ref_lines, my_lines = lines_with(ref, WORD), lines_with(mine, WORD)
    boot = boot_usec()
    boot_238 = (time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)) // 10 ** 9
    assert len(ref_lines) == len(my_lines) == len(INJECTED)     # first line of each record
    for stamp, ref_line, my_line in zip(stamps(WORD), ref_lines, my_lines):
        ref_time, ref_rest = ref_line[1:].split(b"] ", 1)
        my_time, my_rest = my_line[1:].split(b"] ", 1)
        assert ref_rest == my_rest
        exact = (boot + stamp) / 1e6
        mine_s = calendar.timegm(time.strptime(my_time.decode(), "%a %b %d %H:%M:%S %Y"))
        ref_s = calendar.timegm(time.strptime(ref_time.decode(), "%a %b %d %H:%M:%S %Y"))
        assert mine_s <= exact < mine_s + 1 or abs(exact - round(exact)) < 0.01
        assert ref_s == boot_238 + stamp // 10 ** 6 or abs(exact - round(exact)) < 0.01


@pytest.mark.parametrize("zone", ["UTC", "NST+3:30", "CET-1"])
def test_iso_time(zone):
    env = dict(ENV, TZ=zone)
    ref, mine = stable(["--time-format", "iso"], env=env)
    pattern = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d),(\d{6})([+-]\d\d:\d\d) (.*)$")
    boot = boot_usec()
    ref_lines, my_lines = lines_with(ref, WORD), lines_with(mine, WORD)
    assert len(ref_lines) == len(my_lines) > 0
    for stamp, ref_line, my_line in zip(stamps(WORD), ref_lines, my_lines):
        r, m = pattern.match(ref_line), pattern.match(my_line)
        assert r and m, (ref_line, my_line)
        assert r.group(3) == m.group(3) and r.group(4) == m.group(4)
        assert r.group(2) == b"%06d" % (stamp % 10 ** 6)        # 2.38: stamp's microseconds
        sign, hours, minutes = m.group(3)[:1], int(m.group(3)[1:3]), int(m.group(3)[4:])
        offset = (hours * 3600 + minutes * 60) * (-1 if sign == b"-" else 1)
        wall = calendar.timegm(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S")) - offset
        assert abs(wall * 1e6 + int(m.group(2)) - (boot + stamp)) < 2000


def test_show_delta_with_filter_counts_from_the_previous_record():
    """util-linux >= 2.40: the delta is to the previous record in the buffer, shown or not."""
    mine = lines_with(ours_only("-d", "-l", "err", "-f", "user"), WORD)
    raw = read_kmsg_raw(WORD)
    by_seq = {}
    for data in raw:
        fields = data.split(b";")[0].split(b",")
        by_seq[int(fields[1])] = int(fields[2])
    err = [r for r in raw if int(r.split(b",")[0]) == 11]
    assert len(mine) == len(err) == 1
    seq, stamp = int(err[0].split(b",")[1]), int(err[0].split(b",")[2])
    delta = float(re.search(rb"<\s*([\d.]+)>", mine[0]).group(1))
    assert abs(delta - (stamp - by_seq[seq - 1]) / 1e6) < 1e-6


# ---- --since / --until ----------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--since", "--until"])
def test_since_until_match_util_linux(option):
    at = SPLIT[0]
    local = time.localtime(at)
    for spec in (time.strftime("%Y-%m-%d %H:%M:%S", local),
                 time.strftime("%Y-%m-%dT%H:%M:%S", local)):
        ref, mine = stable([option, spec])
        assert mine == ref, spec
        assert (WORD.encode() in mine) == (option == "--until")
        assert (LATE.encode() in mine) == (option == "--since")
    # relative times count from now in whole seconds (both tools): run them early in a second
    # so that "now" is the same second for the test and both tools, and the cut is SPLIT
    for _ in range(3):
        start = time.time()
        if start % 1 > 0.4:
            time.sleep(1.01 - start % 1)
            start = time.time()
        n = int(start) - at
        outputs = [stable([option, spec], tries=1) for spec in ("-%ds" % n, "%d sec ago" % n)]
        if int(time.time()) == int(start):
            break
    for ref_out, mine_out in outputs:
        assert mine_out == ref_out == mine
    # util-linux 2.38 has no @EPOCH or sub-seconds yet and misreads YYYYMMDDhhmmss: the same
    # instant must select the same
    assert ours_only(option, "@%d.0" % at) == mine
    assert ours_only(option, time.strftime("%Y%m%d%H%M%S", local)) == mine
    assert ours_only(option, time.strftime("%Y-%m-%d %H:%M:%S", local) + ".5") == mine


@pytest.mark.parametrize("args", [[], ["-x"], ["-r"], ["-J"], ["-d", "-l", "err,info"]],
                         ids=lambda a: " ".join(a) or "default")
def test_kmsg_file_prints_what_util_linux_prints_for_the_live_buffer(tmp_path, args):
    """-K FILE of the records read from /dev/kmsg == util-linux on /dev/kmsg itself."""
    for _ in range(8):
        before = read_kmsg_raw("")
        ref = reference(*args).stdout
        if read_kmsg_raw("") == before:
            break
    else:
        pytest.fail("the kernel log kept changing")
    path = tmp_path / "saved.kmsg"
    path.write_bytes(b"\0".join(before) + b"\0")
    mine = ours_only("-K", str(path), *args)
    if args == ["-J"]:
        mine = json_as_ul238(mine.replace(b'"source": "kmsg-file"', b'"source": "kmsg"'))
    elif args == ["-x"]:
        mine = decode_as_ul238(mine)
    elif args == ["-r"]:
        mine = raw_as_ul238(mine)
    if args[:1] == ["-d"]:   # 2.38 counts deltas between shown records only (fixed in 2.40)
        raw = ours_only("-K", str(path), "-r", "-l", "err,info")
        mine = as_ul238_filter(args, re.sub(rb"<\s*[\d.]+>", b"<>", mine), raw)
        ref = re.sub(rb"<\s*[\d.]+>", b"<>", ref)
    assert mine == ref


def toggle_promisc_on_a_device_with_a_parent():
    """netdev_info() on a net device with a parent device logs SUBSYSTEM=/DEVICE= lines
    ("entered promiscuous mode", then "left"). Only a device not already promiscuous is used,
    and it is left as it was. Returns the device name, or None."""
    net = "/sys/class/net"
    for name in sorted(os.listdir(net)):
        with open(os.path.join(net, name, "flags")) as f:
            promisc = int(f.read(), 16) & 0x100
        if promisc or not os.path.exists(os.path.join(net, name, "device")):
            continue
        for state in ("on", "off"):
            if subprocess.run(["ip", "link", "set", name, "promisc", state]).returncode:
                return None
        return name
    return None


def dictionary_records():
    """{seq: raw record} of the records with SUBSYSTEM=/DEVICE= lines."""
    return {int(r.split(b",")[1]): r for r in read_kmsg_raw("") if b"\n " in r}


def test_dictionary_records_in_the_live_buffer_reach_json():
    with_dict = dictionary_records()
    if not with_dict and shutil.which("ip") and toggle_promisc_on_a_device_with_a_parent():
        with_dict = dictionary_records()
    if not with_dict:
        pytest.skip("no record with SUBSYSTEM/DEVICE in the buffer, and no net device with a "
                    "parent device (and ip(8)) to make one")
    doc = json_objects(ours_only("-J"))
    seen = {o["seq"]: o for o in doc["dmesg"] if o["seq"] in with_dict}
    assert seen
    for seq, obj in seen.items():
        lines = with_dict[seq].split(b"\n")[1:]
        expected = {l[1:].split(b"=", 1)[0].decode(): l[1:].split(b"=", 1)[1].decode()
                    for l in lines if l.startswith(b" ")}
        assert obj["dict"] == expected


def test_238_really_drops_the_facility():
    """Guards the transforms above: if util-linux here is fixed, they must go."""
    ref = lines_with(reference("-r").stdout, WORD)
    pri = int(re.match(rb"<(-?\d+)>", ref[0]).group(1))
    assert pri in (INJECTED[0][0], (INJECTED[0][0] >> 3) | (INJECTED[0][0] & 7))
    if pri == INJECTED[0][0]:
        pytest.skip("this util-linux prints true priorities (>= 2.40)")
    assert UL238_FACILITIES == 12


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_falls_back_to_syslog_without_dev_kmsg():
    """In a mount namespace whose /dev is an empty tmpfs (a bare initramfs), we read
    syslog(2) and say so on stderr with -v."""
    script = ("mount -t tmpfs none /dev && cd %s && exec %s -m target dmesg -v"
              % (shlex.quote(REPO), shlex.quote(sys.executable)))
    for _ in range(8):
        before = reference("-S").stdout
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               script], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        if reference("-S").stdout == before:
            break
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"dmesg: source: syslog (/dev/kmsg: No such file or directory)\n"
    assert done.stdout == before and WORD.encode() in before
