"""Availability checks of the apiserver endpoint as each node reaches it: through its own load
balancer, asked by curl on the node over its SSH connection (haproxy binds the endpoint's
address, 127.0.0.1 on the lab, which only the node itself can reach); and, where that address
is not a loopback one, from the control machine too."""

from __future__ import annotations

import posixpath

import paramiko
from nornir.core import Nornir
from nornir.core.inventory import Host

from kubenorn.availability import Check, ca_context, https_check
from kubenorn.cluster import Cluster
from kubenorn.pki.store import Store
from tasks.ssh import RemoteError, command_line, execute

TIMEOUT = 2.0


def current_transport(host: Host) -> paramiko.Transport | None:
    """The transport of `host`'s open connection, whichever it is now (tasks reconnect a
    dropped one); never opens one: the run's tasks do."""
    connection = host.connections.get("netmiko")
    client = None if connection is None else connection.connection.remote_conn_pre
    return None if client is None else client.get_transport()


def curl_check(host: Host, url: str, ca_file: str) -> Check:
    """A check: `url` answers 200 to curl on `host`, over its current SSH connection."""
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{TIMEOUT:g}", "--cacert", ca_file]
    line = command_line([*argv, "-w", "%{http_code}", url])

    def check() -> tuple[bool, str]:
        ssh = current_transport(host)
        if ssh is None:
            return False, "ssh: no connection open"
        try:
            result = execute(ssh, line, timeout=TIMEOUT + 5, host=host.name)
        except (RemoteError, paramiko.SSHException, OSError) as error:
            return False, f"ssh: {error}"
        code = result.stdout.strip()
        if result.rc != 0:
            return False, (result.stderr.strip() or f"curl exited {result.rc}")[-200:]
        return code == "200", f"HTTP {code}"

    return check


def endpoint_checks(nr: Nornir, cluster: Cluster, nodes: list[str], path: str) -> dict[str, Check]:
    """A check per node (its load balancer, from the node), and one from the control machine
    when the endpoint's address is not a loopback one. The run's tasks open the connections."""
    endpoint = cluster.apiserver
    url = f"https://{endpoint.name}:{endpoint.port}{path}"
    ca_file = posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")
    checks: dict[str, Check] = {}
    for name in nodes:
        host = nr.inventory.hosts[name]
        checks[f"{name} -> {endpoint.name}:{endpoint.port}"] = curl_check(host, url, ca_file)
    address = endpoint.address
    if address is not None and not address.is_loopback:
        context = ca_context(str(Store(cluster.pki.dir).cert_path("ca")))
        checks[f"here -> {address}:{endpoint.port}"] = https_check(
            str(address), endpoint.port, path, context
        )
    return checks
