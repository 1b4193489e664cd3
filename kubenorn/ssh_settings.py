"""Preflight of the SSH settings: what a connection needs, checked before any host is touched.

The key file and known_hosts are resolved as the connection resolves them (relative to the
inventory), and known_hosts is looked up as paramiko looks a host up: by its `hostname` (else
its name), as `[address]:port` when the port is not 22.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paramiko

from kubenorn.inventory_model import Problem
from kubenorn.nornir_setup import InventoryError, init_nornir, key_file_path, known_hosts_path

SSH = "data.ssh"


def ssh_problems(inventory_dir: Path) -> list[Problem]:
    """Every SSH setting a connection would trip on, naming the host (or `defaults`) and field."""
    try:
        nr = init_nornir(inventory_dir)
    except InventoryError as error:
        return [Problem("-", "-", "-", str(error))]
    hosts = list(nr.inventory.hosts.values())
    found: list[Problem] = []
    key_files: dict[Path, list[str]] = {}
    known: dict[Path, list[tuple[str, str, int]]] = {}
    for host in hosts:
        ssh: dict[str, Any] = host.get("ssh") or {}
        port = host.port if host.port is not None else 22  # types: checked as it was read
        if key_file := key_file_path(host, inventory_dir):
            key_files.setdefault(key_file, []).append(host.name)
        if ssh.get("verify_host_keys", True) is not False and isinstance(port, int):
            entry = (host.name, host.hostname or host.name, port)
            known.setdefault(known_hosts_path(host, inventory_dir), []).append(entry)
    for path, names in key_files.items():
        if why := _unreadable(path):
            found.append(Problem("defaults.yaml", _who(names, hosts), f"{SSH}.key_file", why))
    for path, entries in known.items():
        names = [name for name, _, _ in entries]
        if why := _unreadable(path):
            found.append(Problem("defaults.yaml", _who(names, hosts), f"{SSH}.known_hosts", why))
            continue
        found += _missing_entries(path, entries)
    return found


def _unreadable(path: Path) -> str:
    """Why `path` cannot be read as a file ("" when it can)."""
    if not path.exists():
        return f"{path}: missing"
    if not path.is_file():
        return f"{path}: not a file"
    try:
        with path.open("rb"):
            return ""
    except OSError as error:
        return f"{path}: cannot be read ({error.strerror or error})"


def _missing_entries(path: Path, entries: list[tuple[str, str, int]]) -> list[Problem]:
    try:
        keys = paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException, ValueError) as error:
        return [Problem("defaults.yaml", "defaults", f"{SSH}.known_hosts", f"{path}: {error}")]
    found = []
    for name, address, port in entries:
        entry = address if port == 22 else f"[{address}]:{port}"
        if not keys.lookup(entry):
            message = f"{path} has no entry for {entry}: the connection would be refused"
            found.append(Problem("hosts.yaml", name, f"{SSH}.known_hosts", message))
    return found


def _who(names: list[str], hosts: list[Any]) -> str:
    return "defaults" if len(names) == len(hosts) else ", ".join(names)
