"""One HTTPS GET from the control machine, with a timeout: its status, or why there was none.

Shared by the checks that look at a listener from where anyone on the network stands (docker's
TCP API, the kubelet's API). Every network step (connect, TLS handshake, send, each read) is
bounded by `timeout`, so a host that accepts and never answers cannot hold verify up.
"""

from __future__ import annotations

import http.client
import re
import ssl

TIMEOUT = 5.0
PROBE_ERRORS = (OSError, http.client.HTTPException, ValueError)  # ssl.SSLError is an OSError
_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)$")
# OpenSSL's names for the alert a server sends when it wants a client certificate and got none:
# TLS 1.3's certificate_required; over TLS 1.2, bad_certificate (Go, so docker) or
# handshake_failure (OpenSSL servers).
CERTIFICATE_REFUSALS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }
)


def https_get(
    address: str, port: int, path: str, context: ssl.SSLContext, *, timeout: float, limit: int
) -> tuple[int, bytes]:
    """(HTTP status, at most `limit` bytes of the body); PROBE_ERRORS when there is no answer."""
    connection = http.client.HTTPSConnection(address, port, context=context, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(limit) if limit else b""
    finally:
        connection.close()


def anonymous_context() -> ssl.SSLContext:
    """TLS as a stranger: no client certificate, the server's certificate not verified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def refused_for_no_certificate(error: Exception) -> bool:
    """Did the server refuse the TLS handshake for want of a client certificate?

    Only that: a timeout, a refused connection, a server certificate that does not verify or a
    reset are other answers (the listener may be down or not what it claims), never a refusal.
    """
    return (
        isinstance(error, ssl.SSLError)
        and not isinstance(error, ssl.SSLCertVerificationError)
        and getattr(error, "reason", None) in CERTIFICATE_REFUSALS
    )


def cause(error: Exception, timeout: float) -> str:
    """Why a probe got no HTTP answer, in a few words: "connection refused", "timed out"."""
    if isinstance(error, TimeoutError):  # socket.timeout too, and a handshake that timed out
        return f"timed out after {timeout:g}s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {_SSL_LOCATION.sub('', str(error))}"
    if isinstance(error, http.client.HTTPException):  # before OSError: RemoteDisconnected is both
        return f"no HTTP answer: {error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return str(error) or type(error).__name__


def anonymous_get(
    address: str, port: int, path: str, *, timeout: float = TIMEOUT
) -> tuple[int | None, str]:
    """(HTTP status, "") for an anonymous GET of `path`; (None, its cause) when none came."""
    try:
        status, _ = https_get(address, port, path, anonymous_context(), timeout=timeout, limit=0)
    except PROBE_ERRORS as error:
        return None, cause(error, timeout)
    return status, ""
