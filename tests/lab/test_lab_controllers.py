"""Day two for controllers on the lab: a controller whose disk is gone is rebuilt under its
name and address, and a fourth controller joins and leaves; etcd's member list is counted at
every stage, and writes keep being acknowledged while a member is replaced (quorum kept).

The fourth controller is a spare host (`lab up --extra 1`: kube.extra01) in a copy of the lab
inventory (its PKI state too, so the cluster's CAs are the same). The lab's own inventory is
deployed again at the end, and the spare goes.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lab_support import verifies_ok_within

from kubenorn.cluster import load_cluster
from kubenorn.etcd_client import EtcdUnavailable, endpoints
from runbooks import deploy, node
from tasks.etcd import client_tls
from tasks.etcdctl import etcdctl_command, parse_members

PURGED = "kube.controller03"
NEW = "kube.extra01"
FIRST = "kube.controller01"


def etcd_members(lab, inventory: Path) -> dict[str, int]:  # noqa: ANN001
    """The members etcd lists (name: ID), asked on the first controller."""
    cluster = load_cluster(inventory)
    tls = client_tls(cluster, cluster.host(FIRST))
    argv = etcdctl_command(tls, ["https://127.0.0.1:2379"], "member", "list")
    listed = lab.ssh(FIRST, argv)
    assert listed.returncode == 0, listed.stderr
    return {m.name: m.member_id for m in parse_members(listed.stdout)}


class Writer:
    """Puts a key every 0.2 s through the first two members (the second when the first does
    not answer, as an apiserver's client would) and counts the writes neither acknowledged."""

    def __init__(self, inventory: Path) -> None:
        self.clients = endpoints(load_cluster(inventory), timeout=5.0)[:2]
        self.prefix = "/kubenorn-test/replace/"
        self.acknowledged = self.lost = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            key = f"{self.prefix}{self.acknowledged + self.lost}"
            if any(self._put(client, key) for client in self.clients):
                self.acknowledged += 1
            else:
                self.lost += 1

    @staticmethod
    def _put(client, key: str) -> bool:  # noqa: ANN001
        try:
            client.put(key, "x")
        except EtcdUnavailable:
            return False
        return True


def test_a_controller_whose_disk_is_gone_is_rebuilt_under_its_name(
    lab,  # noqa: ANN001
    lab_inventory: Path,
) -> None:
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    before = etcd_members(lab, lab_inventory)
    assert len(before) == 3
    lab.purge_host(PURGED)
    assert etcd_members(lab, lab_inventory) == before, "etcd forgot the member by itself"
    with Writer(lab_inventory) as writes:
        assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    after = etcd_members(lab, lab_inventory)
    assert sorted(after) == sorted(before)
    assert after[PURGED] != before[PURGED], "the member was not removed and added back"
    assert writes.acknowledged > 0 and writes.lost == 0, f"{writes.lost} writes lost"
    initial = lab.ssh(PURGED, ["cat", "/etc/etcd/etcd-initial.conf"]).stdout
    assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in initial
    assert verifies_ok_within(lab_inventory, 180)
    writes.clients[0].delete_prefix(writes.prefix)


@pytest.fixture(scope="module")
def grown(lab, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # noqa: ANN001
    """A copy of the deployed lab inventory with the spare host as a fourth controller."""
    lab.up(extra=1)
    copy = tmp_path_factory.mktemp("controllers") / "inventory"
    shutil.copytree(lab_inventory, copy, ignore=shutil.ignore_patterns(".backups", ".restore"))
    hosts = yaml.safe_load((copy / "hosts.yaml").read_text())
    spare = lab.settings.host(NEW)
    entry = {"hostname": spare.address, "groups": ["etcd", "controllers"]}
    hosts[NEW] = {**entry, "data": {"address": spare.address}}
    (copy / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    try:
        yield copy
    finally:
        lab.remove_extras()
        assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
        assert verifies_ok_within(lab_inventory, 180)


def test_a_fourth_controller_joins_and_leaves(lab, grown: Path) -> None:  # noqa: ANN001
    assert deploy.main(["-i", str(grown), "--quiet"]) == 0
    assert sorted(etcd_members(lab, grown)) == sorted([*load_names(grown)])
    assert len(etcd_members(lab, grown)) == 4
    assert verifies_ok_within(grown, 180)
    assert node.main(["remove", NEW, "-i", str(grown), "--quiet"]) == 0
    assert NEW not in etcd_members(lab, grown)
    assert len(etcd_members(lab, grown)) == 3
    left = lab.ssh(NEW, ["systemctl", "is-active", "etcd.service", "kube-apiserver.service"])
    assert left.stdout.split() == ["inactive", "inactive"]
    hosts = yaml.safe_load((grown / "hosts.yaml").read_text())
    del hosts[NEW]
    (grown / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    assert deploy.main(["-i", str(grown), "--quiet"]) == 0
    assert verifies_ok_within(grown, 180)


def load_names(inventory: Path) -> list[str]:
    return [member.name for member in load_cluster(inventory).etcd.members]
