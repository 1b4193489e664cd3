"""verify's workload smoke test: pods on every node, the pod network, a Service, cluster DNS.

One controller creates a namespace with a pod on each node (scheduled there by label) and a
Service in front of them, waits for them, then runs templates/smoke/probe.sh in every pod: each
other pod by its IP (pod to pod across nodes), the Service by its ClusterIP until every backend
answered (so a same-node backend cannot hide a broken route), the Service by its DNS name and the
API's name through cluster DNS. Each node then runs the probe's Service part from the host.
Every answer names the node that gave it, so a failure names the node and what failed. The
namespace is deleted when the test ends, however it ends; one left by a killed run is deleted by
the next.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from kubenorn.nornir_setup import REPO_ROOT
from tasks.kubectl import kubectl
from tasks.ssh import run
from tasks.templates import render

LABEL_KEY, LABEL_VALUE = "app.kubernetes.io/managed-by", "kubenorn-smoke-test"
LABEL = f"{LABEL_KEY}={LABEL_VALUE}"
PROBE = (REPO_ROOT / "templates" / "smoke" / "probe.sh").read_bytes()
POD_PORT = 8080
# Seconds the probe keeps asking the Service until every backend answered: kube-proxy programs
# an endpoint a moment after its pod is Ready (a run that asked 30 times at once missed one).
SERVICE_WINDOW = 20


@dataclass
class SmokePods:
    """What the controller set up: the namespace, each node's pod and address, the Service."""

    namespace: str
    service_ip: str = ""
    pod_ips: dict[str, str] = field(default_factory=dict)  # node -> pod IP
    not_running: dict[str, str] = field(default_factory=dict)  # node -> why
    ready_seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)


def pod_name(node: str) -> str:
    return "smoke-" + node.replace("_", "-").lower()


def new_namespace() -> str:
    return f"kubenorn-smoke-{secrets.token_hex(4)}"


def smoke_manifest(task: Task, cluster: Cluster, namespace: str, nodes: list[str]) -> bytes:
    smoke = cluster.kubernetes.smoke_test
    assert smoke is not None  # verify runs the test only when the inventory has one
    pods = [{"name": node, "pod": pod_name(node)} for node in nodes]
    text = render(
        task,
        "smoke/workload.yaml.j2",
        namespace=namespace,
        nodes=pods,
        image=smoke.image,
        label_key=LABEL_KEY,
        label_value=LABEL_VALUE,
    )
    return text.encode()


def start_smoke_test(task: Task, *, cluster: Cluster, namespace: str, nodes: list[str]) -> Result:
    """Create the smoke test's pods (one on each of `nodes`) and Service and wait until they
    run (or time out)."""
    remove_stale_namespaces(task, cluster, keep=namespace)
    setup = SmokePods(namespace)
    kubectl(
        task, cluster, ["apply", "-f", "-"], stdin=smoke_manifest(task, cluster, namespace, nodes)
    )
    started = time.monotonic()
    timeout = cluster.kubernetes.smoke_test.timeout if cluster.kubernetes.smoke_test else 120
    wait = ["wait", "--namespace", namespace, "--for=condition=Ready", "pod", "--all"]
    kubectl(
        task, cluster, [*wait, f"--timeout={timeout}s"], ok_codes=range(256), timeout=timeout + 30
    )
    setup.ready_seconds = time.monotonic() - started
    pods = json.loads(kubectl(task, cluster, ["get", "pods", "-n", namespace, "-o", "json"]).stdout)
    read_pods(setup, pods, nodes)
    service = kubectl(task, cluster, ["get", "service", "smoke", "-n", namespace, "-o", "json"])
    setup.service_ip = json.loads(service.stdout)["spec"]["clusterIP"]
    setup.findings = pod_findings(setup, nodes)
    return Result(host=task.host, result=setup)


def read_pods(setup: SmokePods, pods: Mapping[str, object], nodes: list[str]) -> None:
    """Each node's pod IP once Ready, else why it is not (its container's waiting reason)."""
    by_name = {p["metadata"]["name"]: p for p in pods.get("items", [])}  # type: ignore[attr-defined]
    for node in nodes:
        pod = by_name.get(pod_name(node))
        why = not_ready_reason(pod)
        if why:
            setup.not_running[node] = why
        else:
            setup.pod_ips[node] = pod["status"]["podIP"]  # type: ignore[index]


def not_ready_reason(pod: dict | None) -> str:
    """Empty when the pod is Ready; else the most specific reason the API gives."""
    if pod is None:
        return "no pod"
    status = pod.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Ready", {}).get("status") == "True" and status.get("podIP"):
        return ""
    for container in status.get("containerStatuses", []):
        waiting = container.get("state", {}).get("waiting")
        if waiting:
            return f"{waiting.get('reason', 'waiting')}: {waiting.get('message', '')}".strip(": ")
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return f"not scheduled: {scheduled.get('message', '')}"
    return f"phase {status.get('phase', 'unknown')}, not Ready"


def pod_findings(setup: SmokePods, nodes: list[str]) -> list[Finding]:
    findings = []
    for node in nodes:
        if node in setup.not_running:
            detail = f"smoke pod not running: {setup.not_running[node]}"
            findings.append(Finding("smoke-pod", node, "CRITICAL", detail))
        else:
            detail = f"pod {setup.pod_ips[node]} ready (all pods in {setup.ready_seconds:.1f}s)"
            findings.append(Finding("smoke-pod", node, "OK", detail))
    return findings


def probe_args(setup: SmokePods, cluster: Cluster, *, in_pod: bool, skip: str = "") -> list[str]:
    """The probe's arguments: the Service, the backends, DNS (in pods only), the other pods."""
    service_url = f"http://{setup.service_ip}/"
    backends = " ".join(sorted(setup.pod_ips))
    if not in_pod:
        return [service_url, "-", str(SERVICE_WINDOW), backends, "-"]
    name_url = f"http://smoke.{setup.namespace}.svc.{cluster.domain}/"
    lookup = f"kubernetes.default.svc.{cluster.domain}"
    pods = [f"{n}=http://{ip}:{POD_PORT}/" for n, ip in sorted(setup.pod_ips.items()) if n != skip]
    return [service_url, name_url, str(SERVICE_WINDOW), backends, lookup, *pods]


def probe_pods(task: Task, *, cluster: Cluster, setup: SmokePods) -> Result:
    """Run the probe in every running smoke pod; findings name the pod's node."""
    findings = []
    for node in sorted(setup.pod_ips):
        exec_argv = ["exec", "-i", "-n", setup.namespace, pod_name(node), "--", "sh", "-s", "--"]
        args = [*exec_argv, *probe_args(setup, cluster, in_pod=True, skip=node)]
        result = kubectl(task, cluster, args, stdin=PROBE, ok_codes=range(256), timeout=180)
        probe = parse_probe(result.stdout)
        findings += [
            pod_network_finding(node, probe),
            service_finding(node, probe, setup, "from its pod"),
            dns_finding(node, probe),
        ]
    return Result(host=task.host, result=findings)


def probe_from_node(task: Task, *, cluster: Cluster, setup: SmokePods) -> Result:
    """The Service from this node's own network namespace, every backend seen."""
    args = ["sh", "-s", "--", *probe_args(setup, cluster, in_pod=False)]
    result = run(task, args, stdin=PROBE, ok_codes=range(256), timeout=180)
    probe = parse_probe(result.stdout)
    findings = [service_finding(task.host.name, probe, setup, "from the host")]
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])


@dataclass
class ProbeOutput:
    """What probe.sh printed, by kind."""

    pods: dict[str, str] = field(default_factory=dict)  # node -> what its pod answered
    failed_pods: dict[str, str] = field(default_factory=dict)  # node -> the error
    backends: dict[str, float] = field(default_factory=dict)  # node -> seconds to its answer
    dns: tuple[bool, str] = (False, "no answer")
    by_name: tuple[bool, str] = (False, "no answer")


def parse_probe(output: str) -> ProbeOutput:
    probe = ProbeOutput()
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "pod":
            node, _, rest = rest.partition(" ")
            outcome, _, answer = rest.partition(" ")
            (probe.pods if outcome == "ok" else probe.failed_pods)[node] = answer.strip()
        elif kind == "backend":
            node, _, seconds = rest.partition(" ")
            probe.backends[node] = float(seconds or 0)
        elif kind in ("dns", "by-name"):
            outcome, _, answer = rest.partition(" ")
            verdict = (outcome == "ok", answer.strip())
            probe.dns, probe.by_name = (
                (verdict, probe.by_name) if kind == "dns" else (probe.dns, verdict)
            )
    return probe


def pod_network_finding(node: str, probe: ProbeOutput) -> Finding:
    """Each other node's pod must answer, and as itself."""
    wrong = [f"{n} ({why or 'no answer'})" for n, why in sorted(probe.failed_pods.items())]
    wrong += [f"{n} (answered as {said!r})" for n, said in sorted(probe.pods.items()) if said != n]
    if wrong:
        detail = f"from its pod, no answer from the pods on {', '.join(wrong)}"
        return Finding("smoke-pod-network", node, "CRITICAL", detail)
    detail = f"its pod reached the pods on {len(probe.pods)} other nodes by their addresses"
    return Finding("smoke-pod-network", node, "OK", detail)


def service_finding(node: str, probe: ProbeOutput, setup: SmokePods, where: str) -> Finding:
    """Every backend must have answered through the ClusterIP; OK says how soon the first did."""
    service = f"Service {setup.service_ip} {where}"
    missing = sorted(set(setup.pod_ips) - set(probe.backends))
    if missing:
        detail = f"{service}: no answer from the backends on {', '.join(missing)}"
        return Finding("smoke-service", node, "CRITICAL", detail)
    first = min(probe.backends.values(), default=0.0)
    detail = f"{service}: all {len(probe.backends)} backends answered, the first after {first:.0f}s"
    return Finding("smoke-service", node, "OK", detail)


def dns_finding(node: str, probe: ProbeOutput) -> Finding:
    """Cluster DNS from a pod: the API's name, then the smoke Service by its name."""
    if not probe.dns[0]:
        detail = f"cluster DNS did not resolve the API's name from its pod: {probe.dns[1]}"
        return Finding("smoke-dns", node, "CRITICAL", detail)
    if not probe.by_name[0]:
        why = probe.by_name[1] or "no answer"
        detail = f"cluster DNS: the Service by its name, from its pod: {why}"
        return Finding("smoke-dns", node, "CRITICAL", detail)
    return Finding(
        "smoke-dns", node, "OK", "the API's and the Service's names resolve from its pod"
    )


def remove_stale_namespaces(task: Task, cluster: Cluster, *, keep: str) -> None:
    """Delete every smoke test namespace but `keep` (left by a run that was killed)."""
    listed = kubectl(task, cluster, ["get", "namespaces", "-l", LABEL, "-o", "name"]).stdout
    stale = [name for name in listed.split() if name != f"namespace/{keep}"]
    if stale:  # the last run's may finish terminating between the two commands
        kubectl(task, cluster, ["delete", "--wait=false", "--ignore-not-found", *stale])


def remove_smoke_test(task: Task, *, cluster: Cluster, namespace: str) -> Result:
    """Delete the smoke test's namespace (its pods and Service with it); no waiting."""
    argv = ["delete", "namespace", namespace, "--wait=false", "--ignore-not-found"]
    deleted = kubectl(task, cluster, argv).stdout.strip()
    return Result(host=task.host, changed=bool(deleted), result=deleted)
