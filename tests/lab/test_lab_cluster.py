"""The whole cluster on the lab in the supported profile: deploy, idempotence, failures, drills.

The module deploys lab/inventory (real Kubernetes) once; test_lab_reference.py does the same for
the 1.6 reference profile on its own hosts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_support import (
    CONTROLLERS,
    NODES,
    changed_records,
    inventory_with,
    main_pids,
    verdict,
    verifies_ok_within,
    warnings,
)

from kubenorn.nornir_setup import init_nornir
from runbooks import deploy, drill, pki, verify
from tasks.pki import ensure_certificates


@pytest.fixture(scope="module")
def cluster(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


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
        capsys.readouterr()
        assert verify.main(["-i", str(cluster), "--quiet"]) == 1
        out = capsys.readouterr().out
        assert verdict(out) == "WARNING"
        problems = warnings(out)
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
        capsys.readouterr()
        assert verify.main(["-i", str(cluster), "--quiet"]) == 1
        out = capsys.readouterr().out
        assert verdict(out) == "WARNING"
        problems = warnings(out)
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
