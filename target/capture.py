"""`agent capture start|list|status|follow|stop|pack|clean`: capture sessions on this board.

start reads the spec (JSON) on stdin, starts the session detached from the caller (setsid;
it survives a dropped SSH connection) and prints {"id", "dir", "state"} once every part
runs. The other verbs look at sessions/<id>/state.json; a session whose process is gone
without finishing is reported (and, by stop and pack, recorded) as failed, its data kept.
"""

import json
import os
import shutil
import signal
import sys
import tarfile
import time

from target.cli import AgentError, Parser
from target.session import (READY_TIMEOUT, SESSIONS, alive, bundle_files, check_spec, read_json,
                            sha256, supervise, wait_line, write_json, write_manifest)

FINAL = ("done", "failed")


def parser():
    p = Parser(prog="capture", description="Capture sessions: strace, ftrace and dmesg together, "
                                           "detached, written to sessions/<id>/.")
    p.add_argument("--dir", default=SESSIONS, help="where sessions live (default: ./sessions)")
    sub = p.add_subparsers(dest="verb", metavar="{start,list,status,follow,stop,pack,clean}")
    sub.required = True
    sub.add_parser("start", help="start a session from the JSON spec on stdin")
    sub.add_parser("list", help="one JSON line per session")
    for verb in ("status", "follow", "stop", "pack"):
        v = sub.add_parser(verb)
        v.add_argument("id")
    sub.choices["follow"].add_argument("--interval", type=float, default=1.0, metavar="S",
                                       help="seconds between progress lines (default 1)")
    sub.choices["stop"].add_argument("--timeout", type=float, default=60.0, metavar="S",
                                     help="how long to wait for the session to finish")
    clean = sub.add_parser("clean", help="remove finished sessions")
    clean.add_argument("ids", nargs="*", metavar="ID")
    clean.add_argument("--all", action="store_true", help="every finished session")
    clean.add_argument("--older-than", type=float, metavar="HOURS",
                       help="finished sessions that started more than HOURS ago")
    clean.add_argument("--tar", action="store_true", help="remove only the packed .tar")
    return p


def main(argv):
    args = parser().parse_args(argv)
    return VERBS[args.verb](args)


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


# -- start --------------------------------------------------------------------------------

def do_start(args):
    try:
        spec = json.loads(sys.stdin.read())
    except ValueError as e:
        raise AgentError("the spec on stdin is not JSON: %s" % e)
    spec = check_spec(spec)
    os.makedirs(args.dir, exist_ok=True)
    directory = os.path.abspath(os.path.join(args.dir, spec["id"]))
    try:
        os.mkdir(directory)
    except FileExistsError:
        raise AgentError("session %s already exists" % spec["id"])
    write_json(os.path.join(directory, "spec.json"), spec)
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        os.close(r)
        detach(directory)
        os._exit(run_session(spec, directory, w))
    os.close(w)
    line = wait_line(r, READY_TIMEOUT + STARTUP_SLACK)
    if line != "ok":
        raise AgentError("%s (session %s failed; what it wrote is kept)" % (
            line or "the session process ended before it started: see %s/session.log"
            % directory, spec["id"]))
    emit({"id": spec["id"], "dir": directory, "state": "running"})
    return 0


STARTUP_SLACK = 30.0


def detach(directory):
    """A new session with no terminal; stdin from /dev/null, output to session.log."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(os.path.join(directory, "session.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                  0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def run_session(spec, directory, ready_fd):
    def report(line):
        os.write(ready_fd, (line.replace("\n", " ") + "\n").encode())
        os.close(ready_fd)
    try:
        return supervise(spec, directory, report)
    except BaseException as e:   # logged in session.log; state.json tells the host
        import traceback
        traceback.print_exc()
        try:
            state = read_json(os.path.join(directory, "state.json"))
            write_json(os.path.join(directory, "state.json"),
                       dict(state, state="failed", reason="internal error: %r" % e))
        except (OSError, ValueError):
            pass
        return 70


# -- looking at sessions ------------------------------------------------------------------

def session_dir(args, session_id):
    directory = os.path.join(args.dir, session_id)
    if "/" in session_id or session_id.startswith(".") or not os.path.isdir(directory):
        raise AgentError("no session %s in %s" % (session_id, args.dir))
    return directory


def state_of(directory):
    """state.json (None before it exists). A session is finished once its manifest is
    written; until then it runs while its process lives, and has failed when it is gone."""
    try:
        state = read_json(os.path.join(directory, "state.json"))
    except (OSError, ValueError):
        return None
    if os.path.exists(os.path.join(directory, "manifest.json")):
        return state
    if alive(state):
        return dict(state, state="running")
    if state.get("state") not in FINAL:
        state = dict(state, state="failed",
                     reason="the session process (pid %s) ended without finishing" % state.get("pid"))
    return state


def finalize_dead(directory):
    """The final state of a session that is not running; for one whose process died, record
    that end first: final state, then the manifest of what it wrote."""
    state = state_of(directory) or {"state": "failed", "reason": "the session never started"}
    if not os.path.exists(os.path.join(directory, "manifest.json")):
        write_json(os.path.join(directory, "state.json"), state)
        spec = read_json(os.path.join(directory, "spec.json"))
        write_manifest(directory, {"id": spec["id"], "spec": spec, "state": state})
    return state


def do_list(args):
    if not os.path.isdir(args.dir):
        return 0
    for name in sorted(os.listdir(args.dir)):
        directory = os.path.join(args.dir, name)
        if os.path.isdir(directory) and not name.startswith("."):
            state = state_of(directory) or {"state": "starting"}
            emit(dict({key: state.get(key) for key in LISTED}, id=name))
    return 0


LISTED = ("state", "reason", "start_realtime_ns", "elapsed", "bytes", "events", "lost")


def do_status(args):
    emit(state_of(session_dir(args, args.id)) or {"id": args.id, "state": "starting"})
    return 0


def do_follow(args):
    """A progress line every interval while the session runs, then its final state."""
    directory = session_dir(args, args.id)
    while True:
        state = state_of(directory) or {"id": args.id, "state": "starting"}
        emit(state)
        if state["state"] in FINAL:
            return 0
        time.sleep(args.interval)


def do_stop(args):
    directory = session_dir(args, args.id)
    state = state_of(directory)
    if state is not None and state["state"] == "running":
        try:
            os.kill(state["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + args.timeout
        while state["state"] == "running":
            if time.monotonic() > deadline:
                raise AgentError("session %s did not finish within %g s" % (args.id, args.timeout))
            time.sleep(0.1)
            state = state_of(directory)
    emit(finalize_dead(directory))
    return 0


def do_pack(args):
    """sessions/<id>.tar of a finished session (made once), with its size and sha256."""
    directory = session_dir(args, args.id)
    state = state_of(directory)
    if state is not None and state["state"] == "running":
        raise AgentError("session %s is still running (%.0f s so far); stop it or wait"
                         % (args.id, state.get("elapsed", 0)))
    state = finalize_dead(directory)
    tar = directory.rstrip("/") + ".tar"
    if not os.path.exists(tar):
        pack(directory, tar)
    emit({"id": args.id, "state": state["state"], "reason": state.get("reason"),
          "tar": os.path.relpath(tar), "size": os.path.getsize(tar), "sha256": sha256(tar)})
    return 0


def pack(directory, tar):
    """An uncompressed tar of the bundle's files and its manifest, owner and modes neutral."""
    part = tar + ".part"
    with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as out:
        for name in ["manifest.json"] + bundle_files(directory):
            info = out.gettarinfo(os.path.join(directory, name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(os.path.join(directory, name), "rb") as f:
                out.addfile(info, f)
    os.replace(part, tar)


def do_clean(args):
    if not (args.ids or args.all or args.older_than is not None):
        raise AgentError("say which sessions: IDs, --all or --older-than HOURS")
    names = args.ids or (sorted(os.listdir(args.dir)) if os.path.isdir(args.dir) else [])
    now = time.time_ns()
    for name in names:
        if name.endswith(".tar") or name.endswith(".part") or name.startswith("."):
            continue
        directory = session_dir(args, name)
        state = state_of(directory) or {}
        if state.get("state") == "running":
            print("capture: %s is running; not removed" % name, file=sys.stderr)
            continue
        started = state.get("start_realtime_ns") or 0
        if args.older_than is not None and now - started < args.older_than * 3600e9:
            continue
        removed = remove(directory, args.tar)
        emit({"id": name, "removed": removed})
    return 0


def remove(directory, tar_only):
    """Remove a session's tar (and, unless tar_only, its directory); bytes freed."""
    freed = 0
    tar = directory.rstrip("/") + ".tar"
    for path in (tar, tar + ".part"):
        if os.path.exists(path):
            freed += os.path.getsize(path)
            os.remove(path)
    if not tar_only:
        freed += sum(os.path.getsize(os.path.join(directory, p)) for p in bundle_files(directory))
        shutil.rmtree(directory)
    return freed


VERBS = {"start": do_start, "list": do_list, "status": do_status, "follow": do_follow,
         "stop": do_stop, "pack": do_pack, "clean": do_clean}
