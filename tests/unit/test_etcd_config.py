"""etcd configuration: data decided in Python from the inventory, rendered by the template."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from tasks.etcd import etcd_config, member_of
from tasks.templates import ENVIRONMENT

GOLDEN = REPO_ROOT / "tests" / "data" / "golden"
SETTINGS = {
    "config_file": "/etc/etcd/etcd.conf",
    "initial_file": "/etc/etcd/etcd-initial.conf",
    "data_dir": "/var/lib/etcd/kubenorn",
    "heartbeat_interval_ms": 100,
    "election_timeout_ms": 1000,
    "log_level": "info",
}


def rendered(
    inventory: Path, host: str, template: str = "etcd/etcd.conf.j2", *, formed: bool = False
) -> str:
    cluster = load_cluster(inventory)
    config = etcd_config(cluster, member_of(cluster, host), SETTINGS, formed=formed)
    return ENVIRONMENT.get_template(template).render(etcd=config)


@pytest.mark.parametrize(
    ("inventory", "golden"),
    [("lab/inventory", "etcd-3.5.conf"), ("inventory", "etcd-3.1.conf")],
)
def test_etcd_conf_matches_its_golden_file(inventory: str, golden: str) -> None:
    text = rendered(REPO_ROOT / inventory, "kube.controller02")
    path = GOLDEN / golden
    if os.environ.get("KUBENORN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_member_name_and_initial_cluster_come_from_one_list() -> None:
    cluster = load_cluster(REPO_ROOT / "lab" / "inventory")
    for member in cluster.etcd.members:
        config = etcd_config(cluster, member, SETTINGS, formed=False)
        assert f"{config['name']}={config['peer_url']}" in config["initial_cluster"].split(",")
    assert len(cluster.etcd.initial_cluster.split(",")) == 3


def test_members_listen_on_their_own_address_and_loopback_over_tls() -> None:
    text = rendered(REPO_ROOT / "lab" / "inventory", "kube.controller01")
    assert 'ETCD_LISTEN_CLIENT_URLS="https://10.240.0.11:2379,https://127.0.0.1:2379"' in text
    assert 'ETCD_LISTEN_PEER_URLS="https://10.240.0.11:2380"' in text
    assert 'ETCD_CLIENT_CERT_AUTH="true"' in text
    assert 'ETCD_PEER_CLIENT_CERT_AUTH="true"' in text
    assert "http://" not in text


def test_version_decides_the_logging_settings() -> None:
    lab = rendered(REPO_ROOT / "lab" / "inventory", "kube.controller01")
    reference = rendered(REPO_ROOT / "inventory", "kube.controller01")
    assert 'ETCD_LOGGER="zap"' in lab and "ETCD_LOG_PACKAGE_LEVELS" not in lab
    assert 'ETCD_LOG_PACKAGE_LEVELS="etcdserver=INFO"' in reference
    assert "ETCD_LOGGER" not in reference


@pytest.mark.parametrize(("formed", "state"), [(False, "new"), (True, "existing")])
def test_the_initial_membership_is_a_file_of_its_own_and_existing_once_formed(
    formed: bool, state: str
) -> None:
    """etcd reads ETCD_INITIAL_* only on a first start: a file apart, so a member joining
    changes it on the others without owing them a restart; once formed, a member that lost
    its data joins rather than founding a second cluster."""
    lab = REPO_ROOT / "lab" / "inventory"
    initial = rendered(lab, "kube.controller01", "etcd/etcd-initial.conf.j2", formed=formed)
    assert f'ETCD_INITIAL_CLUSTER_STATE="{state}"' in initial
    assert "ETCD_INITIAL_CLUSTER=" in initial and "ETCD_INITIAL_CLUSTER_TOKEN=" in initial
    main = rendered(lab, "kube.controller01", formed=formed)
    assert "ETCD_INITIAL_CLUSTER" not in main
    assert main == rendered(lab, "kube.controller01", formed=not formed)
