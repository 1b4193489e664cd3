"""The availability prober against a local server on 127.0.0.1 that fails for a window."""

from __future__ import annotations

import http.server
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from kubenorn.availability import (
    Availability,
    Check,
    Prober,
    Sample,
    ca_context,
    https_check,
    probing,
    summarize,
)
from kubenorn.pki import keys
from kubenorn.pki.builders import ca_certificate, leaf_certificate
from kubenorn.pki.plan import CertSpec


class Switchable(http.server.ThreadingHTTPServer):
    """/readyz answers 200 while `healthy`, 503 otherwise."""

    healthy = True


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        assert isinstance(self.server, Switchable)
        code = 200 if self.server.healthy and self.path == "/readyz" else 503
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


@pytest.fixture
def server() -> Iterator[Switchable]:
    served = Switchable(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def outage(server: Switchable, check: Check, window: float) -> Availability:
    """The report of probing `check` while `server` fails for `window` seconds in between."""
    with probing({"lb": check}, interval=0.02) as prober:
        time.sleep(0.25)
        server.healthy = False
        time.sleep(window)
        server.healthy = True
        time.sleep(0.25)
    [report] = prober.report()
    return report


def test_an_outage_window_is_counted_and_measured(server: Switchable) -> None:
    port = server.server_address[1]
    report = outage(server, https_check("127.0.0.1", port, "/readyz", None, timeout=1.0), 0.5)
    assert report.endpoint == "lb"
    assert report.requests >= 20
    assert 0 < report.failures < report.requests
    assert 0 < report.percent < 100
    assert 0.4 <= report.longest_outage <= 1.5, report  # the 0.5 s window, give or take
    assert report.first_failure == "HTTP 503"
    assert "% available, longest outage" in report.line()
    assert re.search(
        r"longest outage \d\.\ds from \d\d:\d\d:\d\d UTC; first failure: HTTP 503$", report.line()
    )


def serve_tls(served: Switchable, directory: Path) -> Path:
    """Serve `served` over TLS with a certificate for 127.0.0.1 from a new CA; the CA's file."""
    now = datetime.now(UTC)
    ca_key, key = keys.generate("ecdsa-p256"), keys.generate("ecdsa-p256")
    ca = ca_certificate("test-ca", ca_key, days=1, now=now)
    spec = CertSpec(
        "server", "127.0.0.1", "server", ip_addresses=(ipaddress.ip_address("127.0.0.1"),)
    )
    leaf = leaf_certificate(spec, key.public_key(), ca, ca_key, days=1, now=now)
    (directory / "ca.crt").write_bytes(ca.public_bytes(Encoding.PEM))
    (directory / "server.crt").write_bytes(leaf.public_bytes(Encoding.PEM))
    (directory / "server.key").write_bytes(keys.private_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    served.socket = context.wrap_socket(served.socket, server_side=True)
    return directory / "ca.crt"


def test_over_https_verified_against_its_ca(tmp_path: Path) -> None:
    served = Switchable(("127.0.0.1", 0), Handler)
    ca_file = serve_tls(served, tmp_path)
    threading.Thread(target=served.serve_forever, daemon=True).start()
    try:
        port = served.server_address[1]
        check = https_check("127.0.0.1", port, "/readyz", ca_context(str(ca_file)), timeout=1.0)
        report = outage(served, check, 0.3)
        assert 0 < report.failures < report.requests
        assert 0.2 <= report.longest_outage <= 1.2, report
        # A server the CA did not sign is a failure, with the TLS error as its cause.
        other = ca_certificate("other", keys.generate("ecdsa-p256"), days=1, now=datetime.now(UTC))
        (tmp_path / "other.crt").write_bytes(other.public_bytes(Encoding.PEM))
        ok, why = https_check(
            "127.0.0.1", port, "/readyz", ca_context(str(tmp_path / "other.crt"))
        )()
        assert not ok and why.startswith("TLS error: "), why
    finally:
        served.shutdown()
        served.server_close()


def test_a_server_that_is_gone_is_a_failure_with_its_cause(server: Switchable) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    check = https_check("127.0.0.1", port, "/readyz", None, timeout=0.5)
    prober = Prober({"gone": check}, interval=0.02)
    prober.start()
    time.sleep(0.1)
    [report] = prober.stop()
    assert report.requests >= 1 and report.failures == report.requests
    assert report.percent == 0
    assert report.first_failure == "connection refused"


def test_a_check_that_raises_counts_as_a_failure_and_probing_goes_on() -> None:
    answers: Iterator[Exception | tuple[bool, str]] = iter([ValueError("boom"), (True, "HTTP 200")])

    def check() -> tuple[bool, str]:
        answer = next(answers, (True, "HTTP 200"))
        if isinstance(answer, Exception):
            raise answer
        return answer

    with probing({"flaky": check}, interval=0.01) as prober:
        time.sleep(0.1)
    [report] = prober.report()
    assert report.failures == 1 and report.requests > 1
    assert report.first_failure == "ValueError: boom"


@pytest.mark.parametrize(
    ("samples", "failures", "longest"),
    [
        ([], 0, 0.0),
        ([(0.0, True), (0.5, True)], 0, 0.0),
        ([(0.0, True), (0.5, False), (1.0, False), (1.5, True), (2.0, False), (2.5, True)], 3, 1.0),
        ([(0.0, True), (0.5, False), (1.0, False)], 2, 0.5),  # still down at the end
        ([(0.0, False), (0.5, True)], 1, 0.5),
    ],
)
def test_summarize(samples: list[tuple[float, bool]], failures: int, longest: float) -> None:
    report = summarize("e", [Sample(at, ok) for at, ok in samples])
    assert (report.requests, report.failures, report.longest_outage) == (
        len(samples),
        failures,
        longest,
    )
    assert report.percent == (
        100.0 if not samples else 100 * (len(samples) - failures) / len(samples)
    )
