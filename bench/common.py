"""What the benchmarks share: the agent deployed as the invoke tasks deploy it, and timing."""

import dataclasses
import os
import statistics
import subprocess
import sys
import time

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


def timed(cmd, reps, env=None):
    """Median wall time of reps runs of cmd (output to /dev/null, from the repository)."""
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       cwd=REPO, check=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)
