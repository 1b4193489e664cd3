"""The simulators as deployed on the lab: real kubectl through them, kubelets following runtimes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runbooks import deploy

HOST = "kube.controller01"


@pytest.fixture(scope="module")
def cluster(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def kubectl(lab, *args: str):  # noqa: ANN001, ANN201
    return lab.ssh(HOST, ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", *args])


def test_kubectl_gets_namespaces_nodes_and_version_through_the_simulator(
    cluster: Path,
    lab,  # noqa: ANN001
) -> None:
    namespaces = kubectl(lab, "get", "namespaces")
    assert "kube-system" in namespaces.stdout, namespaces.stderr
    nodes = kubectl(lab, "get", "nodes")
    assert nodes.returncode == 0 and "kube.node03" in nodes.stdout, nodes.stderr
    assert "v1.30.0" in kubectl(lab, "version").stdout


def node_status(lab, node: str) -> str:  # noqa: ANN001
    fields = kubectl(lab, "get", "node", node, "--no-headers").stdout.split()
    return fields[1] if len(fields) > 1 else ""


def wait_for_status(lab, node: str, status: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while node_status(lab, node) != status:
        assert time.monotonic() < deadline, f"{node} never became {status}"
        time.sleep(1)


def test_a_kubelet_follows_its_runtime(cluster: Path, lab) -> None:  # noqa: ANN001
    node = "kube.node01"
    wait_for_status(lab, node, "Ready")
    lab.ssh(node, ["systemctl", "stop", "containerd"])
    try:
        wait_for_status(lab, node, "NotReady")
        healthz = lab.ssh(node, ["curl", "-sS", "http://127.0.0.1:10248/healthz"])
        assert healthz.stdout == "ok", "the kubelet itself stays healthy: it still posts status"
    finally:
        lab.ssh(node, ["systemctl", "start", "containerd"])
    wait_for_status(lab, node, "Ready")
