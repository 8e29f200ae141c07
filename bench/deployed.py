"""The agent as the benchmarks run it: deployed to the local board, as the invoke tasks do."""

import dataclasses
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deployed_agent(python, work_dir):
    """Deploy the agent into work_dir, to be run by python: the command lines of the deployed
    agent (with the bytecode its Python made) and of the bare zipapp."""
    sys.path.insert(0, REPO)
    from host.agentbuild import build_agent
    from host.deploy import AGENT_FLAGS, deploy
    from host.profiles import load_board
    from host.transport import open_transport

    board = dataclasses.replace(load_board("local"), workdir=work_dir, python=(python,))
    agent = build_agent()
    deployed = deploy(open_transport(board), agent)
    return ([python, *AGENT_FLAGS, deployed.path],
            [python, *AGENT_FLAGS, str(agent.path)])
