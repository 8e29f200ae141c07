"""Bring a finished session home: the board packs it into one tar, the host downloads it over
SFTP (resuming an interrupted download), checks the tar's sha256, unpacks it safely and checks
every file against the manifest (host/bundle.py), then renders the outputs (host/outputs.py).

Home is sessions/<board>/<id>/; the download lives at sessions/<board>/<id>.tar.part until it
is whole, so `invoke pull` after a dropped connection continues where it stopped. The last step
writes report.html (host/report.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from host.bundle import sha256_file, unpack_bundle
from host.deploy import DeployedAgent
from host.errors import BoardtraceError, ConnectionLost
from host.outputs import render_session
from host.progress import Progress, size_text
from host.report import render_report

HOME = Path("sessions")
MISMATCHES = "checksum-mismatches.txt"  # written next to a bundle whose files did not verify


@dataclass(frozen=True)
class Pulled:
    dest: Path
    state: dict              # the session's final state (from its manifest)
    outputs: tuple[Path, ...]
    notes: tuple[str, ...]   # lost events, corrupt pages, parts that could not be rendered


def home_dir(home: Path, board: str, session_id: str) -> Path:
    return home / board / session_id


def pull(agent: DeployedAgent, session_id: str, home: Path = HOME,
         progress: Progress | None = None) -> Pulled:
    """Download, verify, unpack and render a finished session; raises BoardtraceError on a
    checksum mismatch (after keeping and rendering everything else)."""
    board = agent.transport.board.name
    dest = home_dir(home, board, session_id)
    if (dest / "manifest.json").exists():
        return _finish(agent, dest, session_id, _recorded_mismatches(dest))
    packed = agent.json(["capture", "pack", session_id])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tar = dest.with_name(f"{session_id}.tar.part")

    def show(done: int, total: int) -> None:
        if progress:
            progress.show(f"pulling {size_text(done)} of {size_text(total)}")

    try:
        agent.transport.download(packed["tar"], tar, show)
    except ConnectionLost as e:
        raise BoardtraceError(f"{e}; `invoke pull --board {board} --session {session_id}` "
                              f"resumes the download") from None
    got = sha256_file(tar)
    if got != packed["sha256"] or tar.stat().st_size != packed["size"]:
        tar.unlink()
        raise BoardtraceError(f"board {board}: the download of session {session_id} is damaged "
                              f"(sha256 {got[:16]}..., the board says {str(packed['sha256'])[:16]}...); "
                              f"run the pull again")
    unpacked = unpack_bundle(tar, dest)
    tar.unlink()
    return _finish(agent, dest, session_id, unpacked.mismatches)


def _finish(agent: DeployedAgent, dest: Path, session_id: str, mismatches: tuple[str, ...]) -> Pulled:
    """Render the outputs; drop the board's tar (the session itself stays there until clean)."""
    board = agent.transport.board.name
    state = json.loads((dest / "manifest.json").read_text()).get("state") or {}
    rendered = render_session(dest)
    outputs, notes = list(rendered.files), list(rendered.notes)
    try:
        outputs.append(render_report(dest))
    except (BoardtraceError, OSError, ValueError) as e:
        notes.append(f"report: cannot render: {e}")
    agent.run(["capture", "clean", "--tar", session_id])
    if mismatches:
        (dest / MISMATCHES).write_text("".join(f"{m}\n" for m in mismatches))
        raise BoardtraceError(
            f"board {board}: session {session_id}: checksum mismatch in {', '.join(mismatches)} "
            f"(changed on the board after it was written); everything is kept in {dest}")
    return Pulled(dest, state, tuple(outputs), tuple(notes))


def _recorded_mismatches(dest: Path) -> tuple[str, ...]:
    try:
        return tuple((dest / MISMATCHES).read_text().split())
    except FileNotFoundError:
        return ()


def local_sessions(home: Path, board: str, verified_only: bool = False) -> dict[str, dict]:
    """Sessions already at home for a board: id -> final state (verified_only: leave out
    those whose files did not match their checksums)."""
    found = {}
    root = home / board
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            manifest = entry / "manifest.json"
            if verified_only and (entry / MISMATCHES).exists():
                continue
            if entry.is_dir() and not entry.name.startswith(".") and manifest.is_file():
                try:
                    found[entry.name] = json.loads(manifest.read_text()).get("state") or {}
                except (OSError, ValueError):
                    found[entry.name] = {"state": "unreadable"}
    return found


def relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
