"""A private APT for one Debian suite and architecture: resolve and download packages from
deb.debian.org without touching the host's APT state.

Everything apt reads or writes lives under one directory (config, sources, lists, status); the host's
/etc/apt is only used for the archive signing keys. Nothing is installed: `apt-get download` fetches
the .deb files, which apt checks against the signed indexes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from host.errors import BoardtraceError

MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
TRUSTED_PARTS = Path("/etc/apt/trusted.gpg.d")
LISTS_MAX_AGE = 24 * 3600  # seconds: fresher lists are used without `apt-get update`
DEB_ARCH = {"aarch64": "arm64", "armhf": "armhf", "riscv64": "riscv64", "x86_64": "amd64"}

CONFIG = """\
Dir "/";
Dir::State "{root}/state";
Dir::State::status "{root}/state/status";
Dir::Cache "{root}/cache";
Dir::Etc "{root}/etc";
Dir::Etc::sourcelist "{root}/etc/sources.list";
Dir::Etc::sourceparts "{root}/etc/sources.list.d";
Dir::Etc::parts "{root}/etc/apt.conf.d";
Dir::Etc::main "{root}/etc/apt.conf";
Dir::Etc::preferences "{root}/etc/preferences";
Dir::Etc::preferencesparts "{root}/etc/preferences.d";
Dir::Etc::trusted "{root}/etc/trusted.gpg";
Dir::Etc::trustedparts "{trusted_parts}";
APT::Architecture "{arch}";
APT::Architectures {{ "{arch}"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "3";
Acquire::http::Timeout "30";
"""
_DEP = re.compile(r"\s*([^\s(:]+)")  # "libc6:any (>= 2.34)" -> libc6


class ArchiveUnavailable(BoardtraceError):
    """The Debian archive cannot be reached (or apt is missing): nothing can be built."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str
    depends: tuple[str, ...]  # first alternative of each Pre-Depends/Depends entry

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.arch}={self.version}"


class Apt:
    """apt-get/apt-cache for one Debian suite (main) and one architecture."""

    def __init__(self, root: Path, suite: str, arch: str, say: Callable[[str], None] = print):
        self.root, self.suite, self.arch, self.say = root.resolve(), suite, DEB_ARCH.get(arch, arch), say
        self.config = self.root / "apt.conf"

    def prepare(self) -> None:
        """Write the private configuration and sources (idempotent)."""
        if shutil.which("apt-get") is None:
            raise ArchiveUnavailable("apt-get not found: building QEMU images needs Debian's apt")
        for d in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d",
                  "etc/sources.list.d", "etc/preferences.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "state/status").touch()
        trusted = TRUSTED_PARTS if TRUSTED_PARTS.is_dir() else self.root / "etc/trusted.gpg.d"
        self.config.write_text(CONFIG.format(root=self.root, arch=self.arch, trusted_parts=trusted))
        (self.root / "etc/sources.list").write_text(self._sources())

    def _sources(self) -> str:
        # Only the suite itself: it changes at point releases, so image keys stay put for weeks,
        # and a half-synced -updates or -security mirror (seen here: indexes naming missing
        # files) cannot break a build. These are test boards, not production systems.
        signed = f" signed-by={KEYRING}" if KEYRING.is_file() else ""
        return f"deb [arch={self.arch}{signed}] {MIRROR} {self.suite} main\n"

    def update(self, max_age: float = LISTS_MAX_AGE) -> bool:
        """`apt-get update` unless the lists are younger than max_age; True when it ran."""
        self.prepare()
        stamp = self.root / "updated"  # holds the sources the lists were made from
        sources = self._sources()
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < max_age
        if fresh and stamp.read_text() == sources:
            return False
        self.say(f"apt: updating the package lists for {self.suite} {self.arch}")
        result = self._run(["apt-get", "-q", "update"])
        # apt-get update can exit 0 although an index failed: its "E:"/"W:" lines say so
        failed = re.findall(r"^[EW]: Failed to fetch (\S+)\s*(.*)$", result, re.M)
        if failed:
            raise ArchiveUnavailable(f"apt-get update for Debian {self.suite} {self.arch} failed: "
                                     f"{failed[0][0]} {failed[0][1]}")
        stamp.write_text(sources)
        return True

    def show(self, names: Iterable[str]) -> dict[str, Package]:
        """The candidate version of each named package that exists (missing names are left out)."""
        names = sorted(set(names))
        if not names:
            return {}
        out = self._run(["apt-cache", "show", "--no-all-versions", *names], check=False)
        found = {}
        for stanza in out.split("\n\n"):
            fields = _fields(stanza)
            if "Package" in fields and fields["Package"] in names:
                found[fields["Package"]] = Package(
                    name=fields["Package"], version=fields["Version"], arch=fields["Architecture"],
                    depends=tuple(_first_alternatives(fields.get("Pre-Depends", "")) +
                                  _first_alternatives(fields.get("Depends", ""))))
        return found

    def download(self, packages: Iterable[Package], into: Path) -> dict[str, tuple[Path, int]]:
        """Fetch the packages' .deb files into `into` (those already there are kept).
        Returns name -> (deb file, bytes downloaded now)."""
        into.mkdir(parents=True, exist_ok=True)
        packages = sorted(packages, key=lambda p: p.name)
        files = self._deb_files(packages)
        missing = [p for p in packages if not (into / files[p.name][0]).is_file()]
        total = sum(files[p.name][1] for p in missing)
        if missing:
            self.say(f"apt: downloading {len(missing)} packages, {total / 1e6:.1f} MB")
            self._run(["apt-get", "-q", "download", *(p.spec for p in missing)], cwd=into, stream=True)
        result = {}
        for p in packages:
            path = into / files[p.name][0]
            if not path.is_file():
                raise ArchiveUnavailable(f"apt-get download did not produce {path.name}")
            result[p.name] = (path, files[p.name][1] if p in missing else 0)
        return result

    def _deb_files(self, packages: list[Package]) -> dict[str, tuple[str, int]]:
        """name -> (file name apt-get download writes, size), from `--print-uris`."""
        out = self._run(["apt-get", "-q", "download", "--print-uris", *(p.spec for p in packages)])
        by_file = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0].startswith("'"):
                by_file[parts[1]] = int(parts[2])
        files = {}
        for p in packages:
            prefix = f"{p.name}_"
            match = [f for f in by_file if f.startswith(prefix) and f.endswith(f"_{p.arch}.deb")]
            if not match:
                raise BoardtraceError(f"apt: no download for {p.spec}")
            files[p.name] = (match[0], by_file[match[0]])
        return files

    def _run(self, argv: list[str], cwd: Path | None = None, check: bool = True, stream: bool = False) -> str:
        env = dict(os.environ, APT_CONFIG=str(self.config), LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if stream and line.startswith(("Get:", "Err:", "E:")):
                self.say("apt: " + line.rstrip())
        code = proc.wait()
        output = "".join(lines)
        if check and code != 0:
            errors = [ln for ln in output.splitlines() if ln.startswith(("E:", "Err:"))] or output.splitlines()[-1:]
            message = f"{argv[0]} {argv[2] if len(argv) > 2 else ''} ({self.suite} {self.arch}) failed: " \
                      f"{errors[0] if errors else f'exit {code}'}"
            if any(w in output for w in ("Could not resolve", "Could not connect", "Failed to fetch",
                                         "Temporary failure", "Connection timed out")):
                raise ArchiveUnavailable(message)
            raise BoardtraceError(message)
        return output


def _fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith((" ", "\t")) and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _first_alternatives(depends: str) -> list[str]:
    names = []
    for entry in depends.split(","):
        match = _DEP.match(entry.split("|")[0])
        if match:
            names.append(match.group(1))
    return names
