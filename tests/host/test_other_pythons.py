"""The agent's own tests (tests/agent) also run under the oldest and newest CPython we support."""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from host import REPO
from host.agentbuild import build_agent
from host.deploy import deploy
from host.profiles import load_board
from host.transport import open_transport

VERSIONS = ["3.8", "3.13"]


def find_interpreter(version):
    pyenv = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(
        f"versions/{version}.*/bin/python{version}"))
    if pyenv:
        return str(pyenv[-1])
    return shutil.which(f"python{version}")


def agent_venv(version, python):
    """A cached virtualenv with pytest and hypothesis for that interpreter."""
    env_dir = REPO / "build" / f"venv-{version}"
    py = env_dir / "bin" / "python"
    if not (env_dir / ".ready").exists():
        subprocess.run([python, "-m", "venv", "--clear", str(env_dir)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "pytest", "hypothesis"], check=True)
        (env_dir / ".ready").touch()
    return py


@pytest.mark.parametrize("version", VERSIONS)
def test_agent_suite_passes_under(version):
    python = find_interpreter(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed (no pyenv version, no python{version} on PATH)")
    py = agent_venv(version, python)
    try:
        result = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/agent"],
                                cwd=REPO, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"CPython {version}: the agent's suite did not finish in 15 minutes:\n"
                    f"{(e.stdout or b'')[-4000:]!r}")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, f"CPython {version}: {summary}\n{result.stdout[-4000:]}"
    assert " passed" in summary


@pytest.mark.parametrize("version", VERSIONS)
def test_agent_deploys_and_runs_under(version, tmp_path):
    """A board whose only Python is the oldest or newest we support: bytecode made by it, info runs."""
    python = find_interpreter(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed (no pyenv version, no python{version} on PATH)")
    board = dataclasses.replace(load_board("local"), workdir=str(tmp_path / "work"), python=(python,))
    deployed = deploy(open_transport(board), build_agent(tmp_path / "build"))
    assert deployed.python == python
    assert deployed.path.endswith(f".cpython-{version.replace('.', '')}.pyz")
    result = deployed.run(["info"])
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["python"]["version"].startswith(version + ".")
