"""The nodes' runtime and load balancer on the lab: deploy, idempotence, a runtime stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbooks import deploy, verify

NODES = ["kube.node01", "kube.node02", "kube.node03"]


@pytest.fixture(scope="module")
def cluster(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def test_every_node_runs_containerd_and_haproxy(cluster: Path, lab) -> None:  # noqa: ANN001
    for node in NODES:
        states = lab.ssh(node, ["systemctl", "is-active", "containerd", "haproxy"]).stdout.split()
        assert states == ["active", "active"], node
        config = lab.ssh(node, ["cat", "/etc/haproxy/haproxy.cfg"]).stdout
        assert "server kube.controller02 10.240.0.12:6443" in config


def test_a_second_full_deploy_changes_nothing(cluster: Path, tmp_path: Path) -> None:
    report = tmp_path / "deploy.json"
    assert deploy.main(["-i", str(cluster), "--quiet", "--json", str(report)]) == 0
    changed = [r for r in json.loads(report.read_text())["records"] if r["changed"]]
    assert changed == []


def test_a_stopped_runtime_is_a_warning_naming_the_node_and_check(
    cluster: Path,
    lab,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    lab.ssh("kube.node02", ["systemctl", "stop", "containerd"])
    try:
        assert verify.main(["-i", str(cluster), "--quiet"]) == 1
        out = capsys.readouterr().out
        problems = [line for line in out.splitlines() if line.startswith("WARNING")]
        assert len(problems) == 1 and "kube.node02" in problems[0] and "runtime" in problems[0]
    finally:
        lab.ssh("kube.node02", ["systemctl", "start", "containerd"])
    assert verify.main(["-i", str(cluster), "--quiet"]) == 0


def test_the_reference_profile_runs_docker_on_its_unix_socket_only(
    cluster: Path,
    lab,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    reference = cluster.parent / "inventory-1.6"
    try:
        assert deploy.main(["-i", str(reference), "--quiet"]) == 0
        report = tmp_path / "again.json"
        assert deploy.main(["-i", str(reference), "--quiet", "--json", str(report)]) == 0
        assert [r for r in json.loads(report.read_text())["records"] if r["changed"]] == []
        assert verify.main(["-i", str(reference), "--quiet"]) == 0
        for node in NODES:
            listening = lab.ssh(node, ["ss", "-ltnp"]).stdout
            assert "dockerd" not in listening, f"{node}: docker listens on TCP"
            assert lab.ssh(node, ["systemctl", "is-active", "docker"]).stdout.strip() == "active"
    finally:
        assert deploy.main(["-i", str(cluster), "--quiet"]) == 0
