"""Real TLS handshakes on 127.0.0.1 with the generated certificates and Python's ssl module.

A server set up like an etcd member (its server certificate, client-certificate auth against
the etcd CA) must accept the apiserver's etcd client certificate and reject the rest: a client
certificate from another CA, none at all (the Kubernetes 1.6 probe's `tls: bad certificate`),
one without clientAuth; and a client must reject a server whose SANs lack the name it dialled.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import cast

import pytest
from pki_support import (
    SERVER,
    Leaf,
    inventory_copy,
    load_authority,
    make_ca,
    new_key,
    write_cert,
    write_key,
)

from kubenorn.cluster import load_cluster
from kubenorn.pki.issue import init

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inventory = inventory_copy("good", tmp_path_factory.mktemp("tls"))
    init(load_cluster(inventory))
    return inventory / ".pki"


def server_context(pki: Path, member: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / f"etcd-{member}.crt", pki / f"etcd-{member}.key")
    context.verify_mode = ssl.CERT_REQUIRED  # etcd's --client-cert-auth
    context.load_verify_locations(pki / "etcd-ca.crt")
    return context


def client_context(pki: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.load_verify_locations(pki / "etcd-ca.crt")
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, dial: str) -> tuple[str, str]:
    """(server outcome, client outcome) of one connection dialling `dial` on 127.0.0.1."""
    outcome: dict[str, str] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        thread = threading.Thread(target=_serve, args=(listener, server, outcome))
        thread.start()
        try:
            client_outcome = _dial(listener.getsockname()[1], client, dial)
        finally:
            thread.join(TIMEOUT * 2)
    assert not thread.is_alive(), "the server thread did not finish"
    return outcome["server"], client_outcome


def _serve(listener: socket.socket, context: ssl.SSLContext, outcome: dict[str, str]) -> None:
    try:
        connection, _ = listener.accept()
    except OSError as error:
        outcome["server"] = f"no connection: {error}"
        return
    connection.settimeout(TIMEOUT)
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            peer = tls.getpeercert()
            assert peer is not None  # the handshake is done: the client's certificate, parsed
            rdns = cast(tuple[tuple[tuple[str, str], ...], ...], peer["subject"])
            subject = dict(rdn[0] for rdn in rdns)
            tls.sendall(b"ok:" + tls.recv(16))
            outcome["server"] = f"accepted {subject['commonName']}"
    except (ssl.SSLError, OSError) as error:
        outcome["server"] = f"rejected: {_why(error)}"
    finally:
        connection.close()


def _why(error: Exception) -> str:
    """OpenSSL's reason, with the verification message when there is one."""
    reason = getattr(error, "reason", None) or str(error)
    detail = getattr(error, "verify_message", None)
    return f"{reason}: {detail}" if detail else reason


def _dial(port: int, context: ssl.SSLContext, name: str) -> str:
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            tls.sendall(b"ping")
            reply = tls.recv(16)
    except (ssl.SSLError, OSError) as error:
        return f"error: {_why(error)}"
    return "ok" if reply == b"ok:ping" else f"error: reply {reply!r}"


def test_the_apiserver_etcd_client_is_accepted(pki: Path) -> None:
    client = client_context(
        pki, pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key"
    )
    server, dialled = handshake(
        server_context(pki, "server-kube.controller01"), client, "kube.controller01"
    )
    assert (server, dialled) == ("accepted kube-apiserver-etcd-client", "ok")


def test_a_peer_certificate_works_as_a_client_of_another_member(pki: Path) -> None:
    client = client_context(
        pki, pki / "etcd-peer-kube.controller02.crt", pki / "etcd-peer-kube.controller02.key"
    )
    server, dialled = handshake(server_context(pki, "peer-kube.controller01"), client, "10.99.0.11")
    assert (server, dialled) == ("accepted kube.controller02", "ok")


def test_a_client_certificate_from_another_ca_is_rejected(pki: Path, tmp_path: Path) -> None:
    key = new_key()
    other = Leaf("kube-apiserver-etcd-client").sign(make_ca(), key)
    write_cert(tmp_path, "other", other)
    write_key(tmp_path, "other", key)
    client = client_context(pki, tmp_path / "other.crt", tmp_path / "other.key")
    server, dialled = handshake(
        server_context(pki, "server-kube.controller01"), client, "kube.controller01"
    )
    assert server == "rejected: CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    assert dialled.startswith("error")


def test_no_client_certificate_is_rejected(pki: Path) -> None:
    """What Kubernetes <= 1.6's etcd probe did: `remote error: tls: bad certificate`."""
    client = client_context(pki, None, None)
    server, dialled = handshake(
        server_context(pki, "server-kube.controller01"), client, "localhost"
    )
    assert server == "rejected: PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert dialled.startswith("error")


def test_a_client_certificate_without_client_auth_is_rejected(pki: Path, tmp_path: Path) -> None:
    key = new_key()
    server_only = Leaf("kube-apiserver-etcd-client", eku=[SERVER]).sign(
        load_authority(pki, "etcd-ca"), key
    )
    write_cert(tmp_path, "server-only", server_only)
    write_key(tmp_path, "server-only", key)
    client = client_context(pki, tmp_path / "server-only.crt", tmp_path / "server-only.key")
    server, dialled = handshake(
        server_context(pki, "server-kube.controller01"), client, "kube.controller01"
    )
    # OpenSSL says "unsuitable" (3.0) or "unsupported" (1.1, 3.x) certificate purpose.
    assert server.startswith("rejected: CERTIFICATE_VERIFY_FAILED: ")
    assert server.endswith("certificate purpose")
    assert dialled.startswith("error")


def test_a_server_whose_sans_lack_the_dialled_name_is_rejected(pki: Path) -> None:
    client = client_context(
        pki, pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key"
    )
    # kube.controller01's certificate answering where kube.controller02 was dialled.
    server, dialled = handshake(
        server_context(pki, "server-kube.controller01"), client, "kube.controller02"
    )
    assert dialled == (
        "error: CERTIFICATE_VERIFY_FAILED: "
        "Hostname mismatch, certificate is not valid for 'kube.controller02'."
    )
    assert server.startswith("rejected")
