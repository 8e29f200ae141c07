"""The house rules: top-level layout, target/ is stdlib-only and runs on Python 3.8."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"host", "target", "toolchains", "boards", "tasks.py", "tests", "README.md",
             "pyproject.toml", "bench", "docs", ".ci", ".gitignore", ".git"}


def tracked_top_level():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    return {f.split("/")[0] for f in files}


def test_top_level_is_exactly_the_documented_layout():
    assert tracked_top_level() <= TOP_LEVEL
    assert {"host", "target", "toolchains", "boards", "tasks.py", "tests", "README.md"} <= tracked_top_level()


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_target_imports_only_the_standard_library_and_itself():
    allowed = set(sys.stdlib_module_names) | {"target"}
    bad = [f"{p.relative_to(REPO)}:{line}: {name}"
           for p in sorted((REPO / "target").rglob("*.py"))
           for name, line in imported_modules(p) if name not in allowed]
    assert not bad, "target/ must import only the standard library:\n" + "\n".join(bad)


def test_the_import_scan_catches_a_third_party_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom yaml import safe_load\n")
    assert ("yaml", 2) in list(imported_modules(bad))


def vermin(path):
    exe = Path(sys.executable).parent / "vermin"
    if not exe.exists():
        pytest.skip(f"vermin is not installed next to {sys.executable}")
    return subprocess.run([str(exe), "--no-tips", "--violations", "-t=3.8-", "--eval-annotations",
                           str(path)], capture_output=True, text=True)


def test_target_needs_no_python_newer_than_3_8():
    result = vermin(REPO / "target")
    assert result.returncode == 0, result.stdout + result.stderr


def test_vermin_catches_newer_syntax(tmp_path):
    (tmp_path / "new.py").write_text("def f(x):\n    match x:\n        case 1:\n            return x\n")
    assert vermin(tmp_path).returncode != 0
