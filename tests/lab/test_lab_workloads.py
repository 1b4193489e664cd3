"""Workloads on the real cluster: images loaded (never pulled), pod network, Services, cluster
DNS, and verify's smoke test naming what breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_support import admin_kubectl

from lab.machine import Lab
from runbooks import deploy, verify

CONTROLLER = "kube.controller01"
NODES = ["kube.node01", "kube.node02", "kube.node03"]
SMOKE_LABEL = "app.kubernetes.io/managed-by=kubenorn-smoke-test"


@pytest.fixture(scope="module")
def cluster(lab: Lab, lab_inventory: Path) -> Path:
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def kubectl(lab: Lab, *args: str) -> str:
    return admin_kubectl(lab, *args, host=CONTROLLER)


def verify_findings(inventory: Path, report: Path, *extra: str) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    code = verify.main(["-i", str(inventory), "--quiet", "--json", str(report), *extra])
    return code, json.loads(report.read_text())["findings"]


def by_check(findings: list[dict], check: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f["host"]: f for f in findings if f["check"] == check}


def test_the_smoke_test_passes_on_every_node(cluster: Path, tmp_path: Path) -> None:
    code, findings = verify_findings(cluster, tmp_path / "verify.json")
    assert code == 0, [f for f in findings if f["status"] != "OK"]
    for check in ("smoke-pod", "smoke-pod-network", "smoke-dns", "pod-routes", "images"):
        judged = by_check(findings, check)
        assert sorted(h for h in judged if h.startswith("kube.node")) == NODES, check
        assert all(f["status"] == "OK" for f in judged.values()), check
    services = [f for f in findings if f["check"] == "smoke-service"]
    assert len(services) == 6  # from each node's pod and from each node itself
    assert all("all 3 backends answered" in f["detail"] for f in services)


def test_from_node01_a_pod_on_node03_answers_by_ip_and_a_service_by_ip_and_name(
    lab: Lab, cluster: Path
) -> None:
    """Independently of verify: a pod on node03 serving, a Service, a client pod on node01."""
    namespace = "kubenorn-lab-test"
    argv = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", "apply", "-f", "-"]
    assert lab.ssh(CONTROLLER, argv, stdin=MANIFEST.format(namespace=namespace)).returncode == 0
    try:
        kubectl(
            lab, "wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s"
        )
        server_ip = kubectl(
            lab, "get", "pod", "server", "-n", namespace, "-o", "jsonpath={.status.podIP}"
        )
        service_ip = kubectl(
            lab, "get", "svc", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
        )
        assert server_ip.startswith("10.200.3.")  # node03's pod CIDR
        for url in (
            f"http://{server_ip}:8080/",
            f"http://{service_ip}/",
            f"http://web.{namespace}.svc.cluster.local/",
        ):
            answer = kubectl(
                lab,
                "exec",
                "-n",
                namespace,
                "client",
                "--",
                "wget",
                "-q",
                "-T",
                "5",
                "-O",
                "-",
                url,
            )
            assert answer.strip() == "kube.node03", url
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false")


MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: {namespace}, labels: {{app: web}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: kube.node03}}
  terminationGracePeriodSeconds: 0
  containers:
    - name: web
      image: kubenorn.lab/busybox:1.37.0
      imagePullPolicy: Never
      env: [{{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}]
      command: [sh, -c, 'mkdir /w && echo "$NODE" > /w/index.html && exec httpd -f -p 8080 -h /w']
      readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: kube.node01}}
  terminationGracePeriodSeconds: 0
  containers:
    - name: client
      image: kubenorn.lab/busybox:1.37.0
      imagePullPolicy: Never
      command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {namespace}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def test_no_image_was_ever_pulled(lab: Lab, cluster: Path) -> None:
    """containerd logs every pull it starts ("PullImage"); the nodes only ever loaded."""
    for node in NODES:
        log = lab.ssh(node, ["journalctl", "-u", "containerd", "--no-pager", "-o", "cat"]).stdout
        assert "PullImage" not in log, node
        images = lab.ssh(node, ["ctr", "-n", "k8s.io", "images", "ls", "-q"]).stdout.split()
        assert {"registry.k8s.io/pause:3.10.1", "kubenorn.lab/coredns:1.15.0"} <= set(images)


def test_a_removed_pod_route_is_named_by_host_and_route(
    lab: Lab, cluster: Path, tmp_path: Path
) -> None:
    assert lab.ssh("kube.node01", ["ip", "route", "del", "10.200.3.0/24"]).returncode == 0
    try:
        code, findings = verify_findings(cluster, tmp_path / "verify.json")
    finally:
        lab.ssh("kube.node01", ["systemctl", "restart", "kubenorn-routes.service"])
    assert code == 2
    route = by_check(findings, "pod-routes")["kube.node01"]
    assert route["status"] == "CRITICAL"
    assert "no route to 10.200.3.0/24" in route["detail"] and "kube.node03" in route["detail"]
    pods = by_check(findings, "smoke-pod-network")["kube.node01"]
    assert pods["status"] == "CRITICAL" and "kube.node03" in pods["detail"]
    assert by_check(findings, "pod-routes")["kube.node02"]["status"] == "OK"
    assert verify.main(["-i", str(cluster), "--quiet"]) == 0


def test_dns_scaled_to_zero_is_named_and_deploy_brings_it_back(
    lab: Lab, cluster: Path, tmp_path: Path
) -> None:
    kubectl(lab, "-n", "kube-system", "scale", "deployment/coredns", "--replicas=0")
    gone = ["wait", "--for=delete", "pod", "-l", "k8s-app=kube-dns", "--timeout=60s"]
    kubectl(lab, "-n", "kube-system", *gone)  # past CoreDNS's lame-duck seconds
    try:
        code, findings = verify_findings(cluster, tmp_path / "verify.json")
    finally:
        assert deploy.main(["-i", str(cluster), "--quiet"]) == 0
    assert code == 2
    dns = by_check(findings, "smoke-dns")
    assert sorted(dns) == NODES
    assert all(f["status"] == "CRITICAL" and "cluster DNS" in f["detail"] for f in dns.values())
    assert (
        kubectl(
            lab,
            "-n",
            "kube-system",
            "get",
            "deployment/coredns",
            "-o",
            "jsonpath={.status.readyReplicas}",
        )
        == "2"
    )
    assert verify.main(["-i", str(cluster), "--quiet"]) == 0


def test_the_smoke_test_leaves_nothing_and_removes_what_a_killed_run_left(
    lab: Lab, cluster: Path
) -> None:
    kubectl(lab, "create", "namespace", "kubenorn-smoke-killed")
    kubectl(lab, "label", "namespace", "kubenorn-smoke-killed", SMOKE_LABEL)
    assert verify.main(["-i", str(cluster), "--quiet"]) == 0
    left = json.loads(kubectl(lab, "get", "namespaces", "-l", SMOKE_LABEL, "-o", "json"))
    assert all(ns["status"]["phase"] == "Terminating" for ns in left["items"])


def test_without_the_smoke_test_verify_creates_no_pod(
    lab: Lab, cluster: Path, tmp_path: Path
) -> None:
    before = kubectl(lab, "get", "pods", "--all-namespaces", "-o", "name").split()
    code, findings = verify_findings(cluster, tmp_path / "verify.json", "--no-smoke-test")
    assert code == 0
    assert not [f for f in findings if f["check"].startswith("smoke")]
    after = kubectl(lab, "get", "pods", "--all-namespaces", "-o", "name").split()
    assert set(after) <= set(before)
