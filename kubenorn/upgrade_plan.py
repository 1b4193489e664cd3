"""The upgrade's plan, from what each host runs: pure, no host (runbooks/upgrade.py runs it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nornir.core.task import AggregatedResult

from kubenorn import skew
from kubenorn.cluster import Cluster
from kubenorn.profiles import CONTROL_PLANE, WORKER

# The control plane's phases, in the skew policy's order, each one controller at a time.
PHASES = (("apiservers", CONTROL_PLANE[:1]), ("schedulers", CONTROL_PLANE[1:]))


def running(results: AggregatedResult) -> tuple[dict[str, dict[str, skew.Version]], list[str]]:
    """host -> component -> the version it runs; and what could not be read as a version."""
    versions: dict[str, dict[str, skew.Version]] = {}
    unreadable = []
    for host, result in sorted(results.items()):
        for component, said in result[0].result.items():
            version = None if said is None else skew.parse_version(said)
            if version is not None:
                versions.setdefault(host, {})[component] = version
            elif said is not None:
                unreadable.append(f"{host} {component}: no version in its --version: {said!r}")
    return versions, unreadable


def nodes_to_upgrade(
    nodes: list[str], versions: skew.Versions, target: str, marked: list[str]
) -> list[str]:
    """The nodes with a worker component not at `target`, or left cordoned by an upgrade."""
    wanted = skew.parse_version(target)
    return [
        node
        for node in nodes
        if node in marked or any(versions.get(node, {}).get(c) != wanted for c in WORKER)
    ]


def plan(
    cluster: Cluster,
    versions: skew.Versions,
    controllers: list[str],
    nodes: list[str],
    todo: list[str],
    destination: Path | None,
) -> list[str]:
    """The upgrade, step by step, as lines for people."""
    target = cluster.kubernetes.version
    wanted = skew.parse_version(target)

    def state(host: str, components: Sequence[str]) -> str:
        found = versions.get(host, {})
        said = [f"{c} {skew.show(found[c]) if c in found else 'not running'}" for c in components]
        restart = any(found.get(c) != wanted for c in components)
        return f"{', '.join(said)} -> {target}" + ("" if restart else " (already: no restart)")

    lines = [f"upgrade {cluster.name} to Kubernetes {target}:"]
    lines.append(
        f"  etcd snapshot into {destination or 'INVENTORY/.backups (not under --dry-run)'}"
    )
    number = 0
    for phase, components in PHASES:
        for host in controllers:
            number += 1
            lines.append(f"  {number}. {phase}: {host} {state(host, components)}, health-gated")
    for node in todo:
        number += 1
        lines.append(
            f"  {number}. node {node}: cordon, drain, {state(node, WORKER)}, Ready, uncordon"
        )
    if done := [node for node in nodes if node not in todo]:
        lines.append(f"  nodes already at {target}, not drained: {', '.join(done)}")
    return lines
