"""Cluster add-ons applied through the apiserver: the cluster DNS (CoreDNS).

Applied from one controller with kubectl, the manifest on stdin (nothing left on the host);
`kubectl diff` is the dry run, and apply's own words ("unchanged") say whether anything changed.
"""

from __future__ import annotations

import posixpath
import time

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.kubectl import kubectl
from tasks.ssh import RemoteError, run
from tasks.templates import render

ROLLOUT_TIMEOUT = "180s"
KUBE_SYSTEM = ["--namespace", "kube-system"]


def dns_manifest(task: Task, cluster: Cluster) -> str:
    dns = cluster.kubernetes.dns
    if dns is None:
        raise RemoteError("kubernetes.dns is not set")
    return render(
        task,
        "addons/coredns.yaml.j2",
        image=dns.image,
        replicas=dns.replicas,
        upstream=list(dns.upstream),
        domain=cluster.domain,
        dns_service_ip=str(cluster.dns_service_ip),
    )


def changed_objects(apply_output: str) -> list[str]:
    """The objects `kubectl apply` created or changed ("x/y created", "x/y configured")."""
    lines = [line.strip() for line in apply_output.splitlines() if line.strip()]
    return [line for line in lines if not line.endswith(" unchanged")]


def ensure_dns_addon(
    task: Task, *, cluster: Cluster, trust_changed: bool = False, dry_run: bool | None = None
) -> Result:
    """Ensure the cluster DNS add-on matches the inventory and its pods are available, on
    pods that trust the cluster CA and hold tokens of the service-account key now deployed."""
    manifest = dns_manifest(task, cluster).encode()
    restart = "restart deployment/coredns: the cluster CA or service-account key changed\n"
    if task.is_dry_run(dry_run):
        result = dry_run_diff(task, cluster, manifest)
        if trust_changed:
            result.changed, result.diff = True, (result.diff or "") + "would " + restart
        return result
    applied = kubectl(task, cluster, ["apply", "-f", "-"], stdin=manifest).stdout
    changed = changed_objects(applied)
    if trust_changed:
        wait_for_root_ca(task, cluster)
        changed.append(restart.strip())
    roll_out(task, cluster, restart=trust_changed)
    return Result(host=task.host, changed=bool(changed), diff="".join(f"{c}\n" for c in changed))


def restart_dns_addon(
    task: Task, *, cluster: Cluster, why: str, dry_run: bool | None = None
) -> Result:
    """Ensure the DNS add-on's pods are new ones, started after this call, and available."""
    diff = f"{'would ' if task.is_dry_run(dry_run) else ''}restart deployment/coredns: {why}\n"
    if not task.is_dry_run(dry_run):
        roll_out(task, cluster, restart=True)
    return Result(host=task.host, changed=True, diff=diff)


def roll_out(task: Task, cluster: Cluster, *, restart: bool) -> None:
    """Wait until CoreDNS's rollout is complete, after restarting its pods if `restart`."""
    if restart:
        kubectl(task, cluster, [*KUBE_SYSTEM, "rollout", "restart", "deployment/coredns"])
    rollout = [*KUBE_SYSTEM, "rollout", "status", "deployment/coredns"]
    kubectl(task, cluster, [*rollout, f"--timeout={ROLLOUT_TIMEOUT}"], timeout=240)


def wait_for_root_ca(task: Task, cluster: Cluster, timeout: float = 60.0) -> None:
    """Until the controller-manager has published the deployed CA as kube-system's
    kube-root-ca.crt (what new pods mount): restarted before that, they would trust the old."""
    ca_file = posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")
    deployed = run(task, ["cat", ca_file], sudo=True).stdout.strip()
    path = ["get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]
    deadline = time.monotonic() + timeout
    while kubectl(task, cluster, [*KUBE_SYSTEM, *path]).stdout.strip() != deployed:
        if time.monotonic() > deadline:
            raise RemoteError(f"{task.host.name}: kube-root-ca.crt still holds another CA")
        time.sleep(1.0)


def dry_run_diff(task: Task, cluster: Cluster, manifest: bytes) -> Result:
    """`kubectl diff`: exit 0 the same, 1 differences (shown), else it could not compare."""
    result = kubectl(task, cluster, ["diff", "-f", "-"], stdin=manifest, ok_codes=range(256))
    if result.rc == 0:
        return Result(host=task.host, changed=False)
    if result.rc == 1:
        return Result(host=task.host, changed=True, diff=result.stdout)
    why = (result.stderr.strip().splitlines() or [f"kubectl diff exited {result.rc}"])[-1]
    return Result(host=task.host, changed=True, diff=f"would apply the DNS add-on ({why})\n")
