"""Dry runs that tell whether an ftrace feature really works, done in a private instance
so the global tracing state is never touched."""

import errno
import os

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
