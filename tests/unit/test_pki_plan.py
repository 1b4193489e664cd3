"""The PKI plan: which certificates, with which names and usages, go where with which modes."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml
from pki_support import INVENTORIES, inventory_copy

from kubenorn.cluster import load_cluster
from kubenorn.pki.placement import PlacementConflict, directories, placements
from kubenorn.pki.plan import certificates, kubeconfigs

CLUSTER = load_cluster(INVENTORIES / "good")
SPECS = {spec.name: spec for spec in certificates(CLUSTER)}


def test_every_certificate_the_issue_lists_is_planned() -> None:
    members = [f"kube.controller0{i}" for i in (1, 2, 3)]
    nodes = ["kube.node01", "kube.node02"]
    expected = {"ca", "etcd-ca", "apiserver", "apiserver-etcd-client", "etcd-healthcheck-client"}
    expected |= {"apiserver-kubelet-client", "admin", "kube-scheduler"}
    expected |= {"kube-controller-manager", "kube-proxy"}
    expected |= {f"etcd-{kind}-{m}" for kind in ("server", "peer") for m in members}
    expected |= {f"kubelet-{kind}-{n}" for kind in ("client", "server") for n in nodes}
    assert set(SPECS) == expected
    assert [s.name for s in certificates(CLUSTER)][:2] == ["ca", "etcd-ca"]


def test_apiserver_sans_cover_every_name_a_client_dials() -> None:
    spec = SPECS["apiserver"]
    for name in (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "kube.apiserver",
        "kube.controller02",
        "controller01.example.test",
    ):
        assert name in spec.dns_names
    for address in ("10.32.0.1", "10.99.0.11", "10.99.0.13", "127.0.0.1"):
        assert ip_address(address) in spec.ip_addresses
    assert (spec.usage, spec.signer) == ("server", "ca")


def test_etcd_member_certificates_name_the_member_and_serve_both_ends() -> None:
    for kind in ("server", "peer"):
        spec = SPECS[f"etcd-{kind}-kube.controller01"]
        assert spec.usage == "peer" and spec.signer == "etcd-ca"
        assert set(spec.dns_names) == {
            "kube.controller01",
            "controller01.example.test",
            "controller01",
            "localhost",
        }
        assert set(spec.ip_addresses) == {ip_address("10.99.0.11"), ip_address("127.0.0.1")}


def test_identities_of_kubelets_and_components() -> None:
    kubelet = SPECS["kubelet-client-kube.node02"]
    assert (kubelet.common_name, kubelet.organization) == (
        "system:node:kube.node02",
        "system:nodes",
    )
    assert SPECS["kube-proxy"].organization == "system:node-proxier"
    assert SPECS["kube-scheduler"].common_name == "system:kube-scheduler"
    assert SPECS["admin"].organization == "system:masters"
    assert SPECS["apiserver-etcd-client"].signer == "etcd-ca"
    serving = SPECS["kubelet-server-kube.node01"]
    assert serving.usage == "server" and serving.ip_addresses == (ip_address("10.99.0.21"),)


def test_kubeconfigs_for_components_and_each_kubelet() -> None:
    names = {k.name: k for k in kubeconfigs(CLUSTER)}
    assert set(names) == {
        "admin",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-proxy",
        "kubelet-kube.node01",
        "kubelet-kube.node02",
    }
    assert names["kubelet-kube.node01"].user == "system:node:kube.node01"


def paths(host: str) -> dict[str, tuple[str, str, str, str]]:
    return {
        p.path: (p.kind, p.source, p.mode, p.owner) for p in placements(CLUSTER, CLUSTER.host(host))
    }


def test_an_etcd_controller_gets_its_member_files_and_the_control_plane_files() -> None:
    files = paths("kube.controller02")
    assert files["/etc/etcd/ssl/peer.key"] == ("key", "etcd-peer-kube.controller02", "0600", "etcd")
    assert files["/etc/etcd/ssl/server.crt"][1:] == (
        "etcd-server-kube.controller02",
        "0644",
        "etcd",
    )
    assert files["/etc/etcd/ssl/ca.crt"][:2] == ("cert", "etcd-ca")
    assert files["/etc/kubernetes/ssl/sa.key"] == ("key", "sa", "0600", "root")
    assert files["/etc/kubernetes/admin.kubeconfig"][2] == "0600"
    assert not any("kube.controller01" in source for _, source, _, _ in files.values())
    assert not any(source.startswith("kubelet-") for _, source, _, _ in files.values())


def test_a_node_gets_only_its_own_kubelet_files() -> None:
    files = paths("kube.node01")
    assert set(files) == {
        "/etc/kubernetes/ssl/ca.crt",
        "/etc/kubernetes/ssl/kubelet.crt",
        "/etc/kubernetes/ssl/kubelet.key",
        "/etc/kubernetes/kubelet.kubeconfig",
        "/etc/kubernetes/kube-proxy.kubeconfig",
    }
    assert files["/etc/kubernetes/kubelet.kubeconfig"][1] == "kubelet-kube.node01"


def test_no_ca_private_key_ever_leaves_the_control_machine() -> None:
    for host in CLUSTER.hosts:
        for placement in placements(CLUSTER, host):
            assert not (placement.kind == "key" and placement.source in ("ca", "etcd-ca"))
            assert placement.secret == (placement.mode == "0600")


def test_directories_come_with_modes_and_the_etcd_group() -> None:
    member = directories(CLUSTER, CLUSTER.host("kube.controller01"))
    assert member[0].path == "/etc/etcd/ssl" and (member[0].mode, member[0].group) == (
        "0750",
        "etcd",
    )
    node = directories(CLUSTER, CLUSTER.host("kube.node01"))
    assert [d.path for d in node] == ["/etc/kubernetes/ssl", "/etc/kubernetes"]


def test_one_cert_dir_for_etcd_and_kubernetes_is_a_conflict(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    defaults["data"]["etcd"]["cert_dir"] = "/etc/kubernetes/ssl"
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    cluster = load_cluster(inventory)
    with pytest.raises(PlacementConflict, match="/etc/kubernetes/ssl/ca.crt would hold both"):
        placements(cluster, cluster.host("kube.controller01"))
