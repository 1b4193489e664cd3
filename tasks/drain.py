"""Cordon, drain and uncordon a node, with kubectl on a controller (the admin's kubeconfig).

A node kubenorn cordons carries the annotation MARK (why: `upgrade`, `removal`) until kubenorn
uncordons it, so a re-run after an interrupted upgrade, or a `node add` after a removal that
stopped half way, knows which cordons are its own to lift; a node that was cordoned before
(someone's maintenance) is drained and upgraded, and left cordoned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.kubectl import kubectl
from tasks.smoke import LABEL_KEY as SMOKE_LABEL_KEY
from tasks.smoke import LABEL_VALUE as SMOKE_LABEL_VALUE
from tasks.ssh import RemoteError

MARK = "kubenorn.io/cordoned-for"
DRAIN_TIMEOUT = 300  # seconds `kubectl drain` may take to evict a node's pods


@dataclass(frozen=True)
class NodeState:
    """Whether a node is cordoned, and whether kubenorn cordoned it."""

    cordoned: bool
    marked: bool


def node_state(task: Task, cluster: Cluster, node: str) -> NodeState:
    """`node`'s state as this controller's apiserver has it."""
    found = kubectl(task, cluster, ["get", "node", node, "-o", "json"], timeout=30)
    obj = json.loads(found.stdout)
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return NodeState(bool(obj.get("spec", {}).get("unschedulable")), MARK in annotations)


def gather_node_marks(task: Task, *, cluster: Cluster) -> Result:
    """Each registered node's cordon mark: "upgrade" on one an earlier upgrade cordoned and did
    not uncordon, another on one a removal that stopped half way cordoned (its pods must not
    come back), None on the others. (Reads only.)"""
    found = kubectl(task, cluster, ["get", "nodes", "-o", "json"], timeout=30)
    marks = {
        item["metadata"]["name"]: (item["metadata"].get("annotations") or {}).get(MARK)
        for item in json.loads(found.stdout).get("items", [])
    }
    return Result(host=task.host, result=marks)


def cordon_node(task: Task, *, cluster: Cluster, node: str, dry_run: bool | None = None) -> Result:
    """Ensure `node` is cordoned; marked as the upgrade's unless it was cordoned already."""
    state = node_state(task, cluster, node)
    if state.cordoned:
        why = "cordoned by the upgrade" if state.marked else "already cordoned: stays so"
        return Result(host=task.host, changed=False, result=f"{node} {why}")
    diff = f"cordon {node}\n"
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would {diff}")
    marked_cordon(task, cluster, node, "upgrade")
    return Result(host=task.host, changed=True, diff=diff)


def marked_cordon(task: Task, cluster: Cluster, node: str, why: str) -> None:
    """Cordon `node` with kubenorn's MARK saying `why`. The mark first: a run stopped between
    the two leaves a mark on a schedulable node, which an uncordon lifts harmlessly."""
    kubectl(task, cluster, ["annotate", "--overwrite", "node", node, f"{MARK}={why}"])
    kubectl(task, cluster, ["cordon", node])


def drain_arguments(node: str, timeout: int) -> list[str]:
    """`kubectl drain`'s arguments: DaemonSets' pods stay (their controller ignores a cordon),
    emptyDir data goes with its pod, PodDisruptionBudgets are respected. verify's smoke pods
    are left out: bare pods, which drain refuses without --force, in a namespace verify has
    deleted already (its pods may still be terminating)."""
    return [
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--pod-selector={SMOKE_LABEL_KEY}!={SMOKE_LABEL_VALUE}",
        f"--timeout={timeout}s",
    ]


def drain_node(
    task: Task,
    *,
    cluster: Cluster,
    node: str,
    timeout: int = DRAIN_TIMEOUT,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `node`'s pods are evicted (PDBs respected, DaemonSets left); changed if any was."""
    diff = f"drain {node}\n"
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would {diff}")
    args = drain_arguments(node, timeout)
    drained = kubectl(task, cluster, args, ok_codes=range(256), timeout=timeout + 30)
    if drained.rc != 0:
        said = (drained.stderr.strip() or drained.stdout.strip()).splitlines()
        raise RemoteError(f"drain {node} failed: {said[-1] if said else drained.rc}")
    evicted = "evicting pod" in drained.stdout + drained.stderr
    return Result(host=task.host, changed=evicted, diff=diff if evicted else "")


def uncordon_node(
    task: Task, *, cluster: Cluster, node: str, dry_run: bool | None = None
) -> Result:
    """Ensure `node` is schedulable again if kubenorn cordoned it; and its mark gone."""
    state = node_state(task, cluster, node)
    if not state.marked:
        why = "cordoned by someone else: left so" if state.cordoned else "schedulable"
        return Result(host=task.host, changed=False, result=f"{node} {why}")
    diff = f"uncordon {node}\n"
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would {diff}")
    kubectl(task, cluster, ["uncordon", node])
    kubectl(task, cluster, ["annotate", "node", node, f"{MARK}-"])
    return Result(host=task.host, changed=True, diff=diff)
