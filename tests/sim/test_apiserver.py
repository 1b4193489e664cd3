"""The kube-apiserver simulator (1.6, the reference profile's): its flags, client
certificates, objects in etcd, health."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from simkit import Client, LocalEtcd, apiserver_argv, free_port, simulator, wait_until


@pytest.fixture(scope="module")
def apiserver(pki: dict[str, Any], etcd: LocalEtcd) -> Iterator[int]:
    port = free_port()
    process = simulator("apiserver", "1.6.0", apiserver_argv(pki, etcd, port))
    try:
        wait_until(lambda: Client(port, pki).call("GET", "/healthz")[0] == 200)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("version", "flag", "accepted"),
    [
        ("1.6.0", "--insecure-port=8080", True),
        ("1.6.0", "--service-account-issuer=https://kubernetes.default.svc", False),  # 1.12+
        ("1.6.0", "--no-such-flag", False),
        ("1.6.0", "--etcd-servers", False),
    ],
)
def test_flags_are_those_of_the_version(version: str, flag: str, accepted: bool) -> None:
    process = simulator("apiserver", version, [flag, "--help"] if accepted else [flag])
    out, err = process.communicate(timeout=20)
    assert (process.returncode == 0) is accepted, err
    if not accepted:
        name = flag.split("=")[0]
        assert f"Error: unknown flag: {name}" in err or f"flag needs an argument: {name}" in err


def test_version_and_help_say_what_it_is() -> None:
    version = simulator("apiserver", "1.6.0", ["--version"])
    assert version.communicate(timeout=20)[0].strip() == "Kubernetes v1.6.0"
    helped = simulator("apiserver", "1.6.0", ["--help"])
    assert "SIMULATOR" in helped.communicate(timeout=20)[0]


def test_objects_live_in_etcd_with_resource_version_conflicts(
    apiserver: int, pki: dict[str, Any]
) -> None:
    admin = Client(apiserver, pki)
    node = {"metadata": {"name": "kube.node01"}, "status": {"conditions": []}}
    code, created = admin.call("POST", "/api/v1/nodes", node)
    assert code == 201 and created["kind"] == "Node"
    assert admin.call("POST", "/api/v1/nodes", node)[0] == 409
    version = created["metadata"]["resourceVersion"]
    created["metadata"]["labels"] = {"a": "b"}
    code, updated = admin.call("PUT", "/api/v1/nodes/kube.node01", created)
    assert code == 200 and updated["metadata"]["resourceVersion"] != version
    stale = dict(created, metadata=dict(created["metadata"], resourceVersion=version))
    code, status = admin.call("PUT", "/api/v1/nodes/kube.node01", stale)
    assert code == 409 and status["reason"] == "Conflict"
    code, listed = admin.call("GET", "/api/v1/nodes")
    assert [n["metadata"]["name"] for n in listed["items"]] == ["kube.node01"]
    assert "kube-system" in [
        n["metadata"]["name"] for n in admin.call("GET", "/api/v1/namespaces")[1]["items"]
    ]


def test_a_client_certificate_from_another_ca_is_refused(
    apiserver: int, pki: dict[str, Any]
) -> None:
    with pytest.raises(ssl.SSLError):
        Client(apiserver, pki, "stranger").call("GET", "/api/v1/nodes")
    anonymous = Client(apiserver, pki, identity=None)
    assert anonymous.call("GET", "/healthz")[0] == 200
    assert anonymous.call("GET", "/api/v1/nodes")[0] == 401
    assert Client(apiserver, pki, "etcd_client").call("GET", "/api/v1/nodes")[0] == 403


def test_healthz_fails_while_etcd_is_down_and_recovers(
    apiserver: int, pki: dict[str, Any], etcd: LocalEtcd
) -> None:
    client = Client(apiserver, pki)
    assert client.call("GET", "/healthz")[0] == 200
    etcd.stop()
    try:
        code, body = client.call("GET", "/healthz")
        assert code == 500 and "etcd" in body
    finally:
        etcd.start()
    wait_until(lambda: client.call("GET", "/healthz")[0] == 200)


def test_the_1_6_componentstatuses_show_the_etcd_false_alarm(
    pki: dict[str, Any], etcd: LocalEtcd
) -> None:
    port = free_port()
    process = simulator("apiserver", "1.6.0", apiserver_argv(pki, etcd, port))
    try:
        client = Client(port, pki)
        wait_until(lambda: client.call("GET", "/healthz")[0] == 200)
        code, statuses = client.call("GET", "/api/v1/componentstatuses")
        etcd_status = next(i for i in statuses["items"] if i["metadata"]["name"] == "etcd-0")
        assert code == 200 and etcd_status["conditions"][0]["status"] == "False"
        assert client.call("GET", "/readyz")[0] == 404  # 1.6 had /healthz only
    finally:
        process.terminate()
        process.wait(timeout=10)
