"""The cluster model: built from the inventory files, with every problem named precisely."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml
from pki_support import INVENTORIES, inventory_copy

from kubenorn.cluster import ClusterError, inspect, load_cluster
from kubenorn.nornir_setup import REPO_ROOT


def problem_texts(inventory: Path) -> list[str]:
    _, problems = inspect(inventory)
    return [str(p) for p in problems]


def edit_yaml(path: Path, change) -> None:  # noqa: ANN001 - a callable on the document
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_the_good_inventory_makes_a_cluster_with_derived_etcd_urls() -> None:
    cluster = load_cluster(INVENTORIES / "good")
    members = cluster.etcd.members
    assert [m.name for m in members] == [f"kube.controller0{i}" for i in (1, 2, 3)]
    assert members[1].peer_url == "https://10.99.0.12:2380"
    assert members[1].client_url == "https://10.99.0.12:2379"
    assert cluster.etcd.initial_cluster == (
        "kube.controller01=https://10.99.0.11:2380,"
        "kube.controller02=https://10.99.0.12:2380,"
        "kube.controller03=https://10.99.0.13:2380"
    )
    assert [h.name for h in cluster.nodes] == ["kube.node01", "kube.node02"]
    assert cluster.apiserver.url == "https://kube.apiserver:6443"
    assert cluster.first_service_ip == ip_address("10.32.0.1")
    assert cluster.kubernetes.profile.name == "supported"
    assert cluster.pki.dir == (INVENTORIES / "good" / ".pki").resolve()


def test_a_host_with_an_fqdn_answers_to_its_short_name_too() -> None:
    host = load_cluster(INVENTORIES / "good").host("kube.controller01")
    assert host.dns_names == ("kube.controller01", "controller01.example.test", "controller01")


def test_hosts_file_entries_cover_every_host_and_the_apiserver_name() -> None:
    entries = load_cluster(INVENTORIES / "good").host_entries()
    assert ("10.99.0.21", ["kube.node01"]) in entries
    assert entries[-1] == ("127.0.0.1", ["kube.apiserver"])


@pytest.mark.parametrize("name", ["inventory", "lab/inventory"])
def test_the_shipped_inventories_have_no_problem(name: str) -> None:
    assert problem_texts(REPO_ROOT / name) == []


def test_an_etcd_name_overrides_the_host_name_in_both_places(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(
        inventory / "hosts.yaml",
        lambda d: d["kube.controller02"]["data"].update(etcd_name="etcd-b"),
    )
    etcd = load_cluster(inventory).etcd
    assert etcd.members[1].name == "etcd-b"
    assert "etcd-b=https://10.99.0.12:2380" in etcd.initial_cluster.split(",")


def test_host_fields_resolve_like_simple_inventory(tmp_path: Path) -> None:
    """Host data, then its groups (parents included) in order, then defaults data."""
    inventory = inventory_copy("good", tmp_path)

    def groups(document: dict) -> None:
        document["rack1"] = {"data": {"fqdn": "from-rack.example.test"}}
        document["nodes"]["groups"] = ["rack1"]

    edit_yaml(inventory / "groups.yaml", groups)
    edit_yaml(
        inventory / "hosts.yaml",
        lambda d: d["kube.node02"]["data"].update(fqdn="own.example.test"),
    )
    cluster = load_cluster(inventory)
    assert cluster.host("kube.node01").fqdn == "from-rack.example.test"
    assert cluster.host("kube.node02").fqdn == "own.example.test"
    assert cluster.host("kube.node01").groups == ("nodes", "rack1")


def test_every_problem_names_its_file_host_and_field() -> None:
    texts = problem_texts(INVENTORIES / "missing-fields")
    assert sorted(texts) == sorted(
        [
            "groups.yaml: group nodes: missing role group",
            "hosts.yaml: kube.controller02: data.addr: unknown key (did you mean 'address'?)",
            "hosts.yaml: kube.controller02: data.address: missing (expected an IP address)",
            "hosts.yaml: kube.controller03: data.address: "
            "'10.99.0.300' does not appear to be an IPv4 or IPv6 address",
            "defaults.yaml: defaults: data.cluster.domain: missing (expected a DNS name)",
            "defaults.yaml: defaults: data.cluster.kubernetes_version: "
            "must be a quoted string: YAML reads 1.3 as a number",
            "defaults.yaml: defaults: data.etcd.peer_port: missing (expected a port number)",
        ]
    )


def test_load_cluster_raises_with_every_error() -> None:
    with pytest.raises(ClusterError) as raised:
        load_cluster(INVENTORIES / "missing-fields")
    assert len(raised.value.problems) == 7
    assert "hosts.yaml: kube.controller02: data.address" in str(raised.value)


def test_duplicates_are_reported_not_silently_merged() -> None:
    texts = problem_texts(INVENTORIES / "duplicates")
    assert "hosts.yaml: kube.node01: line 22: duplicate key 'kube.node01'" in "\n".join(texts)
    assert (
        "hosts.yaml: kube.controller02: data.address: address 10.99.0.11 is also used by "
        "kube.controller01" in texts
    )
    assert (
        "hosts.yaml: kube.controller03: data.etcd_name: etcd member name kube.controller01 "
        "is also used by kube.controller01" in texts
    )
    assert any(t.startswith("hosts.yaml: KUBE.NODE01: name (ignoring case)") for t in texts)


def test_missing_files_and_broken_yaml_are_named(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    (inventory / "groups.yaml").unlink()
    (inventory / "hosts.yaml").write_text("kube.node01: [unclosed\n")
    texts = problem_texts(inventory)
    assert any(t.startswith("groups.yaml: -: file is missing") for t in texts)
    assert any(t.startswith("hosts.yaml: -: not valid YAML") for t in texts)
    assert inspect(inventory)[0] is None


def test_cluster_wide_settings_in_host_data_are_refused(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(
        inventory / "hosts.yaml",
        lambda d: d["kube.node01"]["data"].update(etcd={"peer_port": 2390}),
    )
    assert (
        "hosts.yaml: kube.node01: data.etcd: a cluster-wide setting: set it in defaults.yaml only"
        in problem_texts(inventory)
    )


def test_wrong_types_and_values_are_problems(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)

    def break_defaults(document: dict) -> None:
        data = document["data"]
        data["cluster"]["apiserver"]["port"] = "6443"
        data["cluster"]["service_cidr"] = "10.32.0.1/24"
        data["pki"]["key_algorithm"] = "dsa-1024"
        data["etcd"]["cert_dir"] = "etc/etcd/ssl"
        data["etcd"]["initial_cluster"] = "a=https://10.99.0.11:2380,b"

    edit_yaml(inventory / "defaults.yaml", break_defaults)
    fields = {t.split(": ")[2] for t in problem_texts(inventory)}
    assert fields == {
        "data.cluster.apiserver.port",
        "data.cluster.service_cidr",
        "data.pki.key_algorithm",
        "data.etcd.cert_dir",
        "data.etcd.initial_cluster",
    }


def test_a_host_in_an_unknown_group_or_with_a_bad_name(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)

    def hosts(document: dict) -> None:
        document["kube.node01"]["groups"] = ["nodes", "workers"]
        document["bad_name!"] = {"groups": ["nodes"], "data": {"address": "10.99.0.40"}}

    edit_yaml(inventory / "hosts.yaml", hosts)
    texts = problem_texts(inventory)
    assert "hosts.yaml: kube.node01: groups: no such group in groups.yaml: workers" in texts
    edit_yaml(inventory / "hosts.yaml", lambda d: d["kube.node01"].update(groups=["nodes"]))
    assert any(
        t.startswith("hosts.yaml: bad_name!: not a valid DNS name")
        for t in problem_texts(inventory)
    )


def test_a_role_group_without_hosts(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(
        inventory / "hosts.yaml",
        lambda d: [d.pop(n) for n in ("kube.node01", "kube.node02")],
    )
    assert problem_texts(inventory) == ["groups.yaml: group nodes: has no hosts"]


@pytest.mark.parametrize(
    ("file", "change"),
    [
        ("defaults.yaml", lambda d: d["data"]["pki"].update(dir=5)),
        ("defaults.yaml", lambda d: d["data"].update(cluster=["not", "a", "mapping"])),
        ("defaults.yaml", lambda d: d.update(data=None)),
        ("hosts.yaml", lambda d: d.update({"kube.node01": ["a", "list"]})),
        ("hosts.yaml", lambda d: d["kube.node01"].update(data=["a", "list"])),
        ("hosts.yaml", lambda d: d["kube.node01"].update(groups="nodes")),
        ("groups.yaml", lambda d: d.update(nodes="a string")),
    ],
)
def test_wrong_shapes_are_problems_never_exceptions(tmp_path: Path, file: str, change) -> None:  # noqa: ANN001
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(inventory / file, change)
    cluster, problems = inspect(inventory)
    assert cluster is None
    assert problems and all(p.status == "CRITICAL" for p in problems)


def set_cluster(**fields: object):  # noqa: ANN201 - an edit for edit_yaml
    return lambda d: d["data"]["cluster"].update(fields)


def set_kubernetes(**fields: object):  # noqa: ANN201
    return lambda d: d["data"]["kubernetes"].update(fields)


def set_host(host: str, **fields: object):  # noqa: ANN201
    return lambda d: d[host]["data"].update(fields)


def drop_host_field(host: str, field: str):  # noqa: ANN201
    return lambda d: d[host]["data"].pop(field)


# Pod and service networks, and the Kubernetes fields the supported profile renders: each
# wrong value is one problem naming its file, host (or defaults) and field.
NETWORK_CASES = {
    "no cluster_cidr": (
        "defaults.yaml",
        lambda d: d["data"]["cluster"].pop("cluster_cidr"),
        "defaults.yaml: defaults: data.cluster.cluster_cidr: missing (expected a CIDR such as "
        "10.200.0.0/16: Kubernetes 1.37.2)",
    ),
    "cluster_cidr not a network": (
        "defaults.yaml",
        set_cluster(cluster_cidr="10.200.0.1/16"),
        "defaults.yaml: defaults: data.cluster.cluster_cidr: 10.200.0.1/16 has host bits set",
    ),
    "cluster_cidr over the service range": (
        "defaults.yaml",
        set_cluster(service_cidr="10.200.255.0/24"),
        "defaults.yaml: defaults: data.cluster.cluster_cidr: 10.200.0.0/16 must be of "
        "service_cidr's IP version and apart from it",
    ),
    "a node without pod_cidr": (
        "hosts.yaml",
        drop_host_field("kube.node02", "pod_cidr"),
        "hosts.yaml: kube.node02: data.pod_cidr: missing (expected this node's pod range "
        "inside 10.200.0.0/16)",
    ),
    "pod_cidr outside cluster_cidr": (
        "hosts.yaml",
        set_host("kube.node02", pod_cidr="10.201.2.0/24"),
        "hosts.yaml: kube.node02: data.pod_cidr: 10.201.2.0/24 is not inside "
        "cluster.cluster_cidr 10.200.0.0/16",
    ),
    "pod_cidr overlapping another node's": (
        "hosts.yaml",
        set_host("kube.node02", pod_cidr="10.200.0.0/23"),
        "hosts.yaml: kube.node02: data.pod_cidr: 10.200.0.0/23 overlaps the pod_cidr of "
        "kube.node01",
    ),
    "pod_cidr with host bits": (
        "hosts.yaml",
        set_host("kube.node02", pod_cidr="10.200.2.1/24"),
        "hosts.yaml: kube.node02: data.pod_cidr: 10.200.2.1/24 has host bits set",
    ),
    "pod_cidr on a controller": (
        "hosts.yaml",
        set_host("kube.controller02", pod_cidr="10.200.9.0/24"),
        "hosts.yaml: kube.controller02: data.pod_cidr: only nodes run pods",
    ),
    "a host among the pods": (
        "hosts.yaml",
        set_host("kube.node02", address="10.200.7.7"),
        "hosts.yaml: kube.node02: data.address: 10.200.7.7 is inside cluster.cluster_cidr "
        "10.200.0.0/16",
    ),
    "dns_service_ip outside the service range": (
        "defaults.yaml",
        set_cluster(dns_service_ip="10.33.0.10"),
        "defaults.yaml: defaults: data.cluster.dns_service_ip: 10.33.0.10 is not inside "
        "service_cidr 10.32.0.0/24",
    ),
    "dns_service_ip taken by the kubernetes Service": (
        "defaults.yaml",
        set_cluster(dns_service_ip="10.32.0.1"),
        "defaults.yaml: defaults: data.cluster.dns_service_ip: 10.32.0.1 is the service "
        "range's network, broadcast or `kubernetes` Service address; the cluster DNS Service "
        "needs another",
    ),
    "a service range with no tenth address": (
        "defaults.yaml",
        set_cluster(service_cidr="10.32.0.0/29"),
        "defaults.yaml: defaults: data.cluster.service_cidr: service_cidr 10.32.0.0/29 has no "
        "address 10 for the cluster DNS Service: set cluster.dns_service_ip",
    ),
    "conntrack_max_per_core negative": (
        "defaults.yaml",
        set_kubernetes(conntrack_max_per_core=-1),
        "defaults.yaml: defaults: data.kubernetes.conntrack_max_per_core: must be a whole "
        "number from 0 to 2147483647, not -1",
    ),
    "conntrack_max_per_core quoted": (
        "defaults.yaml",
        set_kubernetes(conntrack_max_per_core="0"),
        "defaults.yaml: defaults: data.kubernetes.conntrack_max_per_core: must be a whole "
        "number from 0 to 2147483647, not '0'",
    ),
    "kube_reserved of something the kubelet cannot reserve": (
        "defaults.yaml",
        set_kubernetes(kube_reserved="cpu=100m,gpu=1"),
        "defaults.yaml: defaults: data.kubernetes.kube_reserved: 'gpu' cannot be reserved "
        "(only cpu, memory, ephemeral-storage, pid)",
    ),
    "kube_reserved not a quantity": (
        "defaults.yaml",
        set_kubernetes(kube_reserved={"memory": "lots"}),
        "defaults.yaml: defaults: data.kubernetes.kube_reserved: memory='lots': not a "
        "quantity such as 100m or 128Mi",
    ),
    "kube_reserved not pairs": (
        "defaults.yaml",
        set_kubernetes(kube_reserved="cpu"),
        "defaults.yaml: defaults: data.kubernetes.kube_reserved: entry 'cpu' is not "
        "resource=quantity",
    ),
}


@pytest.mark.parametrize("case", NETWORK_CASES.values(), ids=NETWORK_CASES.keys())
def test_pod_networks_and_kubernetes_fields_are_checked(tmp_path: Path, case) -> None:  # noqa: ANN001
    file, change, expected = case
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(inventory / file, change)
    assert problem_texts(inventory) == [expected]


def test_the_new_fields_as_the_model_holds_them(tmp_path: Path) -> None:
    cluster = load_cluster(INVENTORIES / "good")
    assert cluster.dns_service_ip == ip_address("10.32.0.10")  # kubeadm's choice: the tenth
    assert str(cluster.cluster_cidr) == "10.200.0.0/16"
    assert str(cluster.host("kube.node02").pod_cidr) == "10.200.2.0/24"
    assert cluster.host("kube.controller01").pod_cidr is None
    assert cluster.kubernetes.conntrack_max_per_core is None  # unset: kube-proxy's default
    assert cluster.kubernetes.kube_reserved == ()
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(inventory / "defaults.yaml", set_cluster(dns_service_ip="10.32.0.53"))
    edit_yaml(
        inventory / "defaults.yaml",
        set_kubernetes(
            conntrack_max_per_core=0,
            kube_reserved={"cpu": "200m", "memory": "1Gi"},
            pause_image="registry.k8s.io/pause:3.10.1",
        ),
    )
    cluster = load_cluster(inventory)
    assert cluster.dns_service_ip == ip_address("10.32.0.53")
    assert cluster.kubernetes.conntrack_max_per_core == 0
    assert cluster.kubernetes.kube_reserved == (("cpu", "200m"), ("memory", "1Gi"))
    assert cluster.kubernetes.pause_image == "registry.k8s.io/pause:3.10.1"


def test_the_reference_profile_needs_no_pod_ranges(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    edit_yaml(inventory / "defaults.yaml", set_cluster(kubernetes_version="1.6.0"))
    edit_yaml(inventory / "defaults.yaml", lambda d: d["data"]["cluster"].pop("cluster_cidr"))
    edit_yaml(inventory / "hosts.yaml", drop_host_field("kube.node01", "pod_cidr"))
    edit_yaml(inventory / "hosts.yaml", drop_host_field("kube.node02", "pod_cidr"))
    assert problem_texts(inventory) == []
    # A pod_cidr given anyway still needs the cluster range it belongs to.
    edit_yaml(inventory / "hosts.yaml", set_host("kube.node01", pod_cidr="10.200.1.0/24"))
    assert problem_texts(inventory) == [
        "defaults.yaml: defaults: data.cluster.cluster_cidr: missing (expected a CIDR such as "
        "10.200.0.0/16: pod_cidr is set)"
    ]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\xff\xfe\x00k\x00u\x00b\x00e", "not UTF-8 text"),
        (b"kube.node01:\n  address: 10.99.0.21\xe9\n", "not UTF-8 text"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary"),
    ],
)
def test_a_binary_or_non_utf8_file_is_one_problem_naming_it(
    tmp_path: Path, content: bytes, said: str
) -> None:
    inventory = inventory_copy("good", tmp_path)
    (inventory / "hosts.yaml").write_bytes(content)
    texts = [t for t in problem_texts(inventory) if t.startswith("hosts.yaml")]
    assert len(texts) == 1 and said in texts[0], texts
    assert inspect(inventory)[0] is None


def test_a_binary_inventory_file_exits_3_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runbooks import verify

    inventory = inventory_copy("good", tmp_path)
    (inventory / "groups.yaml").write_bytes(b"\x00\x01\x02\xff" * 8)
    assert verify.main(["-i", str(inventory), "--quiet"]) == 3
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "groups.yaml" in text and "Traceback" not in text
    assert text.count("groups.yaml") == 1, text
