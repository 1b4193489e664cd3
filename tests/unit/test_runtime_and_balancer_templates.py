"""Runtime and load balancer configuration: golden files; what a runtime's answer reports."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from tasks.runtime import summary_line
from tasks.templates import ENVIRONMENT

GOLDEN = REPO_ROOT / "tests" / "data" / "golden"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KUBENORN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def defaults(inventory: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO_ROOT / inventory / "defaults.yaml").read_text())["data"]


@pytest.mark.parametrize("systemd_cgroup", [True, False])
def test_containerd_config(systemd_cgroup: bool) -> None:
    socket = defaults("lab/inventory")["runtime"]["containerd"]["socket"]
    text = ENVIRONMENT.get_template("containerd/config.toml.j2").render(
        socket=socket, systemd_cgroup=systemd_cgroup
    )
    golden(f"containerd-{'systemd' if systemd_cgroup else 'cgroupfs'}.toml", text)


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
        servers=servers, bind_address="127.0.0.1", port=6443, health_check="/healthz"
    )
    golden("haproxy-lab.cfg", text)
    assert "bind 127.0.0.1:6443" in text
    assert text.count("    server kube.controller0") == 3
    assert "option httpchk GET /healthz" in text


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
