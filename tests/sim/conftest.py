"""Fixtures of the simulator tests: one PKI and one real etcd on loopback per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simkit import LocalEtcd, new_authority


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    directory = tmp_path_factory.mktemp("sim-pki")
    ca = new_authority(directory, "ca")
    return {
        "dir": directory,
        "ca": str(directory / "ca.crt"),
        "ca_authority": ca,
        "etcd_server": ca.issue("etcd-server", cn="etcd", server=True),
        "etcd_client": ca.issue("apiserver-etcd-client", cn="kube-apiserver-etcd-client"),
        "apiserver": ca.issue("apiserver", cn="kube-apiserver", server=True),
        "admin": ca.issue("admin", cn="admin", orgs=("system:masters",)),
        "stranger": new_authority(directory, "other-ca").issue(
            "stranger", cn="admin", orgs=("system:masters",)
        ),
    }


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, object]) -> Iterator[LocalEtcd]:
    member = LocalEtcd(tmp_path_factory.mktemp("sim-etcd"), pki)
    member.start()
    yield member
    member.stop()
