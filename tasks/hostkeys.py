"""Explain a rejected SSH host key: which host, which key it presented, what known_hosts holds."""

from __future__ import annotations

import socket
from pathlib import Path

import paramiko
from nornir.core.inventory import Host

# paramiko's own wording for an unknown key (RejectPolicy) and for a changed one.
_FAILURE_MARKERS = ("not found in known_hosts", "does not match")


def is_host_key_failure(message: str) -> bool:
    """Whether a connection error came from host-key verification."""
    return any(marker in message for marker in _FAILURE_MARKERS)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of `key`, as `ssh-keygen -l` prints it."""
    return f"{key.get_name()} {key.fingerprint}"


def presented_key(address: str, port: int, timeout: float = 5.0) -> paramiko.PKey:
    """The host key a server presents, fetched by a key exchange with no authentication."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        probe = paramiko.Transport(sock)
        try:
            probe.start_client(timeout=timeout)
            return probe.get_remote_server_key()
        finally:
            probe.close()


def known_keys(known_hosts: Path, address: str, port: int) -> list[paramiko.PKey]:
    """The keys `known_hosts` holds for `address`."""
    if not known_hosts.is_file():
        return []
    entry = address if port == 22 else f"[{address}]:{port}"
    keys = paramiko.HostKeys(str(known_hosts)).lookup(entry)
    return list(keys.values()) if keys else []


def explain(host: Host) -> str:
    """A message naming the host, the key it presented and what known_hosts expected."""
    extras = host.connection_options["netmiko"].extras or {}
    known_hosts = Path(extras.get("alt_key_file", "known_hosts"))
    address, port = host.hostname or host.name, host.port or 22
    try:
        got = fingerprint(presented_key(address, port))
    except (OSError, paramiko.SSHException) as error:
        got = f"(could not fetch it again: {error})"
    expected = [fingerprint(key) for key in known_keys(known_hosts, address, port)]
    if not expected:
        return (
            f"{host.name} ({address}:{port}): host key {got} is not in {known_hosts}; "
            f"refusing to connect to an unknown host"
        )
    return (
        f"{host.name} ({address}:{port}): host key CHANGED: it presented {got} but "
        f"{known_hosts} expects {', '.join(expected)}; refusing to connect"
    )
