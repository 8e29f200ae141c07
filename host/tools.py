"""Run one agent tool on a board, streaming its output."""

from __future__ import annotations

import sys
from typing import Sequence

from host.agentbuild import build_agent
from host.deploy import deploy
from host.profiles import load_board
from host.transport import open_transport


def run_tool(board_name: str, tool: str, args: Sequence[str], trust_new_host_key: bool = False) -> int:
    """Deploy the agent to the board if needed and run `agent <tool> <args>`; returns its exit code."""
    board = load_board(board_name)
    transport = open_transport(board, trust_new_host_key)
    try:
        agent = deploy(transport)
        result = agent.run([tool, *args], stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)
    finally:
        transport.close()
    return result.code


def deploy_board(board_name: str, trust_new_host_key: bool = False) -> int:
    """`invoke deploy`: put the agent on the board (only if its hash is missing there), say
    what was done on stderr, then show the board's `agent info`; returns info's exit code."""
    board = load_board(board_name)
    transport = open_transport(board, trust_new_host_key)
    try:
        agent = build_agent()
        deployed = deploy(transport, agent)
        done = "uploaded" if deployed.uploaded else "already there, nothing uploaded:"
        print(f"board {board.name}: {done} agent-{agent.sha256[:12]}... ({agent.size:,} bytes), "
              f"run by {deployed.python}", file=sys.stderr, flush=True)
        result = deployed.run(["info"], stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)
    finally:
        transport.close()
    return result.code
