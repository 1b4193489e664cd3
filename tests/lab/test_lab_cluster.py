"""The whole cluster on the lab, in both version profiles: deploy, idempotence, failures, drills.

The module deploys the current profile (lab/inventory) once; the reference-profile test
deploys lab/inventory-1.6 onto the same hosts and puts the current profile back afterwards.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
import yaml
from lab_support import inventory_with

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import init_nornir
from runbooks import deploy, drill, pki, verify
from tasks.pki import ensure_certificates

NODES = ["kube.node01", "kube.node02", "kube.node03"]
CONTROLLERS = ["kube.controller01", "kube.controller02", "kube.controller03"]
UNITS = {
    "controller": ["etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"],
    "node": ["haproxy", "kubelet", "kube-proxy"],
}


@pytest.fixture(scope="module")
def cluster(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def main_pids(lab) -> dict[str, str]:  # noqa: ANN001
    """unit@host -> its main PID, for every service a deploy manages."""
    pids = {}
    for role, hosts in (("controller", CONTROLLERS), ("node", NODES)):
        for host in hosts:
            command = ["systemctl", "show", "--property=MainPID", "--value", *UNITS[role]]
            for unit, pid in zip(UNITS[role], lab.ssh(host, command).stdout.split(), strict=True):
                pids[f"{unit}@{host}"] = pid
    return pids


def changed_records(inventory: Path, report: Path) -> list[dict]:  # type: ignore[type-arg]
    assert deploy.main(["-i", str(inventory), "--quiet", "--json", str(report)]) == 0
    return [r for r in json.loads(report.read_text())["records"] if r["changed"]]


def verifies_ok_within(inventory: Path, seconds: float) -> bool:
    """Whether verify exits 0 within `seconds` (a node reports Ready at its next heartbeat)."""
    deadline = time.monotonic() + seconds
    while verify.main(["-i", str(inventory), "--quiet"]) != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("WARNING")]


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


def docker_tcp_takes_only_kubenorns_client_certificate(inventory: Path, lab) -> None:  # noqa: ANN001
    model = load_cluster(inventory)
    for node in model.nodes:
        address = str(node.address)
        sockets = lab.ssh(node.name, ["ss", "-ltnp"]).stdout.splitlines()
        assert [line.split()[3] for line in sockets if "dockerd" in line] == [f"{address}:2376"]
        assert " 200 " in docker_api_says(address, model.pki.dir, "docker-client")
        # The cluster CA's admin identity is not docker's: no Kubernetes credential is root.
        assert docker_api_says(address, model.pki.dir, "admin").startswith("refused")
        assert docker_api_says(address, model.pki.dir, None).startswith("refused")


def docker_pids(lab) -> dict[str, str]:  # noqa: ANN001
    show = ["systemctl", "show", "--property=MainPID", "--value", "docker"]
    return {node: lab.ssh(node, show).stdout.strip() for node in NODES}


def a_renewed_docker_certificate_restarts_that_docker_only(inventory: Path, lab) -> None:  # noqa: ANN001
    before, docker_before = main_pids(lab), docker_pids(lab)
    assert pki.main(["-i", str(inventory), "rotate", "docker-server-kube.node01"]) == 0
    assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    docker_after = docker_pids(lab)
    assert docker_after.pop("kube.node01") != docker_before.pop("kube.node01")
    assert docker_after == docker_before
    assert main_pids(lab) == before
    docker_tcp_takes_only_kubenorns_client_certificate(inventory, lab)


def turning_docker_tcp_off_removes_the_listener(inventory: Path, lab, tmp_path: Path) -> None:  # noqa: ANN001
    docker = yaml.safe_load((inventory / "defaults.yaml").read_text())["data"]["runtime"]["docker"]
    no_tcp = inventory_with(inventory, tmp_path, "runtime", docker={**docker, "tcp": None})
    assert deploy.main(["-i", str(no_tcp), "--quiet"]) == 0
    for node in NODES:
        assert "dockerd" not in lab.ssh(node, ["ss", "-ltnp"]).stdout, node
        dropin = "/etc/systemd/system/docker.service.d/kubenorn.conf"
        assert lab.ssh(node, ["test", "-e", dropin]).returncode == 1, node
    assert verifies_ok_within(no_tcp, 30)


def test_the_deployed_cluster_verifies_ok(cluster: Path, lab) -> None:  # noqa: ANN001
    assert verify.main(["-i", str(cluster), "--quiet"]) == 0
    nodes = lab.ssh(
        "kube.controller02",
        ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", "get", "nodes"],
    ).stdout
    assert all(f"{node}   Ready" in nodes for node in NODES), nodes


def test_a_second_deploy_changes_nothing_and_restarts_nothing(
    cluster: Path,
    lab,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    before = main_pids(lab)
    assert "0" not in before.values(), before
    assert changed_records(cluster, tmp_path / "again.json") == []
    assert main_pids(lab) == before


def test_a_changed_lease_is_a_dry_run_diff_then_rolls_only_the_elected_components(
    cluster: Path,
    lab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    election = {"lease_duration": "5s", "renew_deadline": "3s", "retry_period": "1s"}
    changed = inventory_with(cluster, tmp_path, "kubernetes", leader_election=election)
    before = main_pids(lab)
    capsys.readouterr()
    assert deploy.main(["-i", str(changed), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-  --leader-elect-lease-duration=4s" in out
    assert "+  --leader-elect-lease-duration=5s" in out
    assert out.count("would restart kube-scheduler.service") == 3
    assert out.count("would restart kube-controller-manager.service") == 3
    assert "would restart kube-apiserver.service" not in out
    assert main_pids(lab) == before
    try:
        assert deploy.main(["-i", str(changed), "--quiet"]) == 0
        after = main_pids(lab)
        restarted = sorted(unit for unit in before if after[unit] != before[unit])
        assert restarted == sorted(
            f"{unit}@{host}"
            for unit in ("kube-scheduler", "kube-controller-manager")
            for host in CONTROLLERS
        )
    finally:
        assert deploy.main(["-i", str(cluster), "--quiet"]) == 0
    assert verifies_ok_within(cluster, 30)


def test_a_dry_run_before_any_pki_shows_every_restart_and_changes_nothing(
    cluster: Path,
    lab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    fresh = inventory_with(cluster, tmp_path, "pki", dir=str(tmp_path / "never-issued"))
    before = main_pids(lab)
    capsys.readouterr()
    assert deploy.main(["-i", str(fresh), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "items would be issued or renewed" in out
    for unit in ("etcd", "kube-apiserver", "kube-scheduler", "kubelet", "kube-proxy"):
        assert out.count(f"would restart {unit}.service") == 3, unit
    assert not (tmp_path / "never-issued").exists()
    assert main_pids(lab) == before
    assert changed_records(cluster, tmp_path / "after.json") == []


def test_certificates_from_a_run_that_died_still_restart_their_readers_next_time(
    cluster: Path,
    lab,  # noqa: ANN001
) -> None:
    before = main_pids(lab)
    assert pki.main(["-i", str(cluster), "rotate", "kubelet-server-kube.node02"]) == 0
    # A run that wrote the new certificate, then died before the kubelet's steps.
    nr = init_nornir(cluster).filter(name="kube.node02")
    assert not nr.run(task=ensure_certificates).failed
    nr.close_connections(on_good=True, on_failed=True)
    assert deploy.main(["-i", str(cluster), "--quiet"]) == 0
    after = main_pids(lab)
    restarted = {unit for unit, pid in after.items() if before[unit] != pid}
    assert restarted == {"kubelet@kube.node02", "kube-proxy@kube.node02"}
    assert verifies_ok_within(cluster, 30)


def test_a_stopped_runtime_fails_verify_naming_the_node_and_check(
    cluster: Path,
    lab,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    lab.ssh("kube.node02", ["systemctl", "stop", "containerd"])
    try:
        assert verify.main(["-i", str(cluster), "--quiet"]) == 1
        problems = warnings(capsys.readouterr().out)
        assert problems and all("kube.node02" in line for line in problems), problems
        assert any("runtime" in line for line in problems), problems
    finally:
        lab.ssh("kube.node02", ["systemctl", "start", "containerd"])
    assert verifies_ok_within(cluster, 30)


def test_one_apiserver_down_is_a_warning_while_the_load_balancer_serves(
    cluster: Path,
    lab,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    lab.ssh("kube.controller03", ["systemctl", "stop", "kube-apiserver"])
    try:
        assert verify.main(["-i", str(cluster), "--quiet"]) == 1
        problems = warnings(capsys.readouterr().out)
        assert problems and all("kube.controller03" in line for line in problems), problems
        assert any("kube-apiserver" in line for line in problems), problems
        for node in NODES:
            answer = lab.ssh(
                node,
                [
                    "curl", "-sS", "--cacert", "/etc/kubernetes/ssl/ca.crt",
                    "https://kube.apiserver:6443/healthz",
                ],
            )  # fmt: skip
            assert answer.stdout.strip() == "ok", node
    finally:
        lab.ssh("kube.controller03", ["systemctl", "start", "kube-apiserver"])
    assert verifies_ok_within(cluster, 30)


@pytest.mark.parametrize("scenario", ["scheduler", "controller-manager", "apiserver"])
def test_the_drill_passes(cluster: Path, scenario: str) -> None:
    assert drill.main(["-i", str(cluster), "--quiet", scenario]) == 0
    assert verifies_ok_within(cluster, 30)


def test_the_reference_profile_deploys_verifies_and_survives_its_drills(
    cluster: Path,
    lab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    reference = cluster.parent / "inventory-1.6"
    try:
        assert deploy.main(["-i", str(reference), "--quiet"]) == 0
        assert changed_records(reference, tmp_path / "again.json") == []
        assert verifies_ok_within(reference, 30)
        assert (
            verify.main(["-i", str(reference), "--quiet", "--json", str(tmp_path / "v.json")]) == 0
        )
        records = json.loads((tmp_path / "v.json").read_text())["records"]
        findings = [f for r in records if isinstance(r["data"], list) for f in r["data"]]
        tcp = [f for f in findings if f["check"] == "runtime.tcp"]
        assert sorted((f["host"], f["status"]) for f in tcp) == [(n, "OK") for n in NODES]
        version = lab.ssh("kube.controller01", ["kube-apiserver", "--version"]).stdout
        assert version.strip() == "Kubernetes v1.6.0"
        listening = lab.ssh("kube.controller01", ["ss", "-ltn"]).stdout
        assert "127.0.0.1:8080 " in listening and "0.0.0.0:8080 " not in listening
        docker_tcp_takes_only_kubenorns_client_certificate(reference, lab)
        lab.ssh("kube.node02", ["systemctl", "stop", "docker.socket", "docker"])
        try:
            capsys.readouterr()
            assert verify.main(["-i", str(reference), "--quiet"]) == 1
            problems = warnings(capsys.readouterr().out)
            assert problems and all("kube.node02" in line for line in problems), problems
        finally:
            lab.ssh("kube.node02", ["systemctl", "start", "docker"])
        assert verifies_ok_within(reference, 30)
        for scenario in ("scheduler", "controller-manager", "apiserver"):
            assert drill.main(["-i", str(reference), "--quiet", scenario]) == 0, scenario
        a_renewed_docker_certificate_restarts_that_docker_only(reference, lab)
        turning_docker_tcp_off_removes_the_listener(reference, lab, tmp_path)
    finally:
        assert deploy.main(["-i", str(cluster), "--quiet"]) == 0
    assert verifies_ok_within(cluster, 30)
