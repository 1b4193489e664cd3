"""Cluster add-ons applied through the apiserver: the cluster DNS (CoreDNS).

Applied from one controller with kubectl, the manifest on stdin (nothing left on the host);
`kubectl diff` is the dry run, and apply's own words ("unchanged") say whether anything changed.
"""

from __future__ import annotations

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.kubectl import kubectl
from tasks.ssh import RemoteError
from tasks.templates import render

ROLLOUT_TIMEOUT = "180s"


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


def ensure_dns_addon(task: Task, *, cluster: Cluster, dry_run: bool | None = None) -> Result:
    """Ensure the cluster DNS add-on matches the inventory and its pods are available."""
    manifest = dns_manifest(task, cluster).encode()
    if task.is_dry_run(dry_run):
        return dry_run_diff(task, cluster, manifest)
    applied = kubectl(task, cluster, ["apply", "-f", "-"], stdin=manifest).stdout
    changed = changed_objects(applied)
    rollout = ["--namespace", "kube-system", "rollout", "status", "deployment/coredns"]
    kubectl(task, cluster, [*rollout, f"--timeout={ROLLOUT_TIMEOUT}"], timeout=240)
    return Result(host=task.host, changed=bool(changed), diff="".join(f"{c}\n" for c in changed))


def dry_run_diff(task: Task, cluster: Cluster, manifest: bytes) -> Result:
    """`kubectl diff`: exit 0 the same, 1 differences (shown), else it could not compare."""
    result = kubectl(task, cluster, ["diff", "-f", "-"], stdin=manifest, ok_codes=range(256))
    if result.rc == 0:
        return Result(host=task.host, changed=False)
    if result.rc == 1:
        return Result(host=task.host, changed=True, diff=result.stdout)
    why = (result.stderr.strip().splitlines() or [f"kubectl diff exited {result.rc}"])[-1]
    return Result(host=task.host, changed=True, diff=f"would apply the DNS add-on ({why})\n")
