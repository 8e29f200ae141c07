"""Build the agent zipapp deterministically and name it by its sha256."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from host import REPO

SHEBANG = b"#!/usr/bin/env python3\n"
# Runs the agent's dispatcher as `python3 agent.pyz <tool> ...`, exactly like `python3 -m target`.
# (A direct import: runpy would cost a few milliseconds of start-up on every run.)
ZIP_MAIN = b"import sys\nfrom target.__main__ import main\nsys.exit(main())\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Agent:
    path: Path  # build/agent.pyz
    hashed_path: Path  # build/agent-<sha256>.pyz
    sha256: str
    size: int


def agent_sources(source: Path = REPO / "target") -> list[Path]:
    """Every .py file of the agent package, in a fixed order."""
    return sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)


def agent_bytes(source: Path = REPO / "target") -> bytes:
    """The zipapp's bytes: same sources give the same bytes (fixed times, modes and order)."""
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        _add(zf, "__main__.py", ZIP_MAIN)
        for path in agent_sources(source):
            name = "target/" + path.relative_to(source).as_posix()
            _add(zf, name, path.read_bytes())
    return buf.getvalue()


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build_agent(out_dir: Path = REPO / "build", source: Path = REPO / "target") -> Agent:
    """Write build/agent.pyz and build/agent-<sha256>.pyz; files already equal are left alone."""
    data = agent_bytes(source)
    digest = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path, hashed = out_dir / "agent.pyz", out_dir / f"agent-{digest}.pyz"
    for target in (hashed, path):
        if not target.exists() or target.read_bytes() != data:
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o755)
            tmp.replace(target)
    return Agent(path=path, hashed_path=hashed, sha256=digest, size=len(data))
