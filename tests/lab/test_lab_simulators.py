"""The apiserver simulator on a lab host, against the lab's real etcd, through real kubectl."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenorn.nornir_setup import REPO_ROOT
from runbooks import deploy

HOST = "kube.controller01"
SSL = "/etc/kubernetes/ssl"
UNIT = "kubenorn-sim-apiserver"


@pytest.fixture(scope="module")
def apiserver(lab, lab_inventory: Path) -> Iterator[None]:  # noqa: ANN001
    """kube-apiserver (the simulator) run by hand on one controller, as a transient unit."""
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    install = [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-q",
        "kube-apiserver",
        "kubernetes-client",
    ]
    assert lab.ssh(HOST, ["apt-get", "update", "-q"], timeout=120).returncode == 0
    assert lab.ssh(HOST, install, timeout=300).returncode == 0
    etcd = ",".join(f"https://10.240.0.1{i}:2379" for i in (1, 2, 3))
    started = lab.ssh(
        HOST,
        [
            "systemd-run",
            f"--unit={UNIT}",
            "kube-apiserver",
            f"--etcd-servers={etcd}",
            f"--etcd-cafile={SSL}/etcd-ca.crt",
            f"--etcd-certfile={SSL}/apiserver-etcd-client.crt",
            f"--etcd-keyfile={SSL}/apiserver-etcd-client.key",
            f"--tls-cert-file={SSL}/apiserver.crt",
            f"--tls-private-key-file={SSL}/apiserver.key",
            f"--client-ca-file={SSL}/ca.crt",
            "--secure-port=6443",
            "--authorization-mode=Node,RBAC",
        ],
    )
    assert started.returncode == 0, started.stderr
    try:
        yield
    finally:
        lab.ssh(HOST, ["systemctl", "stop", UNIT])


def kubectl(lab, *args: str):  # noqa: ANN001, ANN201
    return lab.ssh(HOST, ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", *args])


def test_kubectl_gets_namespaces_and_nodes_through_the_simulator(apiserver: None, lab) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30
    namespaces = kubectl(lab, "get", "namespaces")
    while "kube-system" not in namespaces.stdout and time.monotonic() < deadline:
        time.sleep(0.5)
        namespaces = kubectl(lab, "get", "namespaces")
    assert "kube-system" in namespaces.stdout, namespaces.stderr
    nodes = kubectl(lab, "get", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    version = kubectl(lab, "version")
    assert "v1.30.0" in version.stdout


def node_status(lab, node: str) -> str:  # noqa: ANN001
    listed = kubectl(lab, "get", "node", node, "--no-headers")
    fields = listed.stdout.split()
    return fields[1] if len(fields) > 1 else ""


def wait_for_status(lab, node: str, status: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while node_status(lab, node) != status:
        assert time.monotonic() < deadline, f"{node} never became {status}"
        time.sleep(1)


def test_a_kubelet_registers_and_follows_its_runtime(apiserver: None, lab) -> None:  # noqa: ANN001
    node = "kube.node01"
    install = [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-q",
        "kubelet",
    ]
    lab.ssh(node, ["apt-get", "update", "-q"], timeout=120)
    assert lab.ssh(node, install, timeout=300).returncode == 0
    started = lab.ssh(
        node,
        [
            "systemd-run",
            "--unit=kubenorn-sim-kubelet",
            "kubelet",
            "--kubeconfig=/etc/kubernetes/kubelet.kubeconfig",
            f"--hostname-override={node}",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-status-update-frequency=1s",
        ],
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for_status(lab, node, "Ready")
        lab.ssh(node, ["systemctl", "stop", "containerd"])
        wait_for_status(lab, node, "NotReady")
        lab.ssh(node, ["systemctl", "start", "containerd"])
        wait_for_status(lab, node, "Ready")
        healthz = lab.ssh(
            node,
            [
                "python3",
                "-c",
                "import urllib.request as u; "
                "print(u.urlopen('http://127.0.0.1:10248/healthz').read())",
            ],
        )
        assert "ok" in healthz.stdout
    finally:
        lab.ssh(node, ["systemctl", "start", "containerd"])
        lab.ssh(node, ["systemctl", "stop", "kubenorn-sim-kubelet"])


def package_version(binary: str, version: str) -> str:
    """The lab repository's full version of a simulator package (it carries a build id)."""
    [deb] = (REPO_ROOT / "lab" / "build" / "debs").glob(f"{binary}_{version}-*_all.deb")
    return deb.name.split("_")[1]


def test_a_1_6_kubelet_follows_docker(apiserver: None, lab) -> None:  # noqa: ANN001
    node = "kube.node02"
    install = [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-q",
        "docker.io",
        f"kubelet={package_version('kubelet', '1.6.0')}",
    ]
    lab.ssh(node, ["apt-get", "update", "-q"], timeout=120)
    assert lab.ssh(node, install, timeout=600).returncode == 0
    assert lab.ssh(node, ["kubelet", "--version"]).stdout.strip() == "Kubernetes v1.6.0"
    started = lab.ssh(
        node,
        [
            "systemd-run",
            "--unit=kubenorn-sim-kubelet16",
            "kubelet",
            "--api-servers=https://kube.apiserver:6443",
            "--require-kubeconfig",
            "--kubeconfig=/etc/kubernetes/kubelet.kubeconfig",
            f"--hostname-override={node}",
            "--node-status-update-frequency=1s",
        ],
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for_status(lab, node, "Ready")
        lab.ssh(node, ["systemctl", "stop", "docker.socket", "docker"])
        wait_for_status(lab, node, "NotReady")
        lab.ssh(node, ["systemctl", "start", "docker"])
        wait_for_status(lab, node, "Ready")
    finally:
        lab.ssh(node, ["systemctl", "start", "docker"])
        lab.ssh(node, ["systemctl", "stop", "kubenorn-sim-kubelet16"])
