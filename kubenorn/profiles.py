"""Kubernetes version profiles (templates/kubernetes/profiles.yaml): flags, health, locks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROFILES_FILE = Path(__file__).resolve().parent.parent / "templates/kubernetes/profiles.yaml"
CONTROL_PLANE = ("kube-apiserver", "kube-scheduler", "kube-controller-manager")
WORKER = ("kubelet", "kube-proxy")


def unit_of(component: str) -> str:
    """The systemd unit kubenorn writes for a Kubernetes component."""
    return f"{component}.service"


class ProfileError(ValueError):
    """No profile holds the inventory's Kubernetes version."""


def version_tuple(version: str) -> tuple[int, ...]:
    """(1, 30, 0) for "1.30.0"; ValueError for anything else."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class Profile:
    """What one range of Kubernetes releases needs: flags (as templates), runtime, health."""

    name: str
    first: tuple[int, ...]
    below: tuple[int, ...]
    runtimes: tuple[str, ...]
    apiserver_health: tuple[str, ...]
    componentstatuses: bool
    leader_lock: str  # "leases" or "endpoints"
    health: dict[str, str]
    extra_files: dict[str, tuple[str, ...]]
    # Each node's inventory pod_cidr is its pod range (kubelet podCIDR, CNI configuration).
    node_pod_cidr: bool = False
    # The kubelet refuses cgroup v1 unless told otherwise (failCgroupV1: false).
    cgroup_v1_deprecated: bool = False
    # Where the kubelet serves its API, for verify's anonymous probe; None: not probed.
    kubelet_api_port: int | None = None
    # kube-apiserver's EncryptionConfiguration file (in config_dir); None: no encryption at rest.
    encryption_config: str | None = None
    # The CIS Benchmark table verify judges against (templates/security/NAME.yaml); None: none.
    cis_benchmark: str | None = None

    def holds(self, version: str) -> bool:
        return self.first <= version_tuple(version) < self.below

    def template(self, file: str) -> str:
        """The template path (relative to templates/) of one of this profile's files."""
        return f"kubernetes/{self.name}/{file}.j2"

    def leader_path(self, component: str) -> str:
        """The API path of the object `component`'s leader election writes to."""
        if self.leader_lock == "leases":
            return f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}"
        return f"/api/v1/namespaces/kube-system/endpoints/{component}"


def _profile(raw: dict[str, Any]) -> Profile:
    return Profile(
        name=str(raw["name"]),
        first=version_tuple(str(raw["versions"]["from"])),
        below=version_tuple(str(raw["versions"]["below"])),
        runtimes=tuple(raw["runtimes"]),
        apiserver_health=tuple(raw["apiserver_health"]),
        componentstatuses=bool(raw["componentstatuses"]),
        leader_lock=str(raw["leader_lock"]),
        health=dict(raw["health"]),
        extra_files={c: tuple(files) for c, files in (raw.get("extra_files") or {}).items()},
        node_pod_cidr=bool(raw.get("node_pod_cidr", False)),
        cgroup_v1_deprecated=bool(raw.get("cgroup_v1_deprecated", False)),
        kubelet_api_port=raw.get("kubelet_api_port"),
        encryption_config=raw.get("encryption_config"),
        cis_benchmark=raw.get("cis_benchmark"),
    )


@cache
def all_profiles(path: Path = PROFILES_FILE) -> tuple[Profile, ...]:
    return tuple(_profile(raw) for raw in yaml.safe_load(path.read_text())["profiles"])


def profile_for(version: str) -> Profile:
    """The profile whose range holds `version`; ProfileError naming the ranges otherwise."""
    try:
        found = [p for p in all_profiles() if p.holds(version)]
    except ValueError:
        found = []
    if found:
        return found[0]
    ranges = ", ".join(
        f"{p.name} (>= {'.'.join(map(str, p.first))}, < {'.'.join(map(str, p.below))})"
        for p in all_profiles()
    )
    raise ProfileError(f"Kubernetes {version} has no profile; profiles: {ranges}")
