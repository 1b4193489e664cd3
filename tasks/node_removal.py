"""A node leaving the cluster, through the API: cordoned, drained, its Node object deleted.

Run on one controller, as the cluster admin (tasks.kubectl). `kubectl drain` evicts pods
through the Eviction API, so PodDisruptionBudgets hold; a drain that cannot finish within its
timeout leaves the node cordoned and deletes nothing.
"""

from __future__ import annotations

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.drain import drain_arguments, marked_cordon, node_state
from tasks.kubectl import kubectl
from tasks.ssh import CommandError, RemoteError

KUBECTL_GRACE = 30.0  # seconds beyond the drain's own timeout before the command is given up


def node_registered(task: Task, cluster: Cluster, node: str) -> bool:
    """Whether the API holds a Node named `node`."""
    found = kubectl(task, cluster, ["get", "node", node, "-o", "name", "--ignore-not-found"])
    return bool(found.stdout.strip())


def ensure_node_removed(
    task: Task, *, cluster: Cluster, node: str, timeout: int, dry_run: bool | None = None
) -> Result:
    """Ensure the API holds no Node `node`: cordon, drain (at most `timeout` seconds), delete."""
    if not node_registered(task, cluster, node):
        return Result(host=task.host, changed=False, result=f"no Node {node} in the API")
    would = "would " if task.is_dry_run(dry_run) else ""
    diff = f"{would}cordon {node}\n{would}drain {node}\n{would}delete node {node}\n"
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=diff)
    if not node_state(task, cluster, node).cordoned:  # someone's own cordon stays theirs
        marked_cordon(task, cluster, node, "removal")  # a `node add` of it again lifts it
    try:
        kubectl(task, cluster, drain_arguments(node, timeout), timeout=timeout + KUBECTL_GRACE)
    except CommandError as error:
        raise RemoteError(
            f"{error}\n{node} stays cordoned and in the API: nothing deleted. Re-run once its "
            "pods can leave (a PodDisruptionBudget allows it, or with a longer --timeout)"
        ) from None
    kubectl(task, cluster, ["delete", "node", node])
    return Result(host=task.host, changed=True, diff=diff)
