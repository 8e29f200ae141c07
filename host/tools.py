"""Run one agent tool on a board, streaming its output."""

from __future__ import annotations

import sys
from typing import Sequence

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
