"""The cluster's address ranges beyond the hosts' own: the cluster DNS Service's address in the
service range, and the pod ranges (cluster.cluster_cidr, each node's pod_cidr), checked as the
inventory is read: a wrong value is a Problem naming its file, host and field."""

from __future__ import annotations

import bisect
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from kubenorn.inventory_model import ClusterSection, IPAddress, IPNetwork
from kubenorn.profiles import ProfileError

if TYPE_CHECKING:
    from kubenorn.cluster import Cluster, Host, Report
    from kubenorn.inventory_files import CheckedInventory

# kubeadm's choice: the cluster DNS Service takes the tenth address of the service range.
DNS_SERVICE_INDEX = 10


def dns_service_ip(cluster: ClusterSection, report: Report) -> IPAddress:
    """cluster.dns_service_ip, by default the service range's tenth address (as kubeadm);
    inside the range, and neither its network address nor the `kubernetes` Service's."""
    declared, service_cidr = cluster.dns_service_ip, cluster.service_cidr
    fallback: IPAddress = IPv4Address(0)
    if declared is None:
        if service_cidr.num_addresses <= DNS_SERVICE_INDEX + 1:
            message = (
                f"service_cidr {service_cidr} has no address {DNS_SERVICE_INDEX} for the "
                "cluster DNS Service: set cluster.dns_service_ip"
            )
            report.defaults("cluster.service_cidr", message)
            return fallback
        return service_cidr[DNS_SERVICE_INDEX]
    if declared not in service_cidr:
        message = f"{declared} is not inside service_cidr {service_cidr}"
        report.defaults("cluster.dns_service_ip", message)
    elif declared in (service_cidr[0], service_cidr[1], service_cidr[-1]):
        message = (
            f"{declared} is the service range's network, broadcast or `kubernetes` Service "
            "address; the cluster DNS Service needs another"
        )
        report.defaults("cluster.dns_service_ip", message)
    return declared


def check_pod_networks(inventory: CheckedInventory, cluster: Cluster, report: Report) -> None:
    """Pod ranges: cluster.cluster_cidr clear of the service range and of the hosts, each
    node's pod_cidr inside it and apart from the others'; every node has one where its
    profile gives each node its own."""
    cluster_cidr = cluster.cluster_cidr
    try:
        required = cluster.kubernetes.profile.node_pod_cidr
    except ProfileError:  # preflight names the version
        required = False
    if cluster_cidr is None:
        if required or any(h.pod_cidr is not None for h in cluster.hosts):
            why = f"Kubernetes {cluster.kubernetes.version}" if required else "pod_cidr is set"
            message = f"missing (expected a CIDR such as 10.200.0.0/16: {why})"
            report.defaults("cluster.cluster_cidr", message)
        return
    service = cluster.service_cidr
    if cluster_cidr.version != service.version or cluster_cidr.overlaps(service):
        message = f"{cluster_cidr} must be of service_cidr's IP version and apart from it"
        report.defaults("cluster.cluster_cidr", message)
    for host in cluster.hosts:
        if host.address in cluster_cidr:
            message = f"{host.address} is inside cluster.cluster_cidr {cluster_cidr}"
            report.add("hosts.yaml", host.name, "data.address", message)
    for node in cluster.nodes if required else ():
        if node.pod_cidr is None:
            message = f"missing (expected this node's pod range inside {cluster_cidr})"
            report.host(inventory.hosts[node.name], "pod_cidr", message)
    _check_pod_cidrs(inventory, report, cluster.hosts, cluster_cidr)


def _check_pod_cidrs(
    inventory: CheckedInventory, report: Report, hosts: tuple[Host, ...], cluster_cidr: IPNetwork
) -> None:
    """Each pod_cidr on a node, inside `cluster_cidr`, overlapping no earlier node's.

    The accepted ranges are kept sorted, so a clash is found by bisection: thousands of nodes
    are checked in milliseconds, not in the seconds a pairwise comparison took."""
    owner: dict[str, IPNetwork] = {}
    spans: list[tuple[int, int, int]] = []  # (version, first, last) of the accepted ranges
    for host, pods in ((h, h.pod_cidr) for h in hosts if h.pod_cidr is not None):
        entry = inventory.hosts[host.name]
        span = (pods.version, int(pods.network_address), int(pods.broadcast_address))
        if not host.has_role("nodes"):
            report.host_at(entry, "pod_cidr", "only nodes run pods")
        elif not _inside(pods, cluster_cidr):
            message = f"{pods} is not inside cluster.cluster_cidr {cluster_cidr}"
            report.host_at(entry, "pod_cidr", message)
        elif _overlaps_any(spans, span):
            clash = [
                n for n, other in owner.items() if _inside(other, pods) or _inside(pods, other)
            ]
            report.host_at(entry, "pod_cidr", f"{pods} overlaps the pod_cidr of {clash[0]}")
        else:
            owner[host.name] = pods
            bisect.insort(spans, span)


def _overlaps_any(spans: list[tuple[int, int, int]], span: tuple[int, int, int]) -> bool:
    """Whether `span` overlaps one of the sorted, disjoint `spans` (networks nest or are apart)."""
    version, first, last = span
    at = bisect.bisect_left(spans, span)
    before = spans[at - 1] if at > 0 else None
    after = spans[at] if at < len(spans) else None
    return bool(
        (before and before[0] == version and before[2] >= first)
        or (after and after[0] == version and after[1] <= last)
    )


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    """Whether network `inner` lies within `outer` (False across IP versions)."""
    first, last = int(inner.network_address), int(inner.broadcast_address)
    return inner.version == outer.version and int(outer[0]) <= first and last <= int(outer[-1])
