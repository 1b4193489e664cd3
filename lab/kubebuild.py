"""Real Kubernetes binaries for the lab, built by the go command from the published module.

`go install k8s.io/kubernetes/cmd/...@vX` refuses (that module replaces its staging modules with
local paths, and replace directives only apply in the main module), so each version gets a small
wrapper module of ours, lab/kubernetes/vX/go.mod: it requires k8s.io/kubernetes vX, replaces every
staging module with its published k8s.io/NAME v0.X.Y, and names the commands as `tool`s so that
`go mod tidy` keeps them. The module cache and build cache are shared by every version under the
lab's state directory; the binaries land in STATE/kubernetes/vX/bin and are packaged as .debs
named as the inventory installs them (kube-apiserver=X-*, kubelet=X-*, ...).

    python -m lab.kubebuild [vX.Y.Z ...]     build (or reuse) and package; prints the time
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubenorn.cli import error_message
from lab.processes import sh
from lab.settings import LAB_DIR, LabError

MODULE = "k8s.io/kubernetes"
WRAPPERS = LAB_DIR / "kubernetes"
# Binary name (and .deb name) -> its package in the module.
COMMANDS = {
    "kube-apiserver": "cmd/kube-apiserver",
    "kube-controller-manager": "cmd/kube-controller-manager",
    "kube-scheduler": "cmd/kube-scheduler",
    "kubelet": "cmd/kubelet",
    "kube-proxy": "cmd/kube-proxy",
    "kubectl": "cmd/kubectl",
}
# The version packages the ldflags stamp, so `--version` and a node's kubeletVersion are real.
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/\1\s*$", re.M)


@dataclass(frozen=True)
class Build:
    """Where one version's wrapper, caches and outputs live."""

    version: str  # "v1.37.2"
    state_dir: Path

    @property
    def wrapper(self) -> Path:
        return WRAPPERS / self.version

    @property
    def go_dir(self) -> Path:
        return self.state_dir / "go"

    @property
    def out_dir(self) -> Path:
        return self.state_dir / "kubernetes" / self.version

    @property
    def bin_dir(self) -> Path:
        return self.out_dir / "bin"

    @property
    def deb_dir(self) -> Path:
        return self.state_dir / "kubernetes" / "debs"

    @property
    def plain(self) -> str:
        return self.version.removeprefix("v")


def parse_version(version: str) -> str:
    """'1.37.2' or 'v1.37.2' -> 'v1.37.2'; anything else is refused."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    if not match:
        raise LabError(f"kubernetes version {version!r} is not MAJOR.MINOR.PATCH")
    return "v" + ".".join(match.groups())


def go_env(go_dir: Path) -> dict[str, str]:
    """One module cache and one build cache for everything the lab builds; no cgo, no
    toolchain switch."""
    return {
        **os.environ,
        "GOMODCACHE": str(go_dir / "mod"),
        "GOCACHE": str(go_dir / "cache"),
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
    }


def go(build: Build, *args: str, timeout: float = 600) -> str:
    return sh(["go", *args], cwd=build.wrapper, env=go_env(build.go_dir), timeout=timeout).stdout


def staging_replacements(release_go_mod: str, staging_version: str) -> list[str]:
    """The release's `k8s.io/NAME => ./staging/src/k8s.io/NAME` lines, as published modules."""
    names = STAGING_REPLACE.findall(release_go_mod)
    if not names:
        raise LabError(f"{MODULE}'s go.mod has no staging replace block")
    return [f"\t{name} => {name} {staging_version}" for name in names]


def wrapper_go_mod(version: str, release_go_mod: str) -> str:
    """go.mod of the wrapper module for `version` (vMAJOR.MINOR.PATCH)."""
    major, minor, patch = version.removeprefix("v").split(".")
    staging = f"v0.{minor}.{patch}"
    go_line = re.search(r"^go (\S+)$", release_go_mod, re.M)
    godebug = re.search(r"^godebug .*$", release_go_mod, re.M)
    lines = [
        f"// Wrapper of {MODULE} {version} for the kubenorn lab: no Kubernetes source here.",
        f"module kubenorn.lab/kubernetes-{version}",
        "",
        f"go {go_line.group(1) if go_line else '1.26'}",
        "",
        *([godebug.group(0), ""] if godebug else []),
        f"require {MODULE} {version}",
        "",
        "tool (",
        *(f"\t{MODULE}/{package}" for package in COMMANDS.values()),
        ")",
        "",
        "replace (",
        *staging_replacements(release_go_mod, staging),
        ")",
        "",
    ]
    return "\n".join(lines)


def ensure_wrapper(build: Build) -> Path:
    """The committed wrapper module, generated from the release's go.mod when absent."""
    go_mod = build.wrapper / "go.mod"
    if go_mod.exists() and (build.wrapper / "go.sum").exists():
        return build.wrapper
    build.wrapper.mkdir(parents=True, exist_ok=True)
    info = json.loads(go(build, "mod", "download", "-json", f"{MODULE}@{build.version}"))
    if "Error" in info:
        raise LabError(f"{MODULE}@{build.version}: {info['Error']}")
    go_mod.write_text(wrapper_go_mod(build.version, Path(info["GoMod"]).read_text()))
    go(build, "mod", "tidy", timeout=1800)
    return build.wrapper


def ldflags(build: Build) -> str:
    """-X flags stamping the real version into every binary (else v0.0.0-master)."""
    major, minor, _ = build.plain.split(".")
    values = {
        "gitVersion": build.version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": release_date(build),
    }
    flags = ["-s", "-w"]
    for package in VERSION_PACKAGES:
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def release_date(build: Build) -> str:
    """The release's publication time from the module proxy's .info (reproducible builds)."""
    info = build.go_dir / "mod" / "cache" / "download" / MODULE / "@v" / f"{build.version}.info"
    if not info.exists():
        go(build, "mod", "download", f"{MODULE}@{build.version}")
    return json.loads(info.read_text())["Time"]


def build_digest(build: Build) -> str:
    """What the outputs depend on: the wrapper module, the flags and the Go version."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((build.wrapper / name).read_bytes())
    digest.update(ldflags(build).encode())
    digest.update(sh(["go", "version"]).stdout.encode())
    return digest.hexdigest()[:16]


def ensure_binaries(build: Build) -> tuple[Path, float]:
    """The six binaries for the version, built in one `go build` unless already built."""
    started, cpu = time.monotonic(), _children_cpu()
    ensure_wrapper(build)
    stamp = build.out_dir / ".built"
    digest = build_digest(build)
    if stamp.exists() and stamp.read_text() == digest:
        return build.bin_dir, 0.0
    building = build.out_dir / "bin.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    packages = [f"{MODULE}/{package}" for package in COMMANDS.values()]
    go(
        build,
        "build",
        "-trimpath",
        "-ldflags",
        ldflags(build),
        "-o",
        str(building) + "/",
        *packages,
        timeout=3 * 3600,
    )
    shutil.rmtree(build.bin_dir, ignore_errors=True)
    building.rename(build.bin_dir)  # complete or absent, never half
    seconds = time.monotonic() - started
    record = {"version": build.version, "wall_s": round(seconds, 1), "cpu_s": _children_cpu() - cpu}
    record["go"] = sh(["go", "version"]).stdout.strip()
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    (build.out_dir / "build.json").write_text(json.dumps(record, indent=1) + "\n")
    stamp.write_text(digest)
    return build.bin_dir, seconds


def _children_cpu() -> float:
    """User + system CPU seconds of finished child processes (the go command and its tools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(usage.ru_utime + usage.ru_stime, 1)


def control(package: str, version: str, description: str) -> str:
    return (
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        f"Maintainer: kubenorn lab <kubenorn@localhost>\nSection: admin\nPriority: optional\n"
        f"Description: {description}\n"
        f" Built by the kubenorn lab with the go command from {MODULE}.\n"
    )


def package_debs(build: Build) -> list[Path]:
    """One .deb per binary: /usr/bin/NAME, package version X.Y.Z-0kubenorn1."""
    build.deb_dir.mkdir(parents=True, exist_ok=True)
    version = f"{build.plain}-0kubenorn1"
    debs = []
    with tempfile.TemporaryDirectory() as scratch:
        for binary in COMMANDS:
            package = binary
            deb = build.deb_dir / f"{package}_{version}_amd64.deb"
            source = build.bin_dir / binary
            if deb.exists() and deb.stat().st_mtime >= source.stat().st_mtime:
                debs.append(deb)
                continue
            root = Path(scratch) / package
            (root / "usr" / "bin").mkdir(parents=True)
            shutil.copy2(source, root / "usr" / "bin" / binary)
            (root / "DEBIAN").mkdir()
            (root / "DEBIAN" / "control").write_text(
                control(package, version, f"Kubernetes {binary} {build.version}")
            )
            # Fast compression: the debs only travel over the bridge.
            argv = ["dpkg-deb", "-Zgzip", "-z1", "--root-owner-group", "--build"]
            sh([*argv, str(root), str(deb)], timeout=600)
            debs.append(deb)
    return debs


def is_built(version: str, state_dir: Path) -> bool:
    """Whether `version`'s six binaries are built already (its debs follow in seconds)."""
    build = Build(parse_version(version), state_dir)
    stamp = build.out_dir / ".built"
    return stamp.exists() and stamp.read_text() == build_digest(build)


def ensure_version(version: str, state_dir: Path) -> list[Path]:
    """Build (or reuse) one version and package it; prints what it did and how long it took."""
    build = Build(parse_version(version), state_dir)
    build.out_dir.mkdir(parents=True, exist_ok=True)
    with (build.out_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a version at a time on this machine
        _, seconds = ensure_binaries(build)
    if seconds:
        print(f"kubernetes {build.version}: built six binaries in {seconds:.0f}s", flush=True)
    else:
        print(f"kubernetes {build.version}: binaries cached in {build.bin_dir}", flush=True)
    return package_debs(build)


def main(argv: list[str]) -> int:
    from lab.settings import load_settings

    settings = load_settings()
    try:
        for version in argv or ["v1.37.2"]:
            for deb in ensure_version(version, settings.state_dir):
                print(deb)
    except LabError as error:
        error_message(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
