"""verify's kubelet-anonymous check against real listeners on 127.0.0.1.

A TLS server with a certificate the probe has never seen stands in for a kubelet and answers
each status in the table; a closed port, a listener that never answers and a plain-TCP server
give the three ways of getting no answer at all.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pki_support import Leaf, make_ca, new_key

from kubenorn.docker_api import DockerTls, docker_version
from kubenorn.https_probe import TIMEOUT, cause
from kubenorn.pki import keys
from kubenorn.profiles import all_profiles, profile_for
from tasks.kubelet_api import anonymous_finding, kubelet_anonymous

LOCALHOST = ip_address("127.0.0.1")
SHORT = 0.3  # seconds: the probe's timeout where a test waits for it


class Kubelet(BaseHTTPRequestHandler):
    """Answers every GET with the server's `status` and `body`; records what it was asked."""

    server: FakeKubelet

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append((self.command, self.path, self.connection.getpeercert()))
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeKubelet(HTTPServer):
    status = 200
    body = b""
    seen: list[tuple[str, str, Any]]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA, server certificate, server key) for 127.0.0.1, from a CA the probe does not know."""
    directory = tmp_path_factory.mktemp("kubelet-tls")
    ca, key = make_ca("a kubelet's own CA"), new_key()
    cert = Leaf("kube.node01", dns=["kube.node01"], ips=["127.0.0.1"]).sign(ca, key)
    paths = directory / "ca.crt", directory / "kubelet.crt", directory / "kubelet.key"
    paths[0].write_bytes(ca.cert.public_bytes(Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(Encoding.PEM))
    paths[2].write_bytes(keys.private_pem(key))
    return paths


@pytest.fixture
def kubelet(tls_files: tuple[Path, Path, Path]) -> Iterator[FakeKubelet]:
    """A TLS server on 127.0.0.1 that asks for (but does not require) a client certificate."""
    ca_file, cert_file, key_file = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL  # as a kubelet with --client-ca-file
    server = FakeKubelet(("127.0.0.1", 0), Kubelet)
    server.seen = []
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


def port_of(listener: socket.socket | HTTPServer) -> int:
    sock = listener.socket if isinstance(listener, HTTPServer) else listener
    return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("status", "verdict", "detail"),
    [
        (401, "OK", "anonymous request refused (401)"),
        (403, "OK", "anonymous request refused (403)"),
        (200, "CRITICAL", "kubelet API answers anonymous requests (HTTP 200)"),
        (204, "CRITICAL", "kubelet API answers anonymous requests (HTTP 204)"),
        (500, "UNKNOWN", "/pods: HTTP 500"),
        (404, "UNKNOWN", "/pods: HTTP 404"),
        (301, "UNKNOWN", "/pods: HTTP 301"),
    ],
)
def test_the_kubelets_answer_decides(
    kubelet: FakeKubelet, status: int, verdict: str, detail: str
) -> None:
    kubelet.status = status
    port = port_of(kubelet)
    finding = anonymous_finding("kube.node01", LOCALHOST, port, timeout=SHORT)
    assert (finding.check, finding.host, finding.status) == (
        "kubelet-anonymous",
        "kube.node01",
        verdict,
    )
    assert detail in finding.detail
    if verdict == "CRITICAL":
        assert f"anyone who reaches port {port} can exec into pods" in finding.detail
    if verdict == "UNKNOWN":
        assert finding.detail.startswith(f"https://127.0.0.1:{port}/pods: ")
    # One GET of /pods, as a stranger: no client certificate (the server asked for one).
    assert kubelet.seen == [("GET", "/pods", None)]


def test_a_closed_port_is_unknown_connection_refused() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = port_of(spare)
    finding = anonymous_finding("kube.node02", LOCALHOST, port, timeout=SHORT)
    assert finding.status == "UNKNOWN"
    assert finding.detail == f"https://127.0.0.1:{port}/pods: connection refused"


def test_a_listener_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accepts: the kernel does
        started = time.monotonic()
        finding = anonymous_finding("kube.node02", LOCALHOST, port_of(silent), timeout=SHORT)
        waited = time.monotonic() - started
    assert (finding.status, finding.detail.split(": ", 1)[1]) == ("UNKNOWN", "timed out after 0.3s")
    assert waited < TIMEOUT, "the probe's own timeout, not the default, bounded the wait"


def test_a_plain_tcp_server_is_a_tls_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as plain:
        plain.settimeout(TIMEOUT)

        def answer_in_plain_http() -> None:
            connection, _ = plain.accept()
            with connection:
                connection.recv(4096)  # the ClientHello
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer_in_plain_http)
        thread.start()
        finding = anonymous_finding("kube.node02", LOCALHOST, port_of(plain), timeout=TIMEOUT)
        thread.join(TIMEOUT)
    assert finding.status == "UNKNOWN"
    assert ": TLS error: " in finding.detail
    assert "_ssl.c" not in finding.detail


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (http.client.RemoteDisconnected("Remote end closed connection without response"),
         "no HTTP answer: Remote end closed connection without response"),
        (socket.gaierror(-2, "Name or service not known"), "name or service not known"),
    ],
)  # fmt: skip
def test_other_causes_in_a_few_words(error: Exception, said: str) -> None:
    assert cause(error, 5.0) == said


def test_docker_api_still_verifies_and_reads_its_answer(
    kubelet: FakeKubelet, tls_files: tuple[Path, Path, Path]
) -> None:
    """docker's probe shares the GET: it still verifies the server and parses the body."""
    kubelet.status, kubelet.body = 200, b'{"Version": "1.13.1"}'
    assert docker_version("127.0.0.1", port_of(kubelet), DockerTls(tls_files[0], None)) == "1.13.1"
    with pytest.raises(ssl.SSLCertVerificationError):
        docker_version("127.0.0.1", port_of(kubelet), DockerTls(tls_files[1], None))


def test_a_profile_with_a_kubelet_api_port_is_probed_on_it(kubelet: FakeKubelet) -> None:
    kubelet.status = 401
    profile = replace(profile_for("1.37.2"), kubelet_api_port=port_of(kubelet))
    findings = kubelet_anonymous(profile, "kube.node01", LOCALHOST)
    assert [(f.host, f.status) for f in findings] == [("kube.node01", "OK")]
    assert [path for _, path, _ in kubelet.seen] == ["/pods"]


def test_a_profile_without_one_is_not_probed(kubelet: FakeKubelet) -> None:
    profile = replace(profile_for("1.37.2"), kubelet_api_port=None)
    assert kubelet_anonymous(profile, "kube.node01", LOCALHOST) == []
    assert kubelet.seen == []


def test_the_supported_profile_is_probed_on_10250_and_the_reference_is_not() -> None:
    """The 1.6 simulator serves no kubelet API; the real 1.6 kubelet would be CRITICAL."""
    ports = {profile.name: profile.kubelet_api_port for profile in all_profiles()}
    assert ports == {"1.6": None, "supported": 10250}
