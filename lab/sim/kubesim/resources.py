"""The API objects the simulator serves, per Kubernetes version, and their discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str
    group: str  # "" for the core group
    namespaced: bool
    since: tuple[int, int] = (1, 0)
    until: tuple[int, int] = (99, 0)  # removed from this version on

    @property
    def group_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


RESOURCES = (
    Resource("nodes", "Node", "", namespaced=False),
    Resource("namespaces", "Namespace", "", namespaced=False),
    Resource("endpoints", "Endpoints", "", namespaced=True),
    Resource("componentstatuses", "ComponentStatus", "", namespaced=False, until=(1, 19)),
    Resource("leases", "Lease", "coordination.k8s.io", namespaced=True, since=(1, 14)),
)
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def served(version: str) -> list[Resource]:
    current = version_tuple(version)
    return [r for r in RESOURCES if r.since <= current < r.until]


def discovery(version: str, path: str) -> dict[str, Any] | None:
    """/api, /apis, /api/v1 and /apis/GROUP/v1 documents, or None for any other path."""
    resources = served(version)
    groups = sorted({r.group for r in resources if r.group})
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in groups
            ],
        }
    group = "" if path == "/api/v1" else path.removeprefix("/apis/").removesuffix("/v1")
    if path != "/api/v1" and (not path.startswith("/apis/") or group not in groups):
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/v1" if group else "v1",
        "resources": [
            {
                "name": r.name,
                "singularName": r.kind.lower(),
                "kind": r.kind,
                "namespaced": r.namespaced,
                "verbs": ["get", "list"]
                if r.name == "componentstatuses"
                else ["create", "get", "list", "update"],
            }
            for r in resources
            if r.group == group
        ],
    }


def find(version: str, group: str, name: str) -> Resource | None:
    return next((r for r in served(version) if r.group == group and r.name == name), None)
