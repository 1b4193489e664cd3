"""The five Kubernetes components as systemd services: flags, unit, start, health on the host.

Each component reads its flags from one environment file rendered from its version profile's
template (templates/kubernetes/<profile>/<component>.env.j2), and any configuration file its
profile gives it (kubernetes.config_dir/<file>, from <profile>/<file>.j2); the unit is
kubenorn's own, since the packages ship binaries only.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence
from typing import Any

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from kubenorn.pki import encryption
from kubenorn.pki.store import Store
from kubenorn.profiles import CONTROL_PLANE, unit_of
from tasks import host_state
from tasks.compose import combined
from tasks.facts import facts_of
from tasks.files import ensure_directory
from tasks.http_checks import http_status, http_statuses
from tasks.load_balancer import drain_seconds
from tasks.runtime import UNITS as RUNTIME_UNITS
from tasks.runtime import runtime_settings
from tasks.ssh import RemoteError, run
from tasks.systemd import (
    ConfigFile,
    ensure_service,
    ensure_unit_config,
    owe_restarts,
    unit_states,
)
from tasks.templates import render

# kubenorn sets no --root-dir: the kubelet keeps its state (pods' volumes, its checkpoints)
# in its default directory; with the systemd cgroup driver its pods run under this slice.
KUBELET_ROOT_DIR = "/var/lib/kubelet"
PODS_SLICE = "kubepods.slice"
HEALTH_TIMEOUT = 90.0  # seconds a (re)started component has to answer its health check
HEALTH_POLL = 0.5


def environment_file(cluster: Cluster, component: str) -> str:
    return posixpath.join(cluster.kubernetes.config_dir, f"{component}.env")


def template_context(
    cluster: Cluster,
    host_name: str,
    kubernetes: dict[str, Any],
    runtime: dict[str, Any],
    *,
    drain_s: float,
) -> dict[str, Any]:
    """What the profile templates may use: the cluster, the host, its inventory data, (on a
    node) its runtime (`runtime_context`), and how long the load balancers take to drop an
    apiserver that stops being ready (`load_balancer.drain_seconds`)."""
    host = cluster.host(host_name)
    settings = cluster.kubernetes
    return {
        "host_name": host.name,  # `host` and `name` are taken by nornir
        "address": str(host.address),
        "pod_cidr": None if host.pod_cidr is None else str(host.pod_cidr),
        "cluster_name": cluster.name,
        "domain": cluster.domain,
        "config_dir": settings.config_dir,
        "cert_dir": settings.cert_dir,
        "etcd_servers": ",".join(cluster.etcd.client_urls),
        "service_cidr": str(cluster.service_cidr),
        "cluster_dns": str(cluster.dns_service_ip),
        "cluster_cidr": None if cluster.cluster_cidr is None else str(cluster.cluster_cidr),
        "apiserver_url": cluster.apiserver.url,
        "apiserver_port": cluster.apiserver.port,
        "controller_count": len(cluster.controllers),
        "kube_reserved": dict(settings.kube_reserved),
        "conntrack_max_per_core": settings.conntrack_max_per_core,
        "security": settings.security,
        "kubernetes": kubernetes,
        "apiserver_drain_s": drain_s,
        **runtime,
    }


def runtime_context(socket: str, cgroup_version: int) -> dict[str, Any]:
    """What the kubelet must share with its node's runtime: the socket and the cgroup driver.

    The runtime uses systemd's cgroup driver on cgroup v2 (containerd as kubenorn configures
    it, docker by default since 20.10); the kubelet must use the same one.
    """
    return {
        "runtime_socket": socket,
        "cgroup_driver": "systemd" if cgroup_version == 2 else "cgroupfs",
        "cgroup_v1": cgroup_version == 1,
    }


def node_runtime(task: Task) -> dict[str, Any]:
    """This node's `runtime_context` (nothing on a host that is not a node)."""
    if not cluster_role(task, "nodes"):
        return {}
    kind, settings = runtime_settings(task)
    return runtime_context(settings[kind]["socket"], facts_of(task).cgroup_version)


CGROUP_V1 = "cgroup v1 is deprecated; kubelet 1.35+ refuses it unless failCgroupV1 is false"


def cgroup_warnings(cluster: Cluster, cgroup_versions: dict[str, int]) -> list[Finding]:
    """A WARNING for each node on cgroup v1 (host -> facts' cgroup version) where the profile's
    kubelet refuses it by default: kubenorn sets failCgroupV1: false there, which works for now."""
    if not cluster.kubernetes.profile.cgroup_v1_deprecated:
        return []
    return [
        Finding(
            "kubelet.cgroup",
            name,
            "WARNING",
            f"{CGROUP_V1}: kubenorn sets it false on this node; move the host to cgroup v2",
        )
        for name, version in sorted(cgroup_versions.items())
        if version == 1 and cluster.host(name).has_role("nodes")
    ]


def cluster_role(task: Task, role: str) -> bool:
    return role in {group.name for group in task.host.groups}


def ordered_after(task: Task, cluster: Cluster, component: str) -> list[str]:
    """The units `component` starts after on this host."""
    if component == "kube-apiserver" and cluster.host(task.host.name).has_role("etcd"):
        return ["etcd.service"]
    if component in CONTROL_PLANE[1:]:
        return [unit_of("kube-apiserver")]
    if component == "kubelet":
        return [RUNTIME_UNITS[runtime_settings(task)[0]]]
    return []


def component_templates(cluster: Cluster, component: str) -> list[tuple[str, str]]:
    """(path on the host, template) of `component`'s environment file and of each extra file
    its profile gives it."""
    profile = cluster.kubernetes.profile
    files = [(environment_file(cluster, component), profile.template(f"{component}.env"))]
    files += [
        (posixpath.join(cluster.kubernetes.config_dir, name), profile.template(name))
        for name in profile.extra_files.get(component, ())
    ]
    return files


# Flags and configuration files: root's alone (CIS 1.1.1-1.1.8, 4.1.1, 4.1.9).
CONFIG_MODE = "0600"
AUDIT_POLICY = "audit-policy.yaml"


def component_files(task: Task, cluster: Cluster, component: str) -> list[ConfigFile]:
    """`component`'s environment file and any extra file its profile gives it, rendered; for
    the apiserver, the Secrets encryption configuration from the PKI state, built in Python
    (a template task's rendered text is its result, kept like any other)."""
    context = template_context(
        cluster,
        task.host.name,
        task.host["kubernetes"],
        node_runtime(task),
        drain_s=drain_seconds(task.host),
    )
    files = [
        ConfigFile(path, render(task, template, **context), mode=CONFIG_MODE)
        for path, template in component_templates(cluster, component)
    ]
    return files + secret_files(cluster, component)


def encryption_config_path(cluster: Cluster) -> str | None:
    """Where the apiserver reads its EncryptionConfiguration; None where its profile has none."""
    name = cluster.kubernetes.profile.encryption_config
    return None if name is None else posixpath.join(cluster.kubernetes.config_dir, name)


def secret_files(cluster: Cluster, component: str) -> list[ConfigFile]:
    """The apiserver's EncryptionConfiguration where its profile encrypts Secrets at rest."""
    path = encryption_config_path(cluster)
    if component != "kube-apiserver" or path is None:
        return []
    state = encryption.required_state(Store(cluster.pki.dir))
    return [ConfigFile(path, encryption.config_text(state), mode="0600", secret=True)]


def component_paths(cluster: Cluster, component: str) -> list[str]:
    """Every file `component_files` writes for `component`, without rendering any."""
    paths = [path for path, _ in component_templates(cluster, component)]
    secret = encryption_config_path(cluster) if component == "kube-apiserver" else None
    return paths + ([secret] if secret else [])


def log_directories(cluster: Cluster, component: str) -> list[str]:
    """Directories `component` writes logs to, made root's alone: the apiserver's audit log."""
    profile = cluster.kubernetes.profile
    if component != "kube-apiserver" or AUDIT_POLICY not in profile.extra_files.get(component, ()):
        return []
    return [posixpath.dirname(cluster.kubernetes.security.audit.log_path)]


def unit_file(task: Task, cluster: Cluster, component: str) -> str:
    return render(
        task,
        "kubernetes/unit.service.j2",
        component=component,
        binary=posixpath.join(task.host["kubernetes"]["bin_dir"], component),
        environment_file=environment_file(cluster, component),
        after=ordered_after(task, cluster, component),
    )


def ensure_component_config(
    task: Task,
    *,
    cluster: Cluster,
    component: str,
    restart: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `component`'s flags, extra files and unit; any change (or `restart`: its
    certificates changed) owes it a restart. Its log directories are made first."""
    steps = [
        task.run(task=ensure_directory, path=path, mode="0700", dry_run=dry_run)
        for path in log_directories(cluster, component)
    ]
    result = task.run(
        task=ensure_unit_config,
        unit=unit_of(component),
        files=component_files(task, cluster, component),
        unit_file=unit_file(task, cluster, component),
        unit_mode=CONFIG_MODE,
        restart=restart,
        dry_run=dry_run,
    )
    if not steps:
        return Result(host=task.host, changed=result.changed, diff=result[0].diff)
    return combined(task, [*steps, result])


def ensure_components_config(
    task: Task,
    *,
    cluster: Cluster,
    components: tuple[str, ...],
    certificates_changed: frozenset[str],
    dry_run: bool | None = None,
) -> Result:
    """Ensure each of `components` is configured; new certificates owe each a restart too."""
    restart = task.host.name in certificates_changed
    steps = [
        task.run(
            task=ensure_component_config,
            cluster=cluster,
            component=c,
            restart=restart,
            dry_run=dry_run,
        )
        for c in components
    ]
    return combined(task, steps)


def health_urls(task: Task, cluster: Cluster, component: str) -> list[tuple[str, str | None]]:
    """(URL, CA file or None) that say whether `component` on this host is healthy."""
    profile = cluster.kubernetes.profile
    if component != "kube-apiserver":
        return [(profile.health[component], None)]
    ca_file = posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")
    base = f"https://127.0.0.1:{cluster.apiserver.port}"
    return [(base + path, ca_file) for path in profile.apiserver_health]


def unhealthy(task: Task, cluster: Cluster, component: str) -> list[str]:
    """What is wrong with `component`'s health on this host (empty when healthy)."""
    problems = []
    for url, ca_file in health_urls(task, cluster, component):
        code, body = http_status(task, url, ca_file)
        if code != 200:
            problems.append(f"{url}: {code or 'no answer'} {body.splitlines()[-1] if body else ''}")
    return problems


def unhealthy_each(
    task: Task,
    cluster: Cluster,
    components: Sequence[str],
    extra: Sequence[tuple[str, str | None]] = (),
) -> tuple[dict[str, list[str]], list[tuple[int, str]]]:
    """`unhealthy` for each of `components`, and the answers to the `extra` (URL, CA file)
    checks, all asked in one command."""
    checks = [(c, url, ca) for c in components for url, ca in health_urls(task, cluster, c)]
    answers = http_statuses(task, [*extra, *((url, ca) for _, url, ca in checks)])
    problems: dict[str, list[str]] = {c: [] for c in components}
    for (component, url, _), (code, body) in zip(checks, answers[len(extra) :], strict=True):
        if code != 200:
            last = body.splitlines()[-1] if body else ""
            problems[component].append(f"{url}: {code or 'no answer'} {last}")
    return problems, answers[: len(extra)]


def wait_healthy(task: Task, cluster: Cluster, component: str) -> None:
    """Return once `component` answers healthy here; RemoteError after HEALTH_TIMEOUT."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while problems := unhealthy(task, cluster, component):
        if time.monotonic() > deadline:
            raise RemoteError(
                f"{task.host.name}: {component} not healthy after {HEALTH_TIMEOUT:.0f}s: "
                + "; ".join(problems)
            )
        time.sleep(HEALTH_POLL)


def start_components(
    task: Task, *, cluster: Cluster, components: tuple[str, ...], dry_run: bool | None = None
) -> Result:
    """Ensure each component runs (restarted if it owes one), in order, each healthy first."""
    # One look at every component's health first: while nothing has been restarted, one that
    # answered healthy there is not asked again.
    healthy: set[str] = set()
    if not task.is_dry_run(dry_run):
        problems, _ = unhealthy_each(task, cluster, components)
        healthy = {c for c, bad in problems.items() if not bad}
    steps = []
    for component in components:
        steps.append(task.run(task=ensure_service, unit=unit_of(component), dry_run=dry_run))
        restarted = any(step.changed for step in steps)
        if not task.is_dry_run(dry_run) and (restarted or component not in healthy):
            wait_healthy(task, cluster, component)
    return combined(task, steps)


def restart_components(
    task: Task, *, cluster: Cluster, components: tuple[str, ...], dry_run: bool | None = None
) -> Result:
    """Ensure each of `components` is restarted here and healthy, in order; the restart is
    owed on the host first, so a run interrupted half way leaves it to the next deploy."""
    task.run(task=owe_restarts, units=[unit_of(c) for c in components], dry_run=dry_run)
    return start_components(task, cluster=cluster, components=components, dry_run=dry_run)


def stop_components(task: Task, *, components: tuple[str, ...]) -> Result:
    """Ensure `components` are stopped here, last first; changed when any was running."""
    # One `systemctl stop`, dependents first: a scheduler or controller-manager waiting out its
    # RestartSec would otherwise restart, pull its Wants= kube-apiserver back up and so cancel
    # that unit's stop job ("Job for kube-apiserver.service canceled"). Every enabled one is
    # stopped, running or not: one that just failed (systemd 254+ shows it failed for a moment
    # before its auto-restart) is stopped too, which cancels the restart.
    units = {unit_of(c): c for c in reversed(components)}
    states = unit_states(task, list(units))
    running = [unit for unit in units if states[unit][1]]
    stopping = [unit for unit in units if states[unit][0] or states[unit][1]]
    for unit in stopping:
        host_state.forget_unit(task, unit)
    if stopping:
        run(task, ["systemctl", "stop", "--", *stopping], sudo=True, timeout=120)
    diff = "".join(f"stopped {units[unit]}\n" for unit in running)
    return Result(host=task.host, changed=bool(running), diff=diff)
