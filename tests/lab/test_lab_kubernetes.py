"""Real Kubernetes on the lab: binaries built from the published module, nodes Ready at their
version, the kubelets' API closed to anonymous clients, the lab's provisions for the kubelet."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from lab_support import admin_kubectl

from lab.kubebuild import COMMANDS, Build, parse_version
from lab.machine import Lab
from runbooks import deploy, verify

CONTROLLER = "kube.controller01"
NODES = {"kube.node01": "10.240.0.21", "kube.node02": "10.240.0.22", "kube.node03": "10.240.0.23"}


@pytest.fixture(scope="module")
def cluster(lab: Lab, lab_inventory: Path) -> Path:
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


@pytest.fixture(scope="module")
def version(lab_inventory: Path) -> str:
    defaults = yaml.safe_load((lab_inventory / "defaults.yaml").read_text())
    return parse_version(defaults["data"]["cluster"]["kubernetes_version"])


def kubectl(lab: Lab, *args: str) -> str:
    return admin_kubectl(lab, *args, host=CONTROLLER)


def node_ready(lab: Lab, node: str) -> bool:
    status = json.loads(kubectl(lab, "get", "node", node, "-o", "json"))["status"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])


def wait_for(predicate, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s"
        time.sleep(1)


@pytest.mark.parametrize("binary", sorted(COMMANDS))
def test_every_binary_reports_the_version_it_was_built_as(
    lab: Lab, version: str, binary: str
) -> None:
    path = Build(version, lab.settings.state_dir).bin_dir / binary
    argv = [str(path), "version", "--client"] if binary == "kubectl" else [str(path), "--version"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout
    assert version in out and "v0.0.0" not in out, out


def test_the_real_apiserver_installs_from_the_repository_and_rejects_unknown_flags(
    cluster: Path, lab: Lab, version: str
) -> None:
    host = "kube.controller03"
    installed = lab.ssh(
        host, ["dpkg-query", "-W", "-f", "${Version} ${Description}", "kube-apiserver"]
    )
    assert installed.stdout.startswith(version.removeprefix("v") + "-0kubenorn1 ")
    assert "SIMULATOR" not in installed.stdout
    assert lab.ssh(host, ["kube-apiserver", "--version"]).stdout.strip() == f"Kubernetes {version}"
    rejected = lab.ssh(host, ["kube-apiserver", "--no-such-flag"])
    assert rejected.returncode != 0 and "unknown flag: --no-such-flag" in rejected.stderr


def test_three_nodes_are_ready_at_the_built_version(cluster: Path, lab: Lab, version: str) -> None:
    wait_for(lambda: all(node_ready(lab, node) for node in NODES))
    listed = json.loads(kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    versions = {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in listed}
    assert versions == dict.fromkeys(NODES, version)
    runtimes = {n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in listed}
    assert all(r.startswith("containerd://") for r in runtimes), runtimes


def test_the_elected_components_hold_leases(cluster: Path, lab: Lab) -> None:
    for component in ("kube-scheduler", "kube-controller-manager"):
        lease = json.loads(
            kubectl(lab, "-n", "kube-system", "get", "lease", component, "-o", "json")
        )
        holder = lease["spec"]["holderIdentity"]
        assert holder.split("_")[0] in (
            "kube.controller01",
            "kube.controller02",
            "kube.controller03",
        )


@pytest.mark.parametrize("node", sorted(NODES))
def test_an_anonymous_request_to_the_kubelet_api_is_refused(cluster: Path, node: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://{NODES[node]}:10250/pods", context=context, timeout=10)
    assert refused.value.code == 401


def test_the_kubelet_serves_a_certificate_for_its_node_from_the_cluster_ca(
    cluster: Path, lab_inventory: Path
) -> None:
    context = ssl.create_default_context(cafile=str(lab_inventory / ".pki" / "ca.crt"))
    context.check_hostname = False  # the address is checked below, against the SANs
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen("https://10.240.0.22:10250/pods", context=context, timeout=10)
    assert refused.value.code == 401  # verified TLS: the CA signed it; still no anonymous access
    pem = ssl.get_server_certificate(("10.240.0.22", 10250))
    sans = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "10.240.0.22" in [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)]
    assert "kube.node02" in sans.value.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("node", sorted(NODES))
def test_the_apiserver_reaches_each_kubelet_over_verified_tls(
    cluster: Path, lab: Lab, node: str
) -> None:
    """The node proxy: the apiserver dials the kubelet, verifies its certificate against the
    cluster CA (--kubelet-certificate-authority) and shows its own client certificate, which
    the kubelet authenticates (x509) and authorizes (webhook)."""
    assert kubectl(lab, "get", "--raw", f"/api/v1/nodes/{node}/proxy/healthz") == "ok"
    pods = json.loads(kubectl(lab, "get", "--raw", f"/api/v1/nodes/{node}/proxy/pods"))
    assert pods["kind"] == "PodList"


def test_a_kubelet_follows_its_runtime(cluster: Path, lab: Lab) -> None:
    node = "kube.node01"
    wait_for(lambda: node_ready(lab, node))
    lab.ssh(node, ["systemctl", "stop", "containerd"])
    try:
        wait_for(lambda: not node_ready(lab, node))
        healthz = lab.ssh(node, ["curl", "-sS", "http://127.0.0.1:10248/healthz"])
        assert healthz.stdout == "ok", "the kubelet itself stays up and posts the node's status"
    finally:
        lab.ssh(node, ["systemctl", "start", "containerd"])
    wait_for(lambda: node_ready(lab, node))


def test_verify_judges_the_real_cluster_ok_with_the_kubelet_checks(
    cluster: Path, tmp_path: Path
) -> None:
    report = tmp_path / "verify.json"
    assert verify.main(["-i", str(cluster), "--quiet", "--json", str(report)]) == 0
    records = json.loads(report.read_text())["records"]
    findings = [f for r in records if isinstance(r["data"], list) for f in r["data"]]
    anonymous = sorted(
        (f["host"], f["status"]) for f in findings if f["check"] == "kubelet-anonymous"
    )
    assert anonymous == [(node, "OK") for node in sorted(NODES)]


def test_the_lab_gives_each_node_what_a_kubelet_needs(cluster: Path, lab: Lab) -> None:
    script = (
        "test -c /dev/kmsg && echo kmsg; "
        "mkdir /sys/fs/cgroup/memory/kubenorn-probe && rmdir /sys/fs/cgroup/memory/kubenorn-probe"
        " && echo memory-cgroup-writable; "
        "cat /proc/sys/vm/overcommit_memory /proc/sys/kernel/panic /proc/sys/kernel/panic_on_oops; "
        "findmnt -n -o FSTYPE /var/lib/containerd"
    )
    out = lab.ssh("kube.node02", ["sh", "-c", script]).stdout.split()
    assert out[:5] == ["kmsg", "memory-cgroup-writable", "1", "10", "1"]
    assert out[5] != "overlay"
