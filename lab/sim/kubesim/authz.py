"""Who is asking (from the client certificate) and whether they may, per --authorization-mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Node+RBAC as a fixed policy: the identities kubenorn issues, and what each may do.
RBAC_GROUPS = {"system:masters": "*"}
RBAC_USERS = {
    "system:kube-scheduler": "*",
    "system:kube-controller-manager": "*",
    "system:kube-proxy": {"nodes", "endpoints"},
}
NODE_RESOURCES = {"nodes", "leases"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @classmethod
    def from_peer_certificate(cls, certificate: dict | None) -> User | None:  # type: ignore[type-arg]
        """CN is the user, each O a group (as kube-apiserver's x509 authenticator reads them)."""
        if not certificate:
            return None
        fields = [pair for rdn in certificate.get("subject", ()) for pair in rdn]
        names = [value for key, value in fields if key == "commonName"]
        groups = tuple(value for key, value in fields if key == "organizationName")
        return cls(names[0], groups) if names else None


class Authorizer:
    """AlwaysAllow, ABAC (a JSON-lines policy file) or Node,RBAC (a fixed policy)."""

    def __init__(self, modes: str, policy_file: str | None) -> None:
        self.modes = [m.strip() for m in modes.split(",") if m.strip()] or ["AlwaysAllow"]
        self.policies = []
        if "ABAC" in self.modes and policy_file:
            lines = Path(policy_file).read_text().splitlines()
            self.policies = [json.loads(line)["spec"] for line in lines if line.strip()]

    def allows(self, user: User, resource: str) -> bool:
        return any(self._mode_allows(mode, user, resource) for mode in self.modes)

    def _mode_allows(self, mode: str, user: User, resource: str) -> bool:
        if mode == "AlwaysAllow":
            return True
        if mode == "ABAC":
            return any(_abac_match(spec, user, resource) for spec in self.policies)
        if mode == "Node":
            return "system:nodes" in user.groups and resource in NODE_RESOURCES
        if mode == "RBAC":
            grants = [RBAC_GROUPS.get(g) for g in user.groups] + [RBAC_USERS.get(user.name)]
            return any(g == "*" or (g and resource in g) for g in grants)
        return False


def _abac_match(spec: dict, user: User, resource: str) -> bool:  # type: ignore[type-arg]
    who = spec.get("user") in ("*", user.name) or spec.get("group") in ("*", *user.groups)
    return bool(who) and spec.get("resource", "*") in ("*", resource)
