"""The lab's apt repository: the packages' dependency closure, served on the bridge only.

apt itself resolves the closure (`apt-cache depends --recurse`), so nothing is a hand list.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from lab.processes import alive_pid, sh, start_background, stop_pid
from lab.settings import LabError, LabSettings

DEPENDS_FLAGS = [
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
]


def repo_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "repo"


def parse_closure(output: str) -> list[str]:
    """Package names from `apt-cache depends --recurse` output (virtual `<names>` left out)."""
    names = {line.strip() for line in output.splitlines() if line and not line[0].isspace()}
    return sorted(name for name in names if not name.startswith("<"))


def closure(packages: tuple[str, ...]) -> list[str]:
    output = sh(["apt-cache", "depends", *DEPENDS_FLAGS, *packages]).stdout
    found = parse_closure(output)
    missing = [p for p in packages if p not in found]
    if missing:
        raise LabError(f"apt knows no package {', '.join(missing)} (run apt-get update?)")
    return found


def ensure_downloads(settings: LabSettings) -> Path:
    """Download the closure once into the cache (re-resolved only when the list changes)."""
    cache = settings.state_dir / "debs"
    marker = cache / ".packages"
    wanted = "\n".join(settings.repo_packages)
    if marker.exists() and marker.read_text() == wanted:
        return cache
    sh(["apt-get", "update", "-q"], timeout=900)
    names = closure(settings.repo_packages)
    cache.mkdir(parents=True, exist_ok=True)
    sh(
        ["sh", "-c", 'cd "$0" && shift && exec apt-get download -q "$@"', str(cache), "_", *names],
        timeout=1800,
    )
    marker.write_text(wanted)
    return cache


def ensure_index(settings: LabSettings, cache: Path) -> Path:
    """The flat repository: every cached and extra .deb, indexed when the set changes."""
    repo = repo_dir(settings)
    repo.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob("*.deb")) + sorted(settings.extra_debs.glob("*.deb"))
    manifest = "\n".join(f"{d.name} {d.stat().st_size} {d.stat().st_mtime_ns}" for d in debs)
    marker = repo / ".manifest"
    if marker.exists() and marker.read_text() == manifest:
        return repo
    for stale in repo.glob("*.deb"):
        stale.unlink()
    for deb in debs:
        shutil.copy2(deb, repo / deb.name)
    index = sh(
        ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], timeout=300, cwd=repo
    ).stdout
    (repo / "Packages").write_text(index)
    (repo / "Packages.gz").write_bytes(gzip.compress(index.encode()))
    marker.write_text(manifest)
    return repo


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
        str(repo_dir(settings)),
    ]
    start_background(argv, settings.state_dir / "repo-server.log", pid_file)


def stop_server(settings: LabSettings) -> None:
    pid = alive_pid(server_pid_file(settings), server_marker(settings))
    if pid:
        stop_pid(pid)
    server_pid_file(settings).unlink(missing_ok=True)
