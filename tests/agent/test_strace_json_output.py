"""`agent strace --json-output FILE`: the text and the JSON Lines of one run, each what it
would be alone (the text of a plain run, the JSON of --json), both listing the same calls."""

import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ADDR = re.compile(r"0x[0-9a-f]+")
PREFIX = re.compile(r"^(\d+) +(.*)$")
CALL = re.compile(r"^(?:<\.\.\. (\w+) resumed>.*|(\w+)\(.*)\) += (\S+)")
SIGNAL = re.compile(r"^--- (SIG\w+) ")
EXITED = re.compile(r"^\+\+\+ exited with (\d+) \+\+\+$")


def ours(args):
    # the tracee's stdin and stdout are /dev/null: its fstat()s give the same answer every run
    return subprocess.run([sys.executable, "-m", "target", "strace"] + args, cwd=REPO,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def read(path):
    with open(path) as f:
        return f.read()


def json_objects(path):
    objs = [json.loads(line) for line in read(path).splitlines()]
    assert objs and objs[0]["type"] == "header" and objs[0]["schema"] == "boardtrace-strace"
    return objs


def events_of_text(lines):
    """{pid: [event]} from text lines (pid prefixes with -f -o, else the key None): a syscall
    is (name, return value as a number or None for "?"), a signal ("signal", name), an exit
    ("exit", code); <unfinished ...> halves are left to their <... resumed> line."""
    out = {}
    for raw in lines:
        match = PREFIX.match(raw)
        pid, text = (int(match.group(1)), match.group(2)) if match else (None, raw)
        events = out.setdefault(pid, [])
        call, sig, ended = CALL.match(text), SIGNAL.match(text), EXITED.match(text)
        if call:
            ret = call.group(3)
            value = None if ret == "?" else int(ret, 16) if ret.startswith("0x") else int(ret)
            events.append((call.group(1) or call.group(2), value))
        elif sig:
            events.append(("signal", sig.group(1)))
        elif ended:
            events.append(("exit", int(ended.group(1))))
        else:
            assert text.endswith(" <unfinished ...>"), text
    return out


def events_of_json(objs):
    """{tid: [event]} as events_of_text makes them, from the JSON objects."""
    out = {}
    for obj in objs[1:]:
        events = out.setdefault(obj["tid"], [])
        if obj["type"] == "syscall":
            events.append((obj["syscall"], obj["retval"]))
        elif obj["type"] == "signal":
            events.append(("signal", obj["signal"]))
        elif obj["type"] == "exit":
            events.append(("exit", obj["code"]))
        else:
            raise AssertionError(obj)
    return out


def mask_text(text, pids):
    """A text trace with what changes from run to run masked: addresses, random bytes, pids."""
    text = ADDR.sub("ADDR", text)
    text = re.sub(r'^((?:\d+ +|\[pid +\d+\] )?getrandom\()"[^"]*"', r'\1"RANDOM"', text, flags=re.M)
    text = re.sub(r"(si_[us]time)=\d+", r"\1=T", text)      # CPU times of the child
    text = re.sub(r"^.*wait4\(-1, .*WNOHANG.*ECHILD.*\n", "", text, flags=re.M)   # timing
    text = re.sub(r"^((?:\d+ +|\[pid +\d+\] )?getppid\(\) +=) \d+$", r"\1 PPID", text, flags=re.M)  # the tracer
    # only where a pid stands (a line's prefix, [pid N], a return value, si_pid=, a pid argument):
    # a pid such as 8192 must not mask a size
    where = r"(?:^|(?<=\[pid )|(?<== )|(?<=si_pid=)|(?<=wait4\()|(?<=kill\()|(?<=<\.\.\. )|(?<=\+\+\+ ))"
    for n, pid in enumerate(sorted(pids)):
        text = re.sub(where + r"%d\b" % pid, "PID%d" % n, text, flags=re.M)
    return text


def text_pids(text):
    """The pids a text trace names: -f prefixes, set_tid_address's result, children made."""
    pids = set(int(p) for p in re.findall(r"^(\d+) ", text, flags=re.M))
    pids.update(int(p) for p in re.findall(
        r"(?:set_tid_address|getpid|v?fork|clone3?)\b.*\) += (\d+)$", text, flags=re.M))
    return pids


def mask_json(objs):
    """The JSON objects without what changes from run to run: times, pids, addresses and
    random bytes (the tracer's pid in the header too)."""
    pids = set()
    for obj in objs[1:]:
        pids.update((obj["pid"], obj["tid"]))
    names = dict((pid, "PID%d" % n) for n, pid in enumerate(sorted(pids)))
    names[objs[0]["pid"]] = "PPID"      # the tracer, getppid()'s answer
    out = []
    for obj in objs[1:]:
        obj = dict((k, v) for k, v in obj.items() if k not in ("ts_ns", "wall", "duration_ns"))
        obj["pid"], obj["tid"] = names[obj["pid"]], names[obj["tid"]]
        if obj.get("syscall") == "getrandom":
            obj["args"][0] = "RANDOM"
        if isinstance(obj.get("return"), str) and obj["return"].startswith("0x"):
            obj["retval"] = "ADDR"      # mmap's and brk's: the number of "return"
        elif obj.get("retval") in names:
            obj["retval"] = names[obj["retval"]]
        for key in ("si_pid", "si_status"):
            if obj.get(key) in names:
                obj[key] = names[obj[key]]
        for key in ("si_utime", "si_stime"):
            if key in obj:
                obj[key] = "T"
        if obj.get("syscall") == "wait4" and obj["error"] == "ECHILD":
            continue                    # sh reaps once more or not, as the SIGCHLD comes
        obj["args"] = big_numbers(obj.get("args"))
        out.append(ADDR.sub("ADDR", json.dumps(obj, sort_keys=True)))
    return out


def big_numbers(value):
    """Addresses the JSON gives as numbers (arch_prctl's) masked like the "0x..." ones."""
    if isinstance(value, list):
        return [big_numbers(v) for v in value]
    if isinstance(value, dict):
        return dict((k, big_numbers(v)) for k, v in value.items())
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 32:
        return "ADDR"
    return value


def three_runs(tmp_path, options, command):
    """The same command traced for text only, --json only, and text with --json-output."""
    d = str(tmp_path)
    text_only = ours(options + ["-o", os.path.join(d, "a.txt")] + command)
    json_only = ours(options + ["--json", "-o", os.path.join(d, "b.jsonl")] + command)
    both = ours(options + ["-o", os.path.join(d, "c.txt"), "--json-output",
                           os.path.join(d, "c.jsonl")] + command)
    return text_only, json_only, both


def test_cat_text_and_json_are_each_what_a_single_run_writes(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    runs = three_runs(tmp_path, [], ["cat", str(data)])
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
    a, c = read(str(tmp_path / "a.txt")), read(str(tmp_path / "c.txt"))
    # the text: line for line the text of the plain run
    assert mask_text(c, text_pids(c)).splitlines() == mask_text(a, text_pids(a)).splitlines()
    assert "openat(AT_FDCWD, \"%s\", O_RDONLY) = 3" % data in re.sub(r" +=", " =", c)
    # the JSON: object for object what --json writes (times and pids aside)
    b, cj = json_objects(str(tmp_path / "b.jsonl")), json_objects(str(tmp_path / "c.jsonl"))
    assert mask_json(cj) == mask_json(b)
    assert any(o.get("syscall") == "read" and o["retval"] == 6 and o["args"][1] == "hello\n"
               for o in cj)
    # one run, two renderings: the same calls with the same results, in the same order
    (text_events,) = events_of_text(c.splitlines()).values()
    (json_events,) = events_of_json(cj).values()
    assert text_events == json_events
    assert text_events[-2:] == [("exit_group", None), ("exit", 0)]
    assert ("read", 6) in text_events and ("openat", 3) in text_events


def test_follow_a_child_process(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    command = ["sh", "-c", "cat %s; exit 3" % data]
    runs = three_runs(tmp_path, ["-f"], command)
    for run in runs:
        assert run.returncode == 3, run.stderr
    c = read(str(tmp_path / "c.txt"))
    cj = json_objects(str(tmp_path / "c.jsonl"))
    text_events, json_events = events_of_text(c.splitlines()), events_of_json(cj)
    assert len(text_events) == 2 and None not in text_events
    assert text_events == json_events
    child, parent = sorted(text_events, key=lambda pid: text_events[pid][-1])   # exit 0, 3
    assert text_events[parent][-1] == ("exit", 3) and text_events[child][-1] == ("exit", 0)
    assert ("write", 6) in text_events[child]
    assert ("signal", "SIGCHLD") in text_events[parent]
    # each is what it would be alone: the same events per process as the single runs
    a = read(str(tmp_path / "a.txt"))
    b = json_objects(str(tmp_path / "b.jsonl"))

    def shapes(events):
        return sorted([settle(seq, events) for seq in events.values()])
    assert shapes(text_events) == shapes(events_of_text(a.splitlines()))
    assert shapes(json_events) == shapes(events_of_json(b))
    assert sorted(mask_json(cj)) == sorted(mask_json(b))


def settle(events, pids):
    """Events of two runs made comparable: results that are pids (the traced ones, the
    tracer's) or addresses masked, sh's extra reaping wait4 (there or not, as the SIGCHLD
    comes) left out."""
    def mask(name, v):
        if name == "getppid" or v in pids:
            return "PID"
        return "ADDR" if isinstance(v, int) and v >= 1 << 32 else v
    return [(name, mask(name, v)) for name, v in events if (name, v) != ("wait4", -1)]


def stderr_events(text):
    """What the text on stderr shows, without who: [pid N] prefixes come and go with the
    number of tracees and the interleaving changes from run to run, so a multiset."""
    text = re.sub(r"strace: Process \d+ attached\n", "", text)
    lines = [re.sub(r"^\[pid +\d+\] ", "", line) for line in text.splitlines()]
    return sorted(e for events in events_of_text(lines).values() for e in events)


def test_follow_to_stderr_keeps_the_attach_messages(tmp_path):
    """The text on stderr gets strace's notes as without --json-output (--json has none)."""
    command = ["sh", "-c", "cat /dev/null; exit 3"]
    jpath = str(tmp_path / "c.jsonl")
    text_only = ours(["-f"] + command)
    both = ours(["-f", "--json-output", jpath] + command)
    json_only = ours(["-f", "--json"] + command)
    assert text_only.returncode == both.returncode == json_only.returncode == 3
    attached = re.compile(r"strace: Process (\d+) attached$", re.M)
    assert len(attached.findall(text_only.stderr)) == 1
    assert len(attached.findall(both.stderr)) == 1
    assert not attached.findall(json_only.stderr)
    # the text on stderr and the JSON file of one run: the same events
    objs = json_objects(jpath)
    in_json = sorted(e for events in events_of_json(objs).values() for e in events)
    assert stderr_events(both.stderr) == in_json
    assert ("exit", 3) in in_json and ("exit", 0) in in_json and ("write", 6) not in in_json
    # and the same text as without --json-output, but for pids, addresses and timing
    def masked(text):
        pids = set(int(p) for p in attached.findall(text)) | text_pids(text)
        return sorted(settle(stderr_events(text), pids))
    assert masked(both.stderr) == masked(text_only.stderr)


def test_per_process_files_and_one_json_file(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    traces = tmp_path / "traces"
    traces.mkdir()
    jpath = str(tmp_path / "all.jsonl")
    run = ours(["-ff", "-o", str(traces / "trace"), "--json-output", jpath,
                "sh", "-c", "cat %s; exit 3" % data])
    assert run.returncode == 3, run.stderr
    files = sorted(os.listdir(str(traces)))
    assert len(files) == 2 and all(re.match(r"^trace\.\d+$", f) for f in files)
    json_events = events_of_json(json_objects(jpath))
    assert sorted(json_events) == sorted(int(f.split(".")[1]) for f in files)
    for name in files:
        text = read(str(traces / name))
        assert not re.match(r"^\d", text)         # no pid prefixes in per-process files
        (events,) = events_of_text(text.splitlines()).values()
        assert events == json_events[int(name.split(".")[1])]


def test_json_and_json_output_are_mutually_exclusive(tmp_path):
    jpath = str(tmp_path / "x.jsonl")
    run = ours(["--json", "--json-output", jpath, "true"])
    assert run.returncode == 1
    assert run.stderr == "strace: --json and --json-output are mutually exclusive\n"
    assert not os.path.exists(jpath)


def test_json_output_that_cannot_be_opened(tmp_path):
    jpath = str(tmp_path / "missing" / "x.jsonl")
    run = ours(["--json-output", jpath, "true"])
    assert run.returncode == 1
    assert run.stderr == "strace: Can't fopen '%s': No such file or directory\n" % jpath


def summary_calls(table):
    """{syscall: calls} from a -c table."""
    calls = {}
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]) and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def test_summary_only_writes_the_json_and_the_table(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    jpath = str(tmp_path / "c.jsonl")
    run = ours(["-c", "--json-output", jpath, "cat", str(data)])
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("% time") and lines[-1].endswith(" total")
    assert not any(re.match(r"^\w+\(", l) for l in lines)      # no trace lines
    objs = json_objects(jpath)                                # and no table in the JSON
    counted = {}
    for obj in objs:
        if obj["type"] == "syscall" and obj["syscall"] != "exit_group":   # not in strace's
            counted[obj["syscall"]] = counted.get(obj["syscall"], 0) + 1
    calls = summary_calls(run.stderr)
    assert calls == counted and calls["read"] >= 2
    assert objs[-1]["type"] == "exit" and objs[-1]["code"] == 0


def test_summary_with_lines_goes_to_the_text_file(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    tpath, jpath = str(tmp_path / "c.txt"), str(tmp_path / "c.jsonl")
    run = ours(["-C", "-o", tpath, "--json-output", jpath, "cat", str(data)])
    assert run.returncode == 0, run.stderr
    text = read(tpath)
    assert "% time" in text and re.search(r"^read\(3, \"hello\\n\"", text, re.M)
    head = text[:text.index("% time")]
    (events,) = events_of_text(head.splitlines()).values()
    objs = json_objects(jpath)
    assert events == events_of_json(objs)[objs[-1]["tid"]]
    assert summary_calls(text)["read"] == sum(1 for e in events if e[0] == "read")
