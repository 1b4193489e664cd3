"""kubectl on a controller, as the cluster admin (its admin kubeconfig is root's: sudo)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from nornir.core.task import Task

from kubenorn.cluster import Cluster
from tasks.ssh import CommandResult, run


def kubectl(
    task: Task,
    cluster: Cluster,
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    timeout: float = 60.0,
) -> CommandResult:
    """`kubectl ARGS` through this controller's admin kubeconfig."""
    kubeconfig = posixpath.join(cluster.kubernetes.config_dir, "admin.kubeconfig")
    argv = ["kubectl", "--kubeconfig", kubeconfig, *args]
    return run(task, argv, sudo=True, stdin=stdin, ok_codes=ok_codes, timeout=timeout)
