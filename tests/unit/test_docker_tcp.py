"""docker's API on TCP: opt-in, mutual TLS under its own CA, its files owned by docker's unit."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import IPAddress, PolicyBuilder, Store
from pki_support import Leaf, inventory_copy, make_ca, new_key, read_cert

from kubenorn.cluster import inspect, load_cluster
from kubenorn.docker_api import DockerTls, docker_version
from kubenorn.https_probe import PROBE_ERRORS, refused_for_no_certificate
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.pki import keys
from kubenorn.pki.issue import init
from kubenorn.pki.local import check_state
from kubenorn.pki.placement import directories, docker_tls, placements
from kubenorn.pki.plan import certificates
from tasks import runtime
from tasks.components import drifted_paths
from tasks.runtime import docker_daemon, listen_address
from tasks.ssh import RemoteError
from tasks.templates import ENVIRONMENT

TCP = {"port": 2376, "cert_dir": "/etc/docker/tls"}
SHORT = 2.0  # seconds: the probe's timeout where a local server answers at once


def with_runtime(inventory: Path, docker: dict[str, Any]) -> Path:
    path = inventory / "defaults.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["runtime"] = {"kind": "docker", "docker": docker}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return inventory


@pytest.fixture
def tcp_inventory(tmp_path: Path) -> Path:
    return with_runtime(inventory_copy("good", tmp_path), {"tcp": TCP})


def test_without_tcp_there_is_no_docker_ca_and_no_docker_file(tmp_path: Path) -> None:
    cluster = load_cluster(with_runtime(inventory_copy("good", tmp_path), {"tcp": None}))
    assert not [spec.name for spec in certificates(cluster) if "docker" in spec.name]
    for host in cluster.hosts:
        assert not [p for p in placements(cluster, host) if p.service]


def test_tcp_nodes_get_a_server_certificate_from_a_ca_of_their_own(tcp_inventory: Path) -> None:
    specs = {spec.name: spec for spec in certificates(load_cluster(tcp_inventory))}
    assert specs["docker-ca"].is_ca
    server = specs["docker-server-kube.node01"]
    assert (server.usage, server.signer) == ("server", "docker-ca")
    assert server.common_name == "kube.node01"
    assert ip_address("127.0.0.1") in server.ip_addresses and "kube.node01" in server.dns_names
    client = specs["docker-client"]
    assert (client.usage, client.signer) == ("client", "docker-ca")
    # Controllers inherit the docker runtime settings but run no runtime: no certificate.
    assert not [name for name in specs if name.startswith("docker-server-kube.controller")]


def test_a_node_holds_the_docker_files_for_docker_to_write_and_restart(
    tcp_inventory: Path,
) -> None:
    cluster = load_cluster(tcp_inventory)
    node = cluster.host("kube.node02")
    files = {p.path: (p.source, p.mode, p.service) for p in docker_tls(node)}
    assert files == {
        "/etc/docker/tls/ca.crt": ("docker-ca", "0644", "docker.service"),
        "/etc/docker/tls/server.crt": ("docker-server-kube.node02", "0644", "docker.service"),
        "/etc/docker/tls/server.key": ("docker-server-kube.node02", "0600", "docker.service"),
    }
    assert set(files) <= {p.path for p in placements(cluster, node)}
    assert ("/etc/docker/tls", "0700") in [(d.path, d.mode) for d in directories(cluster, node)]
    controller = cluster.host("kube.controller01")
    assert not [p for p in placements(cluster, controller) if p.path.startswith("/etc/docker")]
    assert not [p for p in placements(cluster, node) if p.source == "docker-client"]


def test_init_issues_them_and_only_the_docker_ca_signs_docker_clients(tcp_inventory: Path) -> None:
    cluster = load_cluster(tcp_inventory)
    init(cluster)
    assert {f.status for f in check_state(cluster)} == {"OK"}
    pki = tcp_inventory / ".pki"
    docker_ca = read_cert(pki, "docker-ca")
    verifier = PolicyBuilder().store(Store([docker_ca]))
    address = cluster.host("kube.node02").address
    verifier.build_server_verifier(IPAddress(address)).verify(
        read_cert(pki, "docker-server-kube.node02"), []
    )
    assert read_cert(pki, "docker-client").issuer == docker_ca.subject
    # No Kubernetes identity (all signed by the cluster CA) would pass docker's tlsverify.
    assert read_cert(pki, "admin").issuer != docker_ca.subject


@pytest.mark.parametrize(
    ("tcp", "field", "message"),
    [
        ({"port": "two", "cert_dir": "/etc/tls"}, "data.runtime.docker.tcp.port", "whole number"),
        ({"port": 2376, "cert_dir": "etc/docker"}, "data.runtime.docker.tcp.cert_dir", "abs"),
        ("yes", "data.runtime.docker.tcp", "not a mapping"),
    ],
)
def test_a_bad_tcp_setting_names_its_field(
    tmp_path: Path, tcp: Any, field: str, message: str
) -> None:
    _, problems = inspect(with_runtime(inventory_copy("good", tmp_path), {"tcp": tcp}))
    named = [p for p in problems if p.field == field]
    assert named, [str(p) for p in problems]
    assert message in str(named[0]).lower()


def test_daemon_json_gets_mutual_tls_only_with_tcp() -> None:
    daemon = {"storage-driver": "vfs"}
    assert docker_daemon("n1", daemon, []) == daemon
    paths = ["/tls/ca.crt", "/tls/server.crt", "/tls/server.key"]
    assert docker_daemon("n1", daemon, paths) == {
        "storage-driver": "vfs",
        "tls": True,
        "tlsverify": True,
        "tlscacert": "/tls/ca.crt",
        "tlscert": "/tls/server.crt",
        "tlskey": "/tls/server.key",
    }


@pytest.mark.parametrize("key", ["hosts", "tlsverify"])
def test_listeners_and_tls_in_the_inventory_daemon_are_refused_by_name(key: str) -> None:
    with pytest.raises(RemoteError, match=rf"n1: runtime\.docker\.daemon\.{key}: set by kubenorn"):
        docker_daemon("n1", {key: ["tcp://0.0.0.0:2375"]}, [])


def test_the_listener_is_the_nodes_own_address() -> None:
    assert listen_address(ip_address("10.99.0.21"), 2376) == "tcp://10.99.0.21:2376"
    assert listen_address(ip_address("fd00::21"), 2376) == "tcp://[fd00::21]:2376"


def test_the_drop_in_resets_the_packaged_command_line_and_adds_the_listener() -> None:
    data = yaml.safe_load((REPO_ROOT / "lab" / "inventory-1.6" / "defaults.yaml").read_text())
    exec_start = data["data"]["runtime"]["docker"]["exec_start"]
    text = ENVIRONMENT.get_template("docker/tcp.conf.j2").render(
        exec_start=exec_start, listen="tcp://10.99.0.21:2376"
    )
    lines = text.splitlines()
    start = lines.index("ExecStart=")  # systemd needs the reset before a new ExecStart
    assert lines[start + 1] == f"ExecStart={exec_start} -H tcp://10.99.0.21:2376"
    assert "-H fd://" in lines[start + 1], "the socket-activated listener is kept"


def test_the_shipped_reference_lab_profile_turns_tcp_on_for_every_node() -> None:
    cluster = load_cluster(REPO_ROOT / "lab" / "inventory-1.6")
    assert all(node.docker_tcp and node.docker_tcp.port == 2376 for node in cluster.nodes)
    current = load_cluster(REPO_ROOT / "lab" / "inventory")
    assert not any(node.docker_tcp for node in current.nodes)


def test_drift_names_a_file_that_would_be_removed() -> None:
    dropin = "/etc/systemd/system/docker.service.d/kubenorn.conf"
    removal = f"--- {dropin}\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
    assert drifted_paths(removal) == [dropin]
    change = "--- /etc/a.conf\n+++ /etc/a.conf\n@@ -1 +1 @@\n-x\n+y\n"
    assert drifted_paths(change) == ["/etc/a.conf"]


@pytest.fixture(scope="module")
def docker_tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A docker CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    directory = tmp_path_factory.mktemp("docker-tls")
    ca = make_ca("docker CA")
    files = {"ca": directory / "ca.crt"}
    files["ca"].write_bytes(ca.cert.public_bytes(Encoding.PEM))
    for name, leaf in [("server", Leaf("d", ips=["127.0.0.1"])), ("client", Leaf("client"))]:
        key = new_key()
        files[name] = directory / f"{name}.crt"
        files[name].write_bytes(leaf.sign(ca, key).public_bytes(Encoding.PEM))
        files[f"{name}-key"] = directory / f"{name}.key"
        files[f"{name}-key"].write_bytes(keys.private_pem(key))
    return files


class Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b'{"Version": "24.0.7"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_a_daemon_demanding_a_client_certificate_is_a_tls_refusal(
    docker_tls_files: dict[str, Path], version: ssl.TLSVersion
) -> None:
    """A TLS server with docker's tlsverify (CERT_REQUIRED): the stranger's error is a refusal."""
    files = docker_tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["server"], files["server-key"])
    context.load_verify_locations(files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.maximum_version = version
    server = HTTPServer(("127.0.0.1", 0), Version)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = int(server.socket.getsockname()[1])
    try:
        client = (files["client"], files["client-key"])
        assert docker_version("127.0.0.1", port, DockerTls(files["ca"], client)) == "24.0.7"
        with pytest.raises(PROBE_ERRORS) as refused:
            docker_version("127.0.0.1", port, DockerTls(files["ca"], None), timeout=SHORT)
        assert refused_for_no_certificate(refused.value), repr(refused.value)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_other_errors_are_no_refusal() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = int(spare.getsockname()[1])
    errors: list[Exception] = []
    for probe in [
        lambda: docker_version("127.0.0.1", closed, DockerTls(Path("/dev/null"), None)),
        lambda: docker_version("127.0.0.1", closed, DockerTls(Path("/nonexistent"), None)),
    ]:
        with pytest.raises(PROBE_ERRORS) as raised:
            probe()
        errors.append(raised.value)
    errors += [TimeoutError("timed out"), ConnectionResetError(104, "Connection reset by peer")]
    errors += [ssl.SSLCertVerificationError(1, "certificate verify failed")]
    assert not [e for e in errors if refused_for_no_certificate(e)]


def refusal() -> ssl.SSLError:
    error = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert")
    error.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    return error


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (refusal(), "OK", "a client certificate from the docker CA is required"),
        (TimeoutError("timed out"), "UNKNOWN", ": timed out after 5s"),
        (ConnectionRefusedError(111, "Connection refused"), "UNKNOWN", ": connection refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "UNKNOWN", ": connection reset"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "UNKNOWN", "TLS error"),
        (OSError("GET /version answered HTTP 401"), "UNKNOWN", ": GET /version answered HTTP 401"),
    ],
)
def test_only_a_tls_refusal_of_the_stranger_is_ok(
    tcp_inventory: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: str,
    said: str,
) -> None:
    """kubenorn's client gets an answer; what the stranger got decides, and says its cause."""
    cluster = load_cluster(tcp_inventory)

    def version(address: str, port: int, tls: DockerTls, **_: Any) -> str:
        if tls.client is None:
            raise error
        return "24.0.7"

    monkeypatch.setattr(runtime, "cluster_of", lambda task: cluster)
    monkeypatch.setattr(runtime, "docker_version", version)
    task = SimpleNamespace(host=SimpleNamespace(name="kube.node01"))
    [finding] = runtime.docker_tcp_findings(task)  # type: ignore[arg-type]
    assert (finding.check, finding.host, finding.status) == ("runtime.tcp", "kube.node01", status)
    assert said in finding.detail
    assert finding.detail.startswith("docker 24.0.7 on tcp://")
