"""Why an SSH connection could not be opened, in words: not netmiko's advice nor paramiko's text.

netmiko turns every socket error into "TCP connection to device failed" and every paramiko
SSHException into a paragraph; the real cause is the exception it was raised while handling.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator

import paramiko

_UNREACHABLE = {errno.EHOSTUNREACH: "no route to host", errno.ENETUNREACH: "network unreachable"}


def quiet_paramiko() -> None:
    """Keep paramiko's transport thread from printing its traceback on stderr.

    With no handler anywhere, logging's last resort prints paramiko's ERROR records (a
    traceback for a port that is not SSH); a NullHandler stops that, and records still
    propagate to whatever logging the user turned on.
    """
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _socket_cause(error: BaseException, timeout: float) -> str | None:
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
        causes = {_socket_cause(e, timeout) for e in error.errors.values() if e is not None}
        return " / ".join(sorted(c for c in causes if c)) or None
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(error, socket.gaierror):
        return f"the name does not resolve ({error.strerror or error})"
    if isinstance(error, OSError) and error.errno in _UNREACHABLE:
        return _UNREACHABLE[error.errno]
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, ConnectionResetError | EOFError):
        return "closed"
    return None


def connect_cause(error: BaseException, timeout: float) -> str | None:
    """The cause of a failed connection in a few words, or None when it is not one we know."""
    for link in _chain(error):
        if isinstance(link, paramiko.ssh_exception.SSHException) and (
            "banner" in str(link).lower() or "protocol version" in str(link).lower()
        ):
            inner = [_socket_cause(e, timeout) for e in _chain(link) if e is not link]
            text = str(link).lower()
            timed_out = any(c is not None and c.startswith("timed out") for c in inner)
            if timed_out or "timed out" in text or "timeout" in text:
                return f"timed out after {timeout:g} s waiting for the SSH banner"
            return "not an SSH server (no SSH banner)"
        if (
            isinstance(link, paramiko.ssh_exception.SSHException)
            and "no existing session" in str(link).lower()
        ):
            # paramiko gave up on a peer that accepted the connection and never spoke.
            return f"timed out after {timeout:g} s waiting for the SSH banner"
        cause = _socket_cause(link, timeout)
        if cause == "closed":
            return "not an SSH server (it closed the connection)"
        if cause is not None:
            return cause
    return None
