"""Availability checks of the apiserver endpoint as each node reaches it: through its own load
balancer, asked by curl on the node over its SSH connection (haproxy binds the endpoint's
address, 127.0.0.1 on the lab, which only the node itself can reach); and, where that address
is not a loopback one, from the control machine too."""

from __future__ import annotations

import posixpath

import paramiko
from nornir.core import Nornir

from kubenorn.availability import Check, ca_context, https_check
from kubenorn.cluster import Cluster
from kubenorn.pki.store import Store
from tasks.ssh import RemoteError, command_line, execute

TIMEOUT = 2.0


def curl_check(ssh: paramiko.Transport, host: str, url: str, ca_file: str) -> Check:
    """A check: `url` answers 200 to curl on `host`, over its SSH transport."""
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{TIMEOUT:g}", "--cacert", ca_file]
    line = command_line([*argv, "-w", "%{http_code}", url])

    def check() -> tuple[bool, str]:
        try:
            result = execute(ssh, line, timeout=TIMEOUT + 5, host=host)
        except (RemoteError, paramiko.SSHException, OSError) as error:
            return False, f"ssh: {error}"
        code = result.stdout.strip()
        if result.rc != 0:
            return False, (result.stderr.strip() or f"curl exited {result.rc}")[-200:]
        return code == "200", f"HTTP {code}"

    return check


def endpoint_checks(nr: Nornir, cluster: Cluster, nodes: list[str], path: str) -> dict[str, Check]:
    """A check per node (its load balancer, from the node), and one from the control machine
    when the endpoint's address is not a loopback one. Connections must be open already."""
    endpoint = cluster.apiserver
    url = f"https://{endpoint.name}:{endpoint.port}{path}"
    ca_file = posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")
    checks: dict[str, Check] = {}
    for name in nodes:
        connection = nr.inventory.hosts[name].get_connection("netmiko", nr.config)
        ssh = connection.remote_conn_pre.get_transport()
        checks[f"{name} -> {endpoint.name}:{endpoint.port}"] = curl_check(ssh, name, url, ca_file)
    address = endpoint.address
    if address is not None and not address.is_loopback:
        context = ca_context(str(Store(cluster.pki.dir).cert_path("ca")))
        checks[f"here -> {address}:{endpoint.port}"] = https_check(
            str(address), endpoint.port, path, context
        )
    return checks
