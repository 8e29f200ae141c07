"""The agent zipapp: reproducible bytes, named by sha256, same behaviour as `python3 -m target`."""

import hashlib
import subprocess
import sys
import zipfile

from host import REPO
from host.agentbuild import FIXED_TIME, agent_sources, build_agent


def test_two_builds_are_byte_for_byte_identical(tmp_path):
    a = build_agent(tmp_path / "a")
    b = build_agent(tmp_path / "b")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.sha256 == b.sha256 == hashlib.sha256(a.path.read_bytes()).hexdigest()


def test_the_copy_is_named_by_its_sha256_and_the_size_is_reported(tmp_path):
    agent = build_agent(tmp_path)
    assert agent.hashed_path.name == f"agent-{agent.sha256}.pyz"
    assert agent.hashed_path.read_bytes() == agent.path.read_bytes()
    assert agent.size == agent.path.stat().st_size


def test_a_source_change_changes_the_hash(tmp_path):
    src = tmp_path / "target"
    src.mkdir()
    for path in agent_sources():
        dest = src / path.relative_to(REPO / "target")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    before = build_agent(tmp_path / "out1", source=src).sha256
    (src / "__init__.py").write_text((src / "__init__.py").read_text() + "\n# changed\n")
    assert build_agent(tmp_path / "out2", source=src).sha256 != before


def test_entries_have_fixed_times_modes_and_order(tmp_path):
    agent = build_agent(tmp_path)
    with zipfile.ZipFile(agent.path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "__main__.py"
    assert names[1:] == sorted(names[1:])
    assert "target/__main__.py" in names and "target/libc.py" in names
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]
    assert {i.date_time for i in infos} == {FIXED_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o644}


def run(argv):
    return subprocess.run(argv, capture_output=True, cwd=REPO)


def test_zipapp_and_module_behave_identically(tmp_path):
    agent = build_agent(tmp_path)
    for args in (["--version"], ["--help"], [], ["no-such-tool"], ["dmesg", "--no-such-option"],
                 ["dmesg", "--level", "nonsense"], ["info", "--help"]):
        mod = run([sys.executable, "-m", "target", *args])
        pyz = run([sys.executable, str(agent.path), *args])
        assert (mod.returncode, mod.stdout, mod.stderr) == (pyz.returncode, pyz.stdout, pyz.stderr), args


def test_zipapp_runs_from_another_directory_as_an_executable(tmp_path):
    agent = build_agent(tmp_path)
    result = subprocess.run([str(agent.path), "--version"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0 and result.stdout.startswith("boardtrace-agent ")
