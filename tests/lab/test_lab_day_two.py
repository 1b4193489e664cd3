"""Day two on the lab: a spare host joins as a fourth node and leaves again.

The spare (`lab up --extra 1`: kube.extra01, sshd and systemd only) goes into a copy of the lab
inventory (its PKI state too, so the cluster's CAs are the same); `node add` deploys it alone
and nothing else restarts; verify counts it (its smoke pod included); `node remove` drains and
resets it, and a deploy of the copy without it makes the others forget it. The lab's own
inventory is deployed again at the end, and the spare goes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lab_support import admin_kubectl, verifies_ok_within

from runbooks import deploy, node, verify

NEW = "kube.extra01"
UNITS = {
    "kube.controller01": ["etcd.service", "kube-apiserver.service", "kube-scheduler.service"],
    "kube.node01": ["kubelet.service", "kube-proxy.service", "containerd.service"],
    "kube.node02": ["kubelet.service", "kube-proxy.service", "haproxy.service"],
}


def main_pids(lab) -> dict[str, str]:  # noqa: ANN001
    """Each watched unit's main PID: a restart changes it."""
    pids = {}
    for host, units in UNITS.items():
        shown = ["systemctl", "show", "--property=MainPID", "--value", *units]
        pids[host] = lab.ssh(host, shown).stdout
    return pids


@pytest.fixture(scope="module")
def grown(lab, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # noqa: ANN001
    """A copy of the deployed lab inventory with the spare host as a fourth node."""
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    lab.up(extra=1)
    copy = tmp_path_factory.mktemp("day-two") / "inventory"
    shutil.copytree(lab_inventory, copy, ignore=shutil.ignore_patterns(".backups", ".restore"))
    hosts = yaml.safe_load((copy / "hosts.yaml").read_text())
    spare = lab.settings.host(NEW)
    data = {"address": spare.address, "pod_cidr": "10.200.4.0/24"}
    hosts[NEW] = {"hostname": spare.address, "groups": ["nodes"], "data": data}
    (copy / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    try:
        yield copy
    finally:  # the Node object too, whatever the tests got to
        admin_kubectl(lab, "delete", "node", NEW, "--ignore-not-found")
        lab.remove_extras()
        assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0  # the others forget it
        assert verifies_ok_within(lab_inventory, 120)


def test_a_node_joins_with_nothing_else_restarted_and_verify_counts_it(
    lab,  # noqa: ANN001
    grown: Path,
) -> None:
    before = main_pids(lab)
    assert node.main(["add", NEW, "-i", str(grown), "--quiet"]) == 0
    assert main_pids(lab) == before, "a component outside the new node restarted"
    listed = admin_kubectl(lab, "get", "nodes", "-o", "name").split()
    assert f"node/{NEW}" in listed and len(listed) == 4
    assert verify.main(["-i", str(grown), "--quiet"]) == 0  # its smoke pod, its routes too


def test_a_node_leaves_drained_and_the_others_forget_it(lab, grown: Path) -> None:  # noqa: ANN001
    assert node.main(["remove", NEW, "-i", str(grown), "--quiet"]) == 0
    assert f"node/{NEW}" not in admin_kubectl(lab, "get", "nodes", "-o", "name").split()
    left = lab.ssh(NEW, ["systemctl", "is-active", "kubelet.service", "kube-proxy.service"])
    assert left.stdout.split() == ["inactive", "inactive"]
    hosts = yaml.safe_load((grown / "hosts.yaml").read_text())
    del hosts[NEW]
    (grown / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    assert deploy.main(["-i", str(grown), "--quiet"]) == 0
    routes = lab.ssh("kube.node01", ["ip", "-4", "route", "show", "10.200.4.0/24"]).stdout
    assert routes == "", "the others still route the gone node's pods"
    assert verifies_ok_within(grown, 120)
