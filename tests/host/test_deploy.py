"""Deploying the agent on the local board, exactly as on a remote one."""

import dataclasses
import os
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from host.agentbuild import build_agent
from host.deploy import deploy
from host.errors import BoardtraceError
from host.profiles import load_board
from host.transport import open_transport


@pytest.fixture
def agent(tmp_path_factory):
    return build_agent(tmp_path_factory.mktemp("build"))


def local_board(tmp_path, **changes):
    return dataclasses.replace(load_board("local"), workdir=str(tmp_path / "work"), **changes)


def uploaded_path(tmp_path, agent):
    return tmp_path / "work" / f"agent-{agent.sha256}.pyz"


def test_first_deploy_uploads_then_reuses(tmp_path, agent):
    transport = open_transport(local_board(tmp_path))
    first = deploy(transport, agent)
    assert first.uploaded and uploaded_path(tmp_path, agent).read_bytes() == agent.path.read_bytes()
    assert not deploy(transport, agent).uploaded


def test_the_agent_runs_from_bytecode_made_by_the_boards_python(tmp_path, agent):
    deployed = deploy(open_transport(local_board(tmp_path)), agent)
    tag = sys.implementation.cache_tag
    assert Path(deployed.path).name == f"agent-{agent.sha256}.{tag}.pyz"
    with zipfile.ZipFile(deployed.path) as z:
        names = set(z.namelist())
    sources = {n for n in names if n.endswith(".py")}
    assert "target/dmesg/record.py" in sources
    assert {n + "c" for n in sources if n != "__main__.py"} <= names
    # zipimport names the file it loaded a module from: the .pyc, not the source.
    probe = f"import sys; sys.path[0:0] = [{deployed.path!r}]; import target.dmesg.record as m; print(m.__file__)"
    run = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"{deployed.path}/target/dmesg/record.pyc"


def test_a_damaged_agent_is_uploaded_again(tmp_path, agent):
    transport = open_transport(local_board(tmp_path))
    deploy(transport, agent)
    path = uploaded_path(tmp_path, agent)
    path.write_bytes(path.read_bytes()[:-10])
    again = deploy(transport, agent)
    assert again.uploaded and path.read_bytes() == agent.path.read_bytes()


def test_deployed_agent_runs_a_tool(tmp_path, agent):
    deployed = deploy(open_transport(local_board(tmp_path)), agent)
    result = deployed.run(["info"])
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["python"]


def test_profile_python_list_is_tried_in_order(tmp_path, agent):
    board = local_board(tmp_path, python=("boardtrace-no-python", sys.executable))
    assert deploy(open_transport(board), agent).python == sys.executable


def test_no_usable_python_is_one_clear_error(tmp_path, agent, monkeypatch):
    board = local_board(tmp_path, python=("boardtrace-no-python",))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # hides python3 from the board's PATH
    with pytest.raises(BoardtraceError, match=r"no Python >= 3.8 \(none of boardtrace-no-python, python3 runs\)"):
        deploy(open_transport(board), agent)


def test_too_old_python_is_refused(tmp_path, agent, monkeypatch):
    old = next(Path.home().glob(".pyenv/versions/3.6.*/bin/python3.6"), None)
    if old is None:
        pytest.skip("no CPython 3.6 under ~/.pyenv/versions to play a too-old board Python")
    board = local_board(tmp_path, python=(str(old),))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BoardtraceError, match=rf"no Python >= 3.8 \({old} is 3.6\)"):
        deploy(open_transport(board), agent)


def test_unwritable_workdir_is_one_clear_error(tmp_path, agent):
    board = dataclasses.replace(load_board("local"), workdir="/proc/boardtrace-cannot-exist")
    with pytest.raises(BoardtraceError, match="workdir /proc/boardtrace-cannot-exist cannot be created"):
        deploy(open_transport(board), agent)


def test_a_new_build_removes_older_builds_but_the_two_latest(tmp_path, agent):
    work = tmp_path / "work"
    work.mkdir()
    old = []
    for age, digit in enumerate("12345"):
        name = f"agent-{digit * 64}"
        for path in (work / f"{name}.pyz", work / f"{name}.cpython-311.pyz"):
            path.write_bytes(b"old build")
            os.utime(path, (1e9 - age * 1000, 1e9 - age * 1000))
        old.append(name)
    (work / "agent-notes.pyz").write_bytes(b"not a build")
    deploy(open_transport(local_board(tmp_path)), agent)
    left = sorted(p.name for p in work.iterdir())
    kept = [n for n in left if n.split(".")[0] in old]
    assert kept == sorted(f"{old[i]}{suffix}" for i in (0, 1) for suffix in (".cpython-311.pyz", ".pyz"))
    assert "agent-notes.pyz" in left and uploaded_path(tmp_path, agent).name in left


def test_a_redeploy_is_one_round_trip_and_uploads_nothing(tmp_path, agent, monkeypatch):
    transport = open_transport(local_board(tmp_path))
    deploy(transport, agent)
    calls = []
    for name in ("run", "put"):
        real = getattr(transport, name)
        monkeypatch.setattr(transport, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    again = deploy(transport, agent)
    assert calls == ["run"] and not again.uploaded
