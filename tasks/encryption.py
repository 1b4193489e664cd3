"""Secrets encryption on the controllers: apply a phase of a key rotation, rewrite Secrets.

The order (kubenorn/pki/encryption.py) is decided on the control machine; these tasks do one
step on one controller: write the apiserver's EncryptionConfiguration of the saved phase and
restart it health-gated (run one controller at a time), or rewrite every Secret through the
apiserver so that each is stored again under the key that now writes.
"""

from __future__ import annotations

import posixpath

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.compose import combined
from tasks.kube_units import ensure_component_config, start_components
from tasks.ssh import RemoteError, run

APISERVER = "kube-apiserver"
# The list is read whole before anything is replaced; a Secret changed in between fails that
# replace with a conflict (its resourceVersion moved), and the whole rewrite is tried again.
REWRITE = (
    'list=$(kubectl --kubeconfig "$1" --request-timeout=60s get secrets --all-namespaces -o json)'
    " || exit $?\n"
    'printf "%s" "$list" | kubectl --kubeconfig "$1" --request-timeout=60s replace -f -\n'
)
CONFLICT = "the object has been modified"
NOTHING = "no objects passed to replace"
ATTEMPTS = 3


def apply_encryption_phase(task: Task, *, cluster: Cluster, dry_run: bool | None = None) -> Result:
    """Ensure this controller's apiserver runs with the saved phase's keys: its configuration
    written (a change owes a restart), then restarted if owed and healthy before returning."""
    steps = [
        task.run(
            task=ensure_component_config, cluster=cluster, component=APISERVER, dry_run=dry_run
        ),
        task.run(task=start_components, cluster=cluster, components=(APISERVER,), dry_run=dry_run),
    ]
    return combined(task, steps)


def rewrite_secrets(task: Task, *, cluster: Cluster) -> Result:
    """Rewrite every Secret through the apiserver (kubectl replace of what get returned), so
    each is stored again under the writing key; RemoteError when it could not."""
    kubeconfig = posixpath.join(cluster.kubernetes.config_dir, "admin.kubeconfig")
    argv = ["sh", "-c", REWRITE, "sh", kubeconfig]
    for attempt in range(1, ATTEMPTS + 1):
        # The admin kubeconfig is root's and 0600: through sudo, as tasks.kubectl does.
        result = run(task, argv, sudo=True, ok_codes=range(256), timeout=600)
        if NOTHING in result.stderr:
            return Result(host=task.host, changed=False, result="no Secrets to rewrite")
        if result.rc == 0:
            count = sum(line.endswith(" replaced") for line in result.stdout.splitlines())
            return Result(host=task.host, changed=bool(count), result=f"rewrote {count} Secrets")
        if CONFLICT not in result.stderr or attempt == ATTEMPTS:
            lines = result.stderr.strip().splitlines() or [f"exited {result.rc}"]
            raise RemoteError(f"{task.host.name}: rewriting Secrets failed: {lines[-1][-300:]}")
    raise AssertionError("unreachable")
