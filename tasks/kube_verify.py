"""Verify the Kubernetes side: components healthy on each host, leaders, nodes Ready.

Each controller reports what it sees (its components' health, and through its own apiserver
the leader records, the nodes and, for 1.6, componentstatuses); the cluster-wide verdicts are
judged once from all of those views by `judge_control_plane`, as the etcd checks are.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nornir.core import Nornir
from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding, Status
from kubenorn.profiles import CONTROL_PLANE, WORKER, Profile, unit_of
from tasks.kube_units import unhealthy_each
from tasks.kubectl import api_reads, kubectl
from tasks.kubelet_api import kubelet_anonymous
from tasks.ssh import RemoteError
from tasks.systemd import unit_state

ELECTED = ("kube-scheduler", "kube-controller-manager")
# Conditions under which a Ready node's kubelet evicts pods and taints the node against new ones:
# named by verify, but no control-plane problem (a restore or drill does not wait them out).
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")
PRESSURE_CHECK = "node-pressure"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
# A kubelet posts its node Ready once its runtime and network report ready, after a restart
# too; a node still NotReady after this long is a problem, not a wait.
NODES_READY_TIMEOUT = 180.0
CLOCK_SLACK = 2.0  # seconds: renew times have one-second resolution, hosts' clocks drift a bit


@dataclass(frozen=True)
class LeaderRecord:
    """Who holds a component's leader election, as the holder last wrote it."""

    holder: str
    renewed: float  # epoch seconds
    lease_seconds: float

    @property
    def host(self) -> str:
        """The holder's host: client-go identities are `hostname_uuid`."""
        return self.holder.rsplit("_", 1)[0]


@dataclass
class ControllerView:
    """What one controller saw: its findings, and the API objects its apiserver returned."""

    host: str
    findings: list[Finding] = field(default_factory=list)
    active: dict[str, bool] = field(default_factory=dict)
    leaders: dict[str, LeaderRecord | None] = field(default_factory=dict)
    nodes: dict[str, bool] | None = None  # node name -> Ready; None when it could not list
    pressures: dict[str, list[str]] = field(default_factory=dict)  # node name -> PRESSURES true
    clock: float = 0.0
    api_error: str = ""


def worse_if(problems: list[str]) -> Status:
    """One host's component problems are a WARNING; the cluster-wide judges decide the rest."""
    return "WARNING" if problems else "OK"


def api_get(task: Task, cluster: Cluster, path: str) -> tuple[dict[str, Any] | None, str]:
    """(object, "") for a GET through this host's admin kubeconfig; (None, why) otherwise."""
    args = ["--request-timeout=5s", "get", "--raw", path]
    result = kubectl(task, cluster, args, ok_codes=range(256), timeout=20)
    if result.rc != 0:
        lines = result.stderr.strip().splitlines() or [f"kubectl exited {result.rc}"]
        return None, lines[-1][-300:]
    try:
        return json.loads(result.stdout), ""
    except json.JSONDecodeError:
        return None, f"{path}: not JSON: {result.stdout[:120]!r}"


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def leader_record(profile: Profile, obj: dict[str, Any]) -> LeaderRecord | None:
    """The leader record of a Lease or of the endpoints' annotation; None when there is none."""
    if profile.leader_lock == "leases":
        spec = obj.get("spec") or {}
    else:
        annotation = (obj.get("metadata", {}).get("annotations") or {}).get(LEADER_ANNOTATION)
        spec = json.loads(annotation) if annotation else {}
    if not spec.get("holderIdentity") or not spec.get("renewTime"):
        return None
    return LeaderRecord(
        spec["holderIdentity"], parse_time(spec["renewTime"]), float(spec["leaseDurationSeconds"])
    )


def true_conditions(node_list: dict[str, Any]) -> dict[str, set[str]]:
    """Node name -> the types of the conditions its kubelet reports True."""
    return {
        node["metadata"]["name"]: {
            c.get("type")
            for c in node.get("status", {}).get("conditions", [])
            if c.get("status") == "True"
        }
        for node in node_list.get("items", [])
    }


def ready_nodes(node_list: dict[str, Any]) -> dict[str, bool]:
    """Node name -> whether its Ready condition is True."""
    return {name: "Ready" in true for name, true in true_conditions(node_list).items()}


def node_pressures(node_list: dict[str, Any]) -> dict[str, list[str]]:
    """Node name -> those of PRESSURES its kubelet reports True."""
    return {
        name: [p for p in PRESSURES if p in true]
        for name, true in true_conditions(node_list).items()
    }


def why_not_ready(
    node: str, ready: dict[str, bool], reported: dict[str, str], wanted: str | None
) -> str:
    """Why `node` is not done: not registered, NotReady, or Ready as another kubelet version."""
    if node not in ready:
        return f"{node} not registered"
    if not ready[node]:
        return f"{node} NotReady"
    return f"{node} Ready as kubelet {reported[node] or '(no version)'}, not {wanted} yet"


def kubelet_versions(node_list: dict[str, Any]) -> dict[str, str]:
    """Node name -> the version its kubelet last reported (`v1.37.2`)."""
    return {
        node["metadata"]["name"]: node.get("status", {})
        .get("nodeInfo", {})
        .get("kubeletVersion", "")
        for node in node_list.get("items", [])
    }


def wait_nodes_ready(
    task: Task,
    *,
    cluster: Cluster,
    nodes: Sequence[str],
    kubelet_version: str | None = None,
    timeout: float | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Ensure each of `nodes` is registered and Ready, as this controller's apiserver sees it
    (waiting at most `timeout` seconds, NODES_READY_TIMEOUT unless given); with
    `kubelet_version`, Ready as reported by a kubelet of that version."""
    if task.is_dry_run(dry_run) or not nodes:
        return Result(host=task.host, changed=False)
    timeout = NODES_READY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    # Just after a kubelet restarts, the Node still shows the old kubelet's last status.
    wanted = f"v{kubelet_version}" if kubelet_version else None
    while True:
        _, [(node_list, error)] = api_reads(task, cluster, ["/api/v1/nodes"])
        ready = ready_nodes(node_list or {})
        reported = kubelet_versions(node_list or {})
        waiting = [n for n in nodes if not ready.get(n) or wanted not in (None, reported.get(n))]
        if not waiting:
            return Result(host=task.host, changed=False, result=f"Ready: {', '.join(nodes)}")
        if time.monotonic() > deadline:
            states = [why_not_ready(n, ready, reported, wanted) for n in waiting]
            why = f" (nodes not listed: {error})" if node_list is None else ""
            raise RemoteError(f"after {timeout:.0f}s: {', '.join(states)}{why}")
        time.sleep(2.0)


def component_findings(
    task: Task,
    cluster: Cluster,
    components: tuple[str, ...],
    extra: Sequence[tuple[str, str | None]] = (),
) -> tuple[list[Finding], list[tuple[int, str]]]:
    """Per component on this host: its unit active and its health endpoints answering 200;
    and the answers of the `extra` (URL, CA file) checks, asked in the same command."""
    active = {c: unit_state(task, unit_of(c))[1] for c in components}
    problems, answers = unhealthy_each(task, cluster, [c for c in components if active[c]], extra)
    findings = []
    for component in components:
        found = problems.get(component, []) if active[component] else [f"{component} not active"]
        detail = "; ".join(found) or "active, healthy"
        findings.append(Finding(component, task.host.name, worse_if(found), detail))
    return findings, answers


def componentstatus_findings(task: Task, cluster: Cluster) -> list[Finding]:
    """1.6's componentstatuses; its etcd entries' `bad certificate` is a known false alarm."""
    statuses, error = api_get(task, cluster, "/api/v1/componentstatuses")
    if statuses is None:
        return [Finding("componentstatuses", task.host.name, "WARNING", error)]
    bad = []
    for item in statuses.get("items", []):
        name = item["metadata"]["name"]
        condition = (item.get("conditions") or [{}])[0]
        if condition.get("status") == "True":
            continue
        message = condition.get("error") or condition.get("message") or "unhealthy"
        # Kubernetes 1.6 probed etcd without a client certificate (fixed in 1.7): with
        # client-certificate auth every etcd shows unhealthy; the etcd checks probe it properly.
        if name.startswith("etcd-") and "bad certificate" in message:
            continue
        bad.append(f"{name}: {message}")
    detail = "; ".join(bad) or "scheduler, controller-manager healthy (etcd: see the etcd checks)"
    return [Finding("componentstatuses", task.host.name, worse_if(bad), detail)]


def observe_control_plane(task: Task, *, cluster: Cluster) -> Result:
    """This controller's view: component health, leader records, nodes. (Reads only.)"""
    profile = cluster.kubernetes.profile
    view = ControllerView(task.host.name)
    view.findings, _ = component_findings(task, cluster, CONTROL_PLANE)
    view.active = {f.check: "not active" not in f.detail for f in view.findings}
    paths = ["/api/v1/nodes", *(profile.leader_path(component) for component in ELECTED)]
    view.clock, [(node_list, view.api_error), *leaders] = api_reads(task, cluster, paths)
    if node_list is None:
        return Result(host=task.host, result=view)
    view.nodes = ready_nodes(node_list)
    view.pressures = node_pressures(node_list)
    for component, (obj, _) in zip(ELECTED, leaders, strict=True):
        view.leaders[component] = leader_record(profile, obj) if obj else None
    if profile.componentstatuses:
        view.findings += componentstatus_findings(task, cluster)
    return Result(host=task.host, result=view, record_data=[f.as_dict() for f in view.findings])


def no_answer(views: list[ControllerView]) -> str:
    """Why no controller's apiserver answered: each one's error, or that none was checked."""
    if not views:
        return "no controller could be checked"
    return "; ".join(f"{v.host}: {v.api_error or 'no answer'}" for v in views)


def judge_leader(
    component: str,
    views: list[ControllerView],
    controllers: set[str],
    selected: set[str] | None = None,
) -> Finding:
    """Exactly one fresh leader for `component`, held by a controller where it runs.

    A leader on a controller that --limit left out (not in `selected`) is read from the
    lease only: whether it runs there was not observed.
    """
    if not any(view.nodes is not None for view in views):  # no apiserver answered: not read
        return Finding(component, "leader", "UNKNOWN", f"could not check: {no_answer(views)}")
    seen = [(view, record) for view in views if (record := view.leaders.get(component))]
    if not seen:
        return Finding(component, "leader", "CRITICAL", "no leader record: nothing is elected")
    fresh = {
        record.holder: record
        for view, record in seen
        if view.clock - record.renewed <= record.lease_seconds + CLOCK_SLACK
    }
    if not fresh:
        return Finding(component, "leader", "CRITICAL", f"lease of {seen[0][1].holder} expired")
    if len(fresh) > 1:
        return Finding(component, "leader", "CRITICAL", f"two leaders: {', '.join(fresh)}")
    record = next(iter(fresh.values()))
    running = {v.host for v in views if v.active.get(component)}
    if record.host in controllers and selected is not None and record.host not in selected:
        detail = f"led by {record.host} (lease fresh; not in --limit, so not seen running)"
        return Finding(component, "leader", "OK", detail)
    if record.host not in controllers or record.host not in running:
        detail = f"{record.holder} holds the lease but {record.host} is not a live controller"
        return Finding(component, "leader", "CRITICAL", detail)
    return Finding(component, "leader", "OK", f"led by {record.host}")


def judge_nodes(
    views: list[ControllerView], nodes: list[str], *, all_nodes: list[str] | None = None
) -> list[Finding]:
    """Every inventory node (of `nodes`) registered and Ready, as the apiservers see it.

    `all_nodes`: the inventory's nodes, when `nodes` is the part --limit kept; whether any
    node is Ready is judged on all of them.
    """
    listed = [v.nodes for v in views if v.nodes is not None]
    if not listed:
        detail = f"no apiserver listed nodes: {no_answer(views)}"
        return [Finding("node-ready", "cluster", "UNKNOWN", detail)]
    ready = listed[0]
    pressures = next(v.pressures for v in views if v.nodes is not None)
    # One node down is a WARNING (pods move); none Ready means no workload runs anywhere.
    everyone = nodes if all_nodes is None else all_nodes
    severity: Status = "WARNING" if any(ready.get(node) for node in everyone) else "CRITICAL"
    suffix = "" if severity == "WARNING" else " (no node is Ready)"
    findings = []
    for node in nodes:
        if node not in ready:
            findings.append(Finding("node-ready", node, severity, "not registered" + suffix))
        elif not ready[node]:
            findings.append(Finding("node-ready", node, severity, "NotReady" + suffix))
        else:
            findings.append(Finding("node-ready", node, "OK", "Ready"))
        if ready.get(node) and (pressed := pressures.get(node)):
            detail = f"under {', '.join(pressed)}: its kubelet evicts pods and none schedule there"
            findings.append(Finding(PRESSURE_CHECK, node, "WARNING", detail))
    return findings


def judge_control_plane(
    cluster: Cluster, views: list[ControllerView], selected: set[str] | None = None
) -> list[Finding]:
    """Per-host findings, then: some apiserver serving, one leader each, nodes Ready.

    `selected` (the hosts --limit kept; None for all): with no controller in it nothing was
    asked of an apiserver, so the leaders and nodes are skipped with a note; nodes outside it
    are not judged.
    """
    controllers = {h.name for h in cluster.controllers}
    if selected is not None and not controllers & selected:
        note = "skipped: --limit keeps no controller, so no apiserver was asked"
        return [Finding(component, "leader", "OK", note) for component in ELECTED] + [
            Finding("node-ready", "cluster", "OK", note)
        ]
    findings = [f for view in views for f in view.findings]
    apiservers = [f for f in findings if f.check == "kube-apiserver"]
    if apiservers and not any(f.ok for f in apiservers):  # seen, and none serving
        findings.append(Finding("kube-apiserver", "cluster", "CRITICAL", "no apiserver healthy"))
    findings += [judge_leader(component, views, controllers, selected) for component in ELECTED]
    nodes = [h.name for h in cluster.nodes]
    judged = [n for n in nodes if selected is None or n in selected]
    return findings + judge_nodes(views, judged, all_nodes=nodes)


def check_worker(task: Task, *, cluster: Cluster) -> Result:
    """A node's findings: the apiserver through its load balancer, kubelet, kube-proxy.

    And whether the kubelet's API refuses a stranger, asked from here (the control machine).
    """
    endpoint = cluster.apiserver
    path = task.host["load_balancer"]["health_check"]
    url = f"https://{endpoint.name}:{endpoint.port}{path}"
    ca_file = posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")
    components, [(code, body)] = component_findings(task, cluster, WORKER, [(url, ca_file)])
    through = Finding(
        "apiserver-via-lb",
        task.host.name,
        "OK" if code == 200 else "WARNING",
        f"{url}: {code or 'no answer'} {body.splitlines()[-1] if body else ''}".strip(),
    )
    findings = [through, *components]
    kubelet = next(f for f in findings if f.check == "kubelet")
    if "not active" not in kubelet.detail:  # a stopped kubelet is one finding, not two
        address = cluster.host(task.host.name).address
        findings += kubelet_anonymous(cluster.kubernetes.profile, task.host.name, address)
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])


def control_plane_problems(nr: Nornir, cluster: Cluster) -> list[Finding]:
    """Whatever the control-plane checks find wrong right now (empty when all is well)."""
    controllers = nr.filter(filter_func=lambda h: "controllers" in {g.name for g in h.groups})
    results = controllers.run(task=observe_control_plane, cluster=cluster)
    if results.failed:
        return [
            Finding("control-plane", h, "UNKNOWN", "could not check") for h in results.failed_hosts
        ]
    return gated(judge_control_plane(cluster, [r[0].result for r in results.values()]))


def gated(findings: list[Finding]) -> list[Finding]:
    """Those of `findings` a control-plane health wait waits out: not OK, node pressure aside."""
    return [f for f in findings if not f.ok and f.check != PRESSURE_CHECK]


def wait_control_plane_healthy(
    nr: Nornir, cluster: Cluster, timeout: float
) -> tuple[float | None, list[Finding]]:
    """Seconds until the control-plane checks all pass (None on timeout), and what was left."""
    started, problems = time.monotonic(), control_plane_problems(nr, cluster)
    while problems and time.monotonic() - started < timeout:
        time.sleep(0.5)
        problems = control_plane_problems(nr, cluster)
    return (None if problems else time.monotonic() - started), problems
