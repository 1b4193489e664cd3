"""The 1.6 reference profile on the lab: simulators (the only ones left) on bookworm hosts.

The module switches the lab to lab/inventory-1.6: the same host names and addresses boot from
the bookworm root filesystem, while the trixie hosts (and the real cluster on them) are stopped
with their state kept. At the end the trixie hosts boot again, and the real cluster must verify
OK with no deploy: a power cycle it has to survive anyway.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lab_support import (
    NODES,
    changed_records,
    inventory_with,
    main_pids,
    verdict,
    verifies_ok_within,
    warnings,
)

from kubenorn.cluster import load_cluster
from lab.machine import Lab
from runbooks import deploy, drill, pki, verify

CONTROLLER = "kube.controller01"


@pytest.fixture(scope="module")
def reference(lab: Lab, lab_inventory: Path) -> Iterator[Path]:
    inventory = lab_inventory.parent / "inventory-1.6"
    Lab.load(inventory).up()
    try:
        assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
        yield inventory
    finally:
        lab.up()  # the trixie hosts again, their cluster as it was
    assert verifies_ok_within(lab_inventory, 120)


def kubectl(lab: Lab, *args: str):  # noqa: ANN201
    return lab.ssh(
        CONTROLLER, ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", *args]
    )


def test_the_hosts_run_bookworm_and_the_binaries_are_simulators(reference: Path, lab: Lab) -> None:
    release = lab.ssh(CONTROLLER, ["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"])
    assert release.stdout.strip() == "bookworm"
    version = lab.ssh(CONTROLLER, ["kube-apiserver", "--version"]).stdout
    assert version.strip() == "Kubernetes v1.6.0"
    description = lab.ssh(
        CONTROLLER, ["dpkg-query", "-W", "-f", "${Description}", "kube-apiserver"]
    ).stdout
    assert "SIMULATOR" in description


def test_kubectl_gets_namespaces_and_nodes_through_the_simulator(reference: Path, lab: Lab) -> None:
    assert "kube-system" in kubectl(lab, "get", "namespaces").stdout
    nodes = kubectl(lab, "get", "nodes")
    assert nodes.returncode == 0 and "kube.node03" in nodes.stdout, nodes.stderr


def test_a_second_deploy_changes_nothing_and_verify_is_ok(
    reference: Path, lab: Lab, tmp_path: Path
) -> None:
    before = main_pids(lab)
    assert changed_records(reference, tmp_path / "again.json") == []
    assert main_pids(lab) == before
    assert verifies_ok_within(reference, 30)
    assert verify.main(["-i", str(reference), "--quiet", "--json", str(tmp_path / "v.json")]) == 0
    records = json.loads((tmp_path / "v.json").read_text())["records"]
    findings = [f for r in records if isinstance(r["data"], list) for f in r["data"]]
    tcp = [f for f in findings if f["check"] == "runtime.tcp"]
    assert sorted((f["host"], f["status"]) for f in tcp) == [(n, "OK") for n in NODES]
    listening = lab.ssh(CONTROLLER, ["ss", "-ltn"]).stdout
    assert "127.0.0.1:8080 " in listening and "0.0.0.0:8080 " not in listening


def test_a_stopped_docker_is_named_by_verify(
    reference: Path, lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.ssh("kube.node02", ["systemctl", "stop", "docker.socket", "docker"])
    try:
        capsys.readouterr()
        assert verify.main(["-i", str(reference), "--quiet"]) == 1
        out = capsys.readouterr().out
        assert verdict(out) == "WARNING"
        problems = warnings(out)
        assert problems and all("kube.node02" in line for line in problems), problems
    finally:
        lab.ssh("kube.node02", ["systemctl", "start", "docker"])
    assert verifies_ok_within(reference, 30)


@pytest.mark.parametrize("scenario", ["scheduler", "controller-manager", "apiserver"])
def test_the_drill_passes(reference: Path, scenario: str) -> None:
    assert drill.main(["-i", str(reference), "--quiet", scenario]) == 0, scenario
    assert verifies_ok_within(reference, 30)


def node_status(lab: Lab, node: str) -> str:
    fields = kubectl(lab, "get", "node", node, "--no-headers").stdout.split()
    return fields[1] if len(fields) > 1 else ""


def wait_for_status(lab: Lab, node: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while node_status(lab, node) != status:
        assert time.monotonic() < deadline, f"{node} never became {status}"
        time.sleep(1)


def test_a_simulated_kubelet_follows_docker(reference: Path, lab: Lab) -> None:
    node = "kube.node01"
    wait_for_status(lab, node, "Ready")
    lab.ssh(node, ["systemctl", "stop", "docker.socket", "docker"])
    try:
        wait_for_status(lab, node, "NotReady")
    finally:
        lab.ssh(node, ["systemctl", "start", "docker"])
    wait_for_status(lab, node, "Ready")


def docker_api_says(address: str, pki: Path, client: str | None) -> str:
    """The status line docker's TCP API gives a TLS client showing `client`'s certificate."""
    context = ssl.create_default_context(cafile=pki / "docker-ca.crt")
    if client is not None:
        context.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
    try:
        with (
            socket.create_connection((address, 2376), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=address) as tls,
        ):
            tls.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
            return tls.recv(64).decode(errors="replace").split("\r\n")[0]
    except OSError as error:  # TLS 1.3 reports a refused client certificate on first read
        return f"refused: {error}"


def docker_tcp_takes_only_kubenorns_client_certificate(inventory: Path, lab: Lab) -> None:
    model = load_cluster(inventory)
    for node in model.nodes:
        address = str(node.address)
        sockets = lab.ssh(node.name, ["ss", "-ltnp"]).stdout.splitlines()
        assert [line.split()[3] for line in sockets if "dockerd" in line] == [f"{address}:2376"]
        assert " 200 " in docker_api_says(address, model.pki.dir, "docker-client")
        # The cluster CA's admin identity is not docker's: no Kubernetes credential is root.
        assert docker_api_says(address, model.pki.dir, "admin").startswith("refused")
        assert docker_api_says(address, model.pki.dir, None).startswith("refused")


def docker_pids(lab: Lab) -> dict[str, str]:
    show = ["systemctl", "show", "--property=MainPID", "--value", "docker"]
    return {node: lab.ssh(node, show).stdout.strip() for node in NODES}


def test_a_renewed_docker_certificate_restarts_that_docker_only(reference: Path, lab: Lab) -> None:
    inventory = reference
    before, docker_before = main_pids(lab), docker_pids(lab)
    assert pki.main(["-i", str(inventory), "rotate", "docker-server-kube.node01"]) == 0
    assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    docker_after = docker_pids(lab)
    assert docker_after.pop("kube.node01") != docker_before.pop("kube.node01")
    assert docker_after == docker_before
    assert main_pids(lab) == before
    docker_tcp_takes_only_kubenorns_client_certificate(inventory, lab)


def test_turning_docker_tcp_off_removes_the_listener_and_on_puts_it_back(
    reference: Path, lab: Lab, tmp_path: Path
) -> None:
    inventory = reference
    docker = yaml.safe_load((inventory / "defaults.yaml").read_text())["data"]["runtime"]["docker"]
    no_tcp = inventory_with(inventory, tmp_path, "runtime", docker={**docker, "tcp": None})
    assert deploy.main(["-i", str(no_tcp), "--quiet"]) == 0
    for node in NODES:
        assert "dockerd" not in lab.ssh(node, ["ss", "-ltnp"]).stdout, node
        dropin = "/etc/systemd/system/docker.service.d/kubenorn.conf"
        assert lab.ssh(node, ["test", "-e", dropin]).returncode == 1, node
    assert verifies_ok_within(no_tcp, 30)
    assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    docker_tcp_takes_only_kubenorns_client_certificate(inventory, lab)


def test_docker_tcp_takes_only_kubenorns_client_certificate(reference: Path, lab: Lab) -> None:
    docker_tcp_takes_only_kubenorns_client_certificate(reference, lab)
