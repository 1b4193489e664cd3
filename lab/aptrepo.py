"""The lab's apt repositories: one per Debian suite, the packages' dependency closure plus the
lab's own builds, served on the bridge only.

apt itself resolves the closure (`apt-cache depends --recurse`), so nothing is a hand list. It
runs with a private configuration per suite (sources, lists, cache under the lab's state
directory), so the lab can serve trixie packages from a bookworm machine without touching the
machine's own apt.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from lab.processes import alive_pid, sh, start_background, stop_pid
from lab.settings import LabError, LabSettings, debian_mirror

DEPENDS_FLAGS = [
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
]


KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def repos_root(settings: LabSettings) -> Path:
    """What the server serves: one directory per suite."""
    return settings.state_dir / "repo"


def repo_dir(settings: LabSettings) -> Path:
    return repos_root(settings) / settings.suite


def private_apt(settings: LabSettings) -> list[str]:
    """apt options for a private configuration of this suite (created on first use)."""
    top = settings.state_dir / "apt" / settings.suite
    (top / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (top / "state" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (top / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (top / "status").touch()
    mirror = debian_mirror(settings.suite)
    (top / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror} {settings.suite} main\n")
    options = {
        "Dir::Etc::SourceList": top / "sources.list",
        "Dir::Etc::SourceParts": top / "sources.list.d",
        "Dir::State": top / "state",
        "Dir::State::status": top / "status",
        "Dir::Cache": top / "cache",
    }
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def parse_closure(output: str) -> list[str]:
    """Package names from `apt-cache depends --recurse` output (virtual `<names>` left out)."""
    names = {line.strip() for line in output.splitlines() if line and not line[0].isspace()}
    return sorted(name for name in names if not name.startswith("<"))


def closure(apt: list[str], packages: tuple[str, ...]) -> list[str]:
    output = sh(["apt-cache", *apt, "depends", *DEPENDS_FLAGS, *packages]).stdout
    found = parse_closure(output)
    missing = [p for p in packages if p not in found]
    if missing:
        raise LabError(f"apt knows no package {', '.join(missing)} (run apt-get update?)")
    return found


def ensure_downloads(settings: LabSettings) -> Path:
    """Download the closure once into the cache (re-resolved only when the list changes)."""
    cache = settings.state_dir / "debs" / settings.suite
    marker = cache / ".packages"
    wanted = "\n".join(settings.repo_packages)
    if marker.exists() and marker.read_text() == wanted:
        return cache
    apt = private_apt(settings)
    sh(["apt-get", *apt, "update", "-q"], timeout=900)
    names = closure(apt, settings.repo_packages)
    cache.mkdir(parents=True, exist_ok=True)
    sh(["apt-get", *apt, "download", "-q", *names], timeout=1800, cwd=cache)
    marker.write_text(wanted)
    return cache


def ensure_index(settings: LabSettings, cache: Path, extra: list[Path]) -> Path:
    """The suite's flat repository: every cached .deb and the lab's own (`extra`), indexed
    when the set changes."""
    repo = repo_dir(settings)
    repo.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob("*.deb")) + sorted(extra)
    manifest = "\n".join(f"{d.name} {d.stat().st_size} {d.stat().st_mtime_ns}" for d in debs)
    marker = repo / ".manifest"
    if marker.exists() and marker.read_text() == manifest:
        return repo
    for stale in repo.glob("*.deb"):
        stale.unlink()
    for deb in debs:
        link_or_copy(deb, repo / deb.name)
    index = sh(
        ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], timeout=300, cwd=repo
    ).stdout
    (repo / "Packages").write_text(index)
    (repo / "Packages.gz").write_bytes(gzip.compress(index.encode()))
    marker.write_text(manifest)
    return repo


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where both live on one filesystem (the Kubernetes debs are large)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def server_pid_file(settings: LabSettings) -> Path:
    return settings.state_dir / "repo-server.pid"


def server_marker(settings: LabSettings) -> str:
    return f"http.server {settings.repo_port} --bind {settings.gateway.ip}"


def ensure_server(settings: LabSettings) -> None:
    """Serve the repository on the gateway address only (start it unless already serving)."""
    pid_file = server_pid_file(settings)
    if alive_pid(pid_file, server_marker(settings)):
        return
    argv = [
        "python3",
        "-m",
        "http.server",
        str(settings.repo_port),
        "--bind",
        str(settings.gateway.ip),
        "--directory",
        str(repos_root(settings)),
    ]
    start_background(argv, settings.state_dir / "repo-server.log", pid_file)


def stop_server(settings: LabSettings) -> None:
    pid = alive_pid(server_pid_file(settings), server_marker(settings))
    if pid:
        stop_pid(pid)
    server_pid_file(settings).unlink(missing_ok=True)
