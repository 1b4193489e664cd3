"""Health endpoints of the simulated components: plain HTTP, or HTTPS on a self-signed cert."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve_health(
    address: tuple[str, int], healthy: Callable[[], bool], context: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    """/healthz answers 200 "ok" while `healthy()`, 503 otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            ok = self.path.rstrip("/") in ("/healthz", "/livez", "/readyz") and healthy()
            body = b"ok" if ok else b"unhealthy"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serving_context(cert: str | None, key: str | None, name: str) -> ssl.SSLContext:
    """The given serving pair, or a self-signed one as the real components make at start."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if cert and key:
        context.load_cert_chain(cert, key)
        return context
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "365",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(directory / "key.pem"),
            "-out",
            str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    context.load_cert_chain(str(directory / "cert.pem"), str(directory / "key.pem"))
    return context
