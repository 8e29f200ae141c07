"""The session tasks: capture on one or many boards, pull, list, stop and clean sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from host.capture import CaptureRequest, follow, goes_on, start, stop
from host.deploy import DeployedAgent, deploy
from host.errors import BoardtraceError, ConnectionLost
from host.fleet import BoardRun, Outcome, run_on_boards
from host.profiles import Board
from host.progress import describe, size_text
from host.pull import HOME, Pulled, local_sessions, pull, relative
from host.transport import open_transport


def capture(boards: list[Board], request: CaptureRequest, home: Path = HOME,
            trust_new_host_key: bool = False) -> int:
    """`invoke capture`: the same session on every board at once, each pulled home."""

    def job(run: BoardRun) -> str:
        agent = run.deploy()
        run.on_interrupt = lambda: stop(agent, request.session_id)
        _until_done(run, agent, request.session_id, request)
        run.on_interrupt = None
        return _pulled_text(pull(agent, request.session_id, home, run.progress))

    return _report(run_on_boards(boards, job, trust_new_host_key))


def pull_session(board: Board, session_id: str, home: Path = HOME, trust_new_host_key: bool = False) -> int:
    """`invoke pull`: wait for the session to finish (showing its progress), then fetch it."""

    def job(run: BoardRun) -> str:
        agent = run.deploy()
        _until_done(run, agent, session_id)
        return _pulled_text(pull(agent, session_id, home, run.progress))

    return _report(run_on_boards([board], job, trust_new_host_key))


def _until_done(run: BoardRun, agent: DeployedAgent, session_id: str,
                request: CaptureRequest | None = None) -> None:
    """Start the session (given a request), then follow it to its end. A dropped connection
    is an error that says the session goes on and how to fetch it."""
    try:
        if request is not None:
            start(agent, request)
        follow(agent, session_id, run.progress)
    except ConnectionLost as e:
        raise goes_on(e, run.board.name, session_id) from None


def _pulled_text(pulled: Pulled) -> str:
    state = pulled.state
    lines = [f"session {pulled.dest.name} {state.get('state')} ({state.get('reason')}): "
             f"{describe(state)} -> {relative(pulled.dest)}/"]
    lines += [f"  note: {note}" for note in pulled.notes]
    return "\n".join(lines)


def _report(outcomes: list[Outcome]) -> int:
    for o in outcomes:
        text = o.text if o.ok else f"error: {o.text}"
        print(f"{o.board}: {text}", file=sys.stdout if o.ok else sys.stderr, flush=True)
    failed = [o.board for o in outcomes if not o.ok]
    if failed and len(outcomes) > 1:
        print(f"{len(failed)} of {len(outcomes)} boards failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _agent(board: Board, trust_new_host_key: bool) -> DeployedAgent:
    transport = open_transport(board, trust_new_host_key)
    try:
        return deploy(transport)
    except BaseException:
        transport.close()
        raise


def _board_sessions(agent: DeployedAgent) -> dict[str, dict]:
    result = agent.run(["capture", "list"])
    if result.code != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise BoardtraceError(f"board {agent.transport.board.name}: {lines[-1] if lines else 'capture list failed'}")
    return {s["id"]: s for s in map(json.loads, result.stdout.decode().splitlines())}


def list_sessions(board: Board, home: Path = HOME, trust_new_host_key: bool = False) -> int:
    """`invoke sessions`: the board's sessions and those at home, one line each."""
    agent = _agent(board, trust_new_host_key)
    try:
        on_board = _board_sessions(agent)
    finally:
        agent.transport.close()
    at_home = local_sessions(home, board.name)
    print(f"{'session':<24} {'board':<10} {'home':<5} {'size':>9}  reason")
    for sid in sorted(set(on_board) | set(at_home)):
        state = on_board.get(sid) or at_home[sid]
        where = state.get("state", "?") if sid in on_board else "-"
        print(f"{sid:<24} {where:<10} {'yes' if sid in at_home else 'no':<5} "
              f"{size_text(state.get('bytes') or 0):>9}  {state.get('reason') or ''}")
    return 0


def stop_session(board: Board, session_id: str, trust_new_host_key: bool = False) -> int:
    """`invoke stop`: end a running session; it stays on the board until pulled."""
    agent = _agent(board, trust_new_host_key)
    try:
        state = stop(agent, session_id)
    finally:
        agent.transport.close()
    print(f"{board.name}: session {session_id} {state.get('state')} ({state.get('reason')}): {describe(state)}")
    return 0


def clean_sessions(board: Board, session_ids: list[str], everything: bool, older_than: float | None,
                   home: Path = HOME, trust_new_host_key: bool = False) -> int:
    """`invoke clean`: remove finished sessions from the board. By default only those that
    are safely at home; --all for every finished one; --older-than HOURS by age."""
    agent = _agent(board, trust_new_host_key)
    try:
        if session_ids or everything or older_than is not None:
            args = [*session_ids] + (["--all"] if everything else []) + \
                (["--older-than", str(older_than)] if older_than is not None else [])
        else:
            args = sorted(set(local_sessions(home, board.name, verified_only=True)) & set(_board_sessions(agent)))
            if not args:
                print(f"{board.name}: no session on the board is also at home in {relative(home)}/; "
                      f"nothing removed (--all removes every finished session)")
                return 0
        result = agent.run(["capture", "clean", *args], stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)
    finally:
        agent.transport.close()
    return result.code
