"""The fault suite: each fault of lab/faults.py injected on the lab, judged on what verify said
(exit, the host and check it named, how soon), what was lost, and whether the cluster came back
(by itself, or by deploy where kubenorn manages what broke)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenorn.cluster import load_cluster
from lab import faults
from lab.machine import Lab
from runbooks import deploy

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def cluster(lab: Lab, lab_inventory: Path) -> Iterator[Path]:
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    assert faults.until_ok(lab_inventory) is not None
    yield lab_inventory
    # The kills leave the copies' log levels deployed; the inventory's own come back.
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0


def test_an_etcd_leader_killed_under_writes_loses_no_acknowledged_write(
    lab: Lab, cluster: Path
) -> None:
    row = faults.etcd_leader_killed_under_writes(lab, cluster)
    assert row.lost.startswith("0 of "), row.lost
    assert "writes resumed after" in row.lost  # the cluster kept taking writes
    assert row.recovered_s is not None


def test_a_partitioned_etcd_member_refuses_writes_is_named_and_rejoins(
    lab: Lab, cluster: Path
) -> None:
    row = faults.etcd_member_partitioned(lab, cluster)
    assert row.named.startswith("kube.controller03 "), row.findings
    assert row.verify_exit in (1, 2)
    assert row.lost == "minority refused writes"
    assert row.recovered_s is not None


def test_a_full_etcd_data_disk_is_named_and_freeing_it_brings_the_member_back(
    lab: Lab, cluster: Path
) -> None:
    row = faults.etcd_disk_full(lab, cluster)
    disk = [
        f for f in row.findings if f["host"] == "kube.controller03" and f["check"] == "etcd.disk"
    ]
    assert [f["status"] for f in disk] == ["CRITICAL"], row.findings
    assert "too little for etcd's next 64 MB WAL segment" in disk[0]["detail"]
    assert row.verify_exit == 2
    assert row.lost.startswith("0 of "), row.lost
    assert row.recovered_s is not None


def test_a_node_cut_off_from_the_controllers_is_named_and_comes_back(
    lab: Lab, cluster: Path
) -> None:
    row = faults.node_partitioned(lab, cluster)
    assert row.named.startswith("kube.node03 "), row.findings
    assert row.verify_exit in (1, 2)
    assert row.recovered_s is not None


@pytest.mark.parametrize(
    ("scenario", "host"),
    [
        (faults.apiserver_stopped, "kube.controller02"),
        (faults.component_config_corrupted, "kube.controller01"),
    ],
)
def test_what_kubenorn_manages_is_named_by_verify_and_repaired_by_deploy(
    lab: Lab,
    cluster: Path,
    scenario,
    host: str,  # noqa: ANN001
) -> None:
    row = scenario(lab, cluster)
    assert row.named.startswith(f"{host} "), row.findings
    assert row.verify_exit == 1  # one of three controllers: WARNING, the cluster serves
    assert row.recovered_by == "deploy"
    assert row.recovered_s is not None


def test_a_wrong_host_key_is_named_and_the_host_not_trusted(lab: Lab, cluster: Path) -> None:
    row = faults.wrong_host_key(lab, cluster)
    assert row.named.startswith("kube.node02 "), row.findings
    details = [f["detail"] for f in row.findings if f["host"] == "kube.node02"]
    assert any("host key" in d.lower() for d in details), details
    assert row.verify_exit == 3


@pytest.mark.parametrize("shift", faults.SHIFTS)
def test_a_host_certificate_out_of_its_validity_is_named_with_its_file_and_redeployed(
    lab: Lab, cluster: Path, shift: str
) -> None:
    row = faults.certificate_shifted_on_host(lab, cluster, shift)
    host = "kube.controller02"
    path = posixpath.join(load_cluster(cluster).etcd.cert_dir, "server.crt")
    expiry = [f for f in row.findings if f["host"] == host and f["check"] == "pki.expiry"]
    assert [f["status"] for f in expiry] == ["CRITICAL"], row.findings
    assert expiry[0]["detail"].startswith(f"{path}: "), expiry
    assert row.verify_exit == 2
    assert row.recovered_by == "deploy"
    assert row.recovered_s is not None


@pytest.mark.parametrize("shift", faults.SHIFTS)
def test_a_state_certificate_out_of_its_validity_is_named_by_preflight_and_reissued(
    lab: Lab, cluster: Path, shift: str
) -> None:
    row = faults.certificate_shifted_in_state(lab, cluster, shift)
    assert row.named == "kube.node01 pki.expiry", row.findings
    expiry = next(f for f in row.findings if f["check"] == "pki.expiry")
    assert expiry["detail"].startswith(".pki/kubelet-server-kube.node01.crt: "), expiry
    assert row.verify_exit == 2  # preflight's exit: CRITICAL
    assert row.recovered_by == "deploy"
    assert row.recovered_s is not None


def test_after_a_power_cycle_the_cluster_comes_back_by_itself(lab: Lab, cluster: Path) -> None:
    row = faults.power_cycle(lab, cluster)
    assert row.recovered_s is not None
    assert row.verify_exit == 0


KILLS = [name for name in faults.SCENARIOS if name.startswith("deploy-kill-")]


@pytest.mark.parametrize("scenario", KILLS)
def test_a_deploy_killed_at_any_point_converges_on_the_next_run(
    lab: Lab, cluster: Path, scenario: str
) -> None:
    row = faults.SCENARIOS[scenario](lab, cluster)
    assert row.named == "", row.named  # the hook did kill the deploy
    assert row.recovered_by == "deploy"
    assert row.lost == "no temporary file left"
    assert row.verify_exit == 0, [f for f in row.findings if f["status"] != "OK"]
