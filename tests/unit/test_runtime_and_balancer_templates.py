"""Runtime and load balancer configuration: golden files; what a runtime's answer reports."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from ipaddress import ip_network

import pytest
import yaml

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from tasks.runtime import cni_context, containerd_context, summary_line
from tasks.ssh import RemoteError
from tasks.templates import ENVIRONMENT

GOLDEN = REPO_ROOT / "tests" / "data" / "golden"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KUBENORN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def defaults(inventory: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO_ROOT / inventory / "defaults.yaml").read_text())["data"]


def containerd_toml(cgroup_version: int, pause_image: str | None) -> str:
    containerd = defaults("lab/inventory")["runtime"]["containerd"]
    context = containerd_context(containerd, cgroup_version, pause_image)
    return ENVIRONMENT.get_template("containerd/config.toml.j2").render(**context)


@pytest.mark.parametrize("cgroup_version", [2, 1])
def test_containerd_config(cgroup_version: int) -> None:
    pause_image = load_cluster(REPO_ROOT / "lab" / "inventory").kubernetes.pause_image
    text = containerd_toml(cgroup_version, pause_image)
    golden(f"containerd-{'systemd' if cgroup_version == 2 else 'cgroupfs'}.toml", text)
    config = tomllib.loads(text)
    assert config["version"] == 2  # containerd 1.7's format (Debian trixie: 1.7.24)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # The kubelet has no flag for the sandbox image since 1.35: containerd's setting is the one.
    assert cri["sandbox_image"] == defaults("lab/inventory")["kubernetes"]["pause_image"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    options = cri["containerd"]["runtimes"]["runc"]["options"]
    assert options["SystemdCgroup"] is (cgroup_version == 2)
    assert cri["restrict_oom_score_adj"] is True  # the lab's machine lacks CAP_SYS_RESOURCE


def test_containerd_keeps_its_own_sandbox_image_when_the_inventory_names_none() -> None:
    cri = tomllib.loads(containerd_toml(2, None))["plugins"]["io.containerd.grpc.v1.cri"]
    assert "sandbox_image" not in cri


@pytest.mark.parametrize(
    ("setting", "rendered"), [({}, None), ({"restrict_oom_score_adj": True}, True)]
)
def test_containerd_restricts_oom_score_adj_only_where_the_inventory_asks(
    setting: dict[str, bool], rendered: bool | None
) -> None:
    containerd = {"socket": "/run/containerd/containerd.sock", **setting}
    text = ENVIRONMENT.get_template("containerd/config.toml.j2").render(
        **containerd_context(containerd, 1, None)
    )
    cri = tomllib.loads(text)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri.get("restrict_oom_score_adj") is rendered


def test_a_restrict_oom_score_adj_that_is_not_a_boolean_is_refused_naming_the_field() -> None:
    containerd = {"socket": "/run/containerd/containerd.sock", "restrict_oom_score_adj": "yes"}
    with pytest.raises(RemoteError, match=r"runtime.containerd.restrict_oom_score_adj: 'yes'"):
        containerd_context(containerd, 1, None)


@pytest.mark.parametrize("node", ["kube.node01", "kube.node03"])
def test_each_node_gets_a_cni_bridge_on_its_own_pod_range(node: str) -> None:
    cluster = load_cluster(REPO_ROOT / "lab" / "inventory")
    context = cni_context(cluster, cluster.host(node))
    assert context is not None
    text = ENVIRONMENT.get_template("cni/10-kubenorn.conflist.j2").render(**context)
    if node == "kube.node01":
        golden("cni-lab-node01.conflist", text)
    conflist = json.loads(text)
    hosts = yaml.safe_load((REPO_ROOT / "lab" / "inventory" / "hosts.yaml").read_text())
    pod_cidr = hosts[node]["data"]["pod_cidr"]
    assert [plugin["type"] for plugin in conflist["plugins"]] == ["bridge", "portmap"]
    bridge = conflist["plugins"][0]
    assert (bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == ("cni0", True, False)
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": pod_cidr}]]
    assert ip_network(pod_cidr).subnet_of(ip_network(cluster.cluster_cidr))  # type: ignore[arg-type]
    assert conflist["cniVersion"] == "1.0.0"


def test_no_cni_configuration_where_the_profile_gives_nodes_no_pod_range() -> None:
    reference = load_cluster(REPO_ROOT / "lab" / "inventory-1.6")  # docker, no pod_cidr
    assert cni_context(reference, reference.host("kube.node01")) is None
    lab = load_cluster(REPO_ROOT / "lab" / "inventory")
    no_range = dataclasses.replace(lab.host("kube.node01"), pod_cidr=None)
    assert cni_context(lab, no_range) is None


def test_the_reference_daemon_json_keeps_its_settings_and_drops_tcp() -> None:
    daemon = defaults("inventory")["runtime"]["docker"]["daemon"]
    text = ENVIRONMENT.get_template("docker/daemon.json.j2").render(daemon=daemon)
    golden("daemon-reference.json", text)
    parsed = json.loads(text)
    assert parsed["storage-driver"] == "devicemapper" and parsed["mtu"] == 1450
    assert "hosts" not in parsed  # the reference's tcp://0.0.0.0:2375 is gone
    assert "registry-mirrors" not in parsed


def test_haproxy_sends_the_endpoint_to_every_controller_with_health_checks() -> None:
    cluster = load_cluster(REPO_ROOT / "lab" / "inventory")
    servers = [
        {"name": c.name, "address": str(c.address), "port": 6443} for c in cluster.controllers
    ]
    text = ENVIRONMENT.get_template("haproxy/haproxy.cfg.j2").render(
        servers=servers,
        bind_address="127.0.0.1",
        port=6443,
        health_check="/healthz",
        check={"interval_ms": 2000, "fall": 2, "rise": 2},
    )
    golden("haproxy-lab.cfg", text)
    assert "bind 127.0.0.1:6443" in text
    assert text.count("    server kube.controller0") == 3
    assert "option httpchk GET /healthz" in text
    assert "inter 2000ms fall 2 rise 2" in text


CTR_VERSION = """Client:
  Version:  1.6.20~ds1
  Revision: 1.6.20~ds1-1+b1

Server:
  Version:  1.6.21~ds1
  Revision: 1.6.21~ds1-1+b1
  UUID: ab75af9d-1a2a-4b5b-a5e1-2ebdd7407320
"""


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (CTR_VERSION, "Version: 1.6.21~ds1"),
        ("20.10.24+dfsg1\n", "20.10.24+dfsg1"),
        ("ctr: failed to dial\nconnection refused\n", "connection refused"),
        ("", ""),
    ],
)
def test_a_runtime_answer_is_summed_up_by_its_server_version(output: str, line: str) -> None:
    assert summary_line(output) == line
