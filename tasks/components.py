"""Component tasks: each host's part of a deploy, composed from the resource tasks."""

from __future__ import annotations

from nornir.core.inventory import Host
from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from kubenorn.profiles import CONTROL_PLANE, WORKER, unit_of
from tasks import etcd
from tasks.etcd_membership import ensure_member_started
from tasks.hosts_file import ensure_hosts_file
from tasks.kube_units import ensure_component_config
from tasks.load_balancer import UNIT as HAPROXY_UNIT
from tasks.load_balancer import haproxy_config, load_balanced
from tasks.packages import ensure_packages
from tasks.runtime import ensure_cni_config, runtime_unit
from tasks.systemd import ensure_unit_config


def role_packages(host: Host) -> list[str]:
    """The packages a host's roles need, from inventory data, each once, in order."""
    wanted: list[str] = []
    roles = {group.name for group in host.groups}
    if "etcd" in roles:
        wanted += host["etcd"]["packages"]
    if "controllers" in roles:
        wanted += host["kubernetes"]["packages"]["controller"]
    if "nodes" in roles:
        wanted += host["kubernetes"]["packages"]["node"]
    return list(dict.fromkeys(wanted))


# The Kubernetes packages are named after their component (the lab builds them so): installing
# or replacing one owes that component's unit a restart.
COMPONENT_PACKAGES = {component: unit_of(component) for component in (*CONTROL_PLANE, *WORKER)}


def ensure_role_packages(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure the packages of this host's roles are installed (a component's new package owes
    its unit a restart)."""
    result = task.run(
        task=ensure_packages,
        packages=role_packages(task.host),
        restarts=COMPONENT_PACKAGES,
        dry_run=dry_run,
    )
    return Result(host=task.host, changed=result.changed, diff=result[0].diff)


def ensure_etcd_member(
    task: Task,
    *,
    cluster: Cluster,
    certificates_changed: frozenset[str],
    formed: bool,
    dry_run: bool | None,
) -> Result:
    """Ensure this member's etcd configuration; owe a restart if it or its certificates changed."""
    member = etcd.member_of(cluster, task.host.name)
    config = etcd.etcd_config(cluster, member, task.host["etcd"], formed=formed)
    result = task.run(
        task=etcd.ensure_etcd_config,
        config=config,
        restart=task.host.name in certificates_changed,
        dry_run=dry_run,
    )
    return Result(host=task.host, changed=result.changed, diff=result[0].diff)


def start_etcd(
    task: Task, *, cluster: Cluster, healthy: frozenset[str], dry_run: bool | None
) -> Result:
    """Start etcd when no member answers yet (all together: founding the cluster); otherwise
    ensure this member runs in the cluster, joining it if it must."""
    if not healthy:
        return task.run(task=etcd.start_unformed, dry_run=dry_run)[0]
    started = task.run(
        task=ensure_member_started, cluster=cluster, healthy=healthy, dry_run=dry_run
    )
    return started[0]


def restart_etcd(task: Task, *, cluster: Cluster, force: bool, dry_run: bool | None) -> Result:
    """Restart this member if it owes one, health-gated (run one member at a time)."""
    rollout = etcd.rollout_of(task, cluster, force=force)
    return task.run(task=etcd.restart_member, rollout=rollout, dry_run=dry_run)[0]


def wait_etcd(task: Task, *, cluster: Cluster, dry_run: bool | None) -> Result:
    """Wait for this member to be healthy with one agreed leader."""
    if not task.is_dry_run(dry_run):
        etcd.wait_healthy(task, etcd.rollout_of(task, cluster))
    return Result(host=task.host, changed=False)


def drifted_paths(diff: str) -> list[str]:
    """The files a diff touches: `---`/`+++` headers (removals too), or `path: mode ...` lines."""
    lines = diff.splitlines()
    paths = [
        before[4:].strip() if after[4:].strip() == "/dev/null" else after[4:].strip()
        for before, after in zip(lines, lines[1:], strict=False)
        if before.startswith("--- ") and after.startswith("+++ ")
    ]
    paths += [
        line.split(":", 1)[0]
        for line in lines
        if ": mode " in line or ": owner " in line or ": group " in line
    ]
    return list(dict.fromkeys(paths))


def check_drift(task: Task, *, cluster: Cluster) -> Result:
    """Compare what a deploy would write with what the host holds; write nothing."""
    diffs = [task.run(task=ensure_hosts_file, entries=cluster.host_entries(), dry_run=True)]
    if etcd.is_member(cluster, task.host.name):
        diffs.append(
            task.run(
                task=ensure_etcd_member,
                cluster=cluster,
                certificates_changed=frozenset(),
                formed=True,  # verify judges a running cluster
                dry_run=True,
            )
        )
    if "nodes" in {group.name for group in task.host.groups}:
        runtime = runtime_unit(task)
        diffs.append(
            task.run(
                task=ensure_unit_config,
                unit=runtime.unit,
                files=runtime.files,
                dropin=runtime.dropin,
                dry_run=True,
            )
        )
        diffs.append(task.run(task=ensure_cni_config, dry_run=True))
    for role, components in (("controllers", CONTROL_PLANE), ("nodes", WORKER)):
        if cluster.host(task.host.name).has_role(role):
            diffs += [
                task.run(task=ensure_component_config, cluster=cluster, component=c, dry_run=True)
                for c in components
            ]
    if load_balanced(task.host):
        diffs.append(
            task.run(
                task=ensure_unit_config,
                unit=HAPROXY_UNIT,
                files=[haproxy_config(task, cluster)],
                dry_run=True,
            )
        )
    paths = [p for result in diffs for p in drifted_paths(result[0].diff or "")]
    findings = [
        Finding("drift", task.host.name, "WARNING", f"{path} differs from what deploy would write")
        for path in paths
    ] or [Finding("drift", task.host.name, "OK", "configuration as deploy would write it")]
    return Result(
        host=task.host, changed=False, result=findings, record_data=[f.as_dict() for f in findings]
    )
