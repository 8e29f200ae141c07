"""Dry runs that tell whether an ftrace feature really works, done in a private instance
so the global tracing state is never touched."""

import errno
import os
import struct

PREFIX = "boardtrace-probe-"

CONFIG = {
    "function": "CONFIG_FUNCTION_TRACER",
    "function_graph": "CONFIG_FUNCTION_GRAPH_TRACER",
}

POLICY = "blocked by policy or privileges (lockdown, LSM, sandbox, or not root)"


def classify(err, config=None, error_log=None):
    """Why a tracefs operation failed, from its errno (see DESIGN.md, rules of the agent)."""
    if err == errno.ENOENT:
        return "not built into this kernel" + (" (%s)" % config if config else "")
    if err in (errno.EPERM, errno.EACCES):
        return POLICY
    if err == errno.EINVAL:
        return "unsupported" + (": %s" % error_log if error_log else "")
    if err == errno.EBUSY:
        return "in use (another tracing session or reader)"
    return os.strerror(err)


def last_error(tracefs):
    """The last message line of an error_log, or None (no file, empty, unreadable)."""
    try:
        lines = [line.strip() for line in tracefs.read("error_log").splitlines()]
    except OSError:
        return None
    messages = [line for line in lines if "error:" in line] or [line for line in lines if line]
    return messages[-1] if messages else None


def _failure(result, step, e, config=None, logs=()):
    log = None
    if e.errno == errno.EINVAL:
        log = next(filter(None, (last_error(t) for t in logs)), None)
    result.update(ok=False, step=step, errno=errno.errorcode.get(e.errno, str(e.errno)),
                  reason=classify(e.errno, config, log))
    return result


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale(tracefs):
    """Remove probe instances left by probes that died (their pid is gone, or is ours now)."""
    removed = []
    try:
        names = tracefs.instances()
    except OSError:
        return removed
    for name in names:
        pid = name[len(PREFIX):]
        if not (name.startswith(PREFIX) and pid.isdigit()):
            continue
        if int(pid) == os.getpid() or not _alive(int(pid)):
            try:
                os.rmdir(tracefs.instance(name).path)
                removed.append(name)
            except OSError:
                pass
    return removed


def tracer_works(tracefs, tracer):
    """Set tracer in a private instance, read it back, reset to nop, remove the instance.

    Returns {"ok", "tracer", "listed", "instance", "step", "errno", "reason"}:
    step names what failed, errno its name and reason the classification.
    """
    config = CONFIG.get(tracer)
    name = "%s%d" % (PREFIX, os.getpid())
    result = {"ok": False, "tracer": tracer, "listed": None, "instance": name,
              "step": None, "errno": None, "reason": None}
    try:
        result["listed"] = tracer in tracefs.read("available_tracers").split()
    except OSError as e:
        return _failure(result, "read available_tracers", e, config)
    if not result["listed"]:
        result.update(step="read available_tracers", reason="not built into this kernel: "
                      "%r is not in available_tracers" % tracer
                      + (" (%s)" % config if config else ""))
        return result
    remove_stale(tracefs)
    instance = tracefs.instance(name)
    try:
        os.mkdir(instance.path)
    except OSError as e:
        _failure(result, "mkdir instance", e, config)
        if e.errno == errno.ENOENT:
            result["reason"] = "private instances not supported: no instances/ directory " \
                "(kernel older than 3.10?)"
        else:
            result["reason"] = "cannot create a private instance: " + result["reason"]
        return result
    try:
        _set_tracer(instance, tracer, result, config, (instance, tracefs))
    finally:
        try:
            os.rmdir(instance.path)
        except OSError as e:
            result["cleanup_error"] = "rmdir %s: %s" % (instance.path, os.strerror(e.errno))
    return result


def _set_tracer(instance, tracer, result, config, logs):
    try:
        instance.write("current_tracer", tracer)
    except OSError as e:
        return _failure(result, "write current_tracer", e, config, logs)
    try:
        current = instance.read("current_tracer").strip()
        if current != tracer:
            result.update(step="read current_tracer",
                          reason="current_tracer reads back %r, not %r" % (current, tracer))
            return result
        result.update(ok=True)
        return result
    except OSError as e:
        return _failure(result, "read current_tracer", e, config, logs)
    finally:
        try:
            instance.write("current_tracer", "nop")
        except OSError as e:
            result["cleanup_error"] = "reset current_tracer to nop: %s" % os.strerror(e.errno)


def function_tracer_works(tracefs):
    """Whether the function tracer really works here (not merely listed)."""
    return tracer_works(tracefs, "function")


# -- every feature, tried for real in a private instance --------------------------------

FEATURE_CONFIG = {
    "events": "CONFIG_EVENT_TRACING",
    "event filters": "CONFIG_EVENT_TRACING",
    "triggers": "CONFIG_EVENT_TRACING (kernel 3.14 or later)",
    "hist": "CONFIG_HIST_TRIGGERS",
    "snapshot": "CONFIG_TRACER_SNAPSHOT",
    "kprobe events": "CONFIG_KPROBE_EVENTS",
    "uprobe events": "CONFIG_UPROBE_EVENTS",
    "set_event_pid": "kernel 4.4 or later",
    "trace_marker": "CONFIG_TRACING",
}


def _some_event(tracefs):
    """events/<system>/<event>/ of sched_switch, else of the first listed event."""
    with open(tracefs.file("available_events")) as f:
        names = [line.strip() for line in f if ":" in line]
    name = "sched:sched_switch" if "sched:sched_switch" in names else names[0]
    return "events/%s/" % name.replace(":", "/")


def _write_pair(target, name, value, undo, append=False):
    """Write value; if that worked, write undo (both as one step: the feature works)."""
    target.write(name, value, append=append)
    target.write(name, undo, append=append)


def _entry_offset(path):
    """File offset of an executable's entry point (valid for PIE executables)."""
    with open(path, "rb") as f:
        head = f.read(64)
    fmt = "<" if head[5] == 1 else ">"
    return struct.unpack_from(fmt + ("Q" if head[4] == 2 else "I"), head, 24)[0]


def _check(feature, inst, top):
    tag = "boardtrace_%d" % os.getpid()
    if feature in ("events", "event filters", "triggers", "hist"):
        base = _some_event(top)
        if feature == "events":
            return _write_pair(inst, base + "enable", "1", "0")
        if feature == "event filters":
            return _write_pair(inst, base + "filter", "common_pid != 0", "0")
        trigger = "stacktrace" if feature == "triggers" else "hist:keys=common_pid"
        return _write_pair(inst, base + "trigger", trigger, "!" + trigger, append=True)
    if feature == "snapshot":
        return _write_pair(inst, "snapshot", "1", "0")
    if feature == "kprobe events":
        return _write_pair(top, "kprobe_events", "p:%s vfs_read\n" % tag, "-:%s\n" % tag,
                           append=True)
    if feature == "uprobe events":
        exe = "/bin/true" if os.path.exists("/bin/true") else os.path.realpath("/proc/self/exe")
        spec = "p:%s %s:0x%x\n" % (tag, exe, _entry_offset(exe))
        return _write_pair(top, "uprobe_events", spec, "-:%s\n" % tag, append=True)
    if feature == "set_event_pid":
        return _write_pair(inst, "set_event_pid", str(os.getpid()), "")
    if feature == "trace_marker":
        return inst.write("trace_marker", "boardtrace probe\n")
    raise ValueError(feature)


def _feature(feature, inst, top):
    result = {"feature": feature, "ok": True, "errno": None, "reason": None}
    try:
        _check(feature, inst, top)
    except OSError as e:
        _failure(result, "write", e, FEATURE_CONFIG.get(feature), (inst, top))
        del result["step"]
        if feature == "hist" and e.errno == errno.EINVAL and not _listed_trigger(top, "hist"):
            result["reason"] = "not built into this kernel (CONFIG_HIST_TRIGGERS): " \
                "hist is not among the available triggers"
    return result


def _listed_trigger(top, word):
    try:
        text = top.read(_some_event(top) + "trigger")
    except OSError:
        return False
    return word in text.partition("Available triggers:")[2].split("\n")[1].split() \
        if "Available triggers:" in text else False


FEATURES = ("events", "event filters", "triggers", "hist", "snapshot", "kprobe events",
            "uprobe events", "set_event_pid", "trace_marker")


def features(tracefs):
    """Try every feature; returns [{"feature", "ok", "errno", "reason"}]."""
    results = []
    for tracer in ("function", "function_graph"):
        r = tracer_works(tracefs, tracer)
        results.append({"feature": tracer, "ok": r["ok"], "errno": r["errno"],
                        "reason": r["reason"]})
    name = "%s%d" % (PREFIX, os.getpid())
    inst = tracefs.instance(name)
    try:
        os.mkdir(inst.path)
    except OSError as e:
        failed = _failure({"feature": "instances", "ok": True}, "mkdir", e)
        del failed["step"]
        return results + [failed] + [
            {"feature": f, "ok": False, "errno": None,
             "reason": "not tried: needs a private instance"} for f in FEATURES]
    results.append({"feature": "instances", "ok": True, "errno": None, "reason": None})
    try:
        results += [_feature(f, inst, tracefs) for f in FEATURES]
    finally:
        os.rmdir(inst.path)
    return results
