"""The pod network between hosts: every host routes each node's pod CIDR to that node.

The hard way's design for hosts on one L2 segment: no overlay, one static route per node,
programmed by a oneshot unit of kubenorn's so the routes come back at boot. Nodes also route
the Service network to their own interface: a host without a default route has no route for a
ClusterIP, and a connection fails before kube-proxy's DNAT can rewrite it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster, Host
from kubenorn.findings import Finding
from tasks.compose import combined
from tasks.facts import facts_of
from tasks.ssh import RemoteError, run
from tasks.systemd import ensure_service, ensure_unit_config
from tasks.templates import render

ROUTES_UNIT = "kubenorn-routes.service"
ROUTE_PROTOCOL = 44  # kubenorn's routes carry it, so they are flushed and judged as one set


@dataclass(frozen=True)
class PodRoute:
    cidr: str
    via: str
    node: str  # whose pods lie behind it


def pod_routes(cluster: Cluster, host: Host) -> list[PodRoute]:
    """A route to every other node's pod CIDR, through that node's address."""
    return [
        PodRoute(str(node.pod_cidr), str(node.address), node.name)
        for node in cluster.nodes
        if node.pod_cidr is not None and node.name != host.name
    ]


def routes_unit(task: Task, cluster: Cluster) -> str:
    """The routes unit for this host, from the inventory and the interface holding its address."""
    host = cluster.host(task.host.name)
    address = str(host.address)
    needs_service_route = host.has_role("nodes")
    device = facts_of(task).interface_of(address) if needs_service_route else None
    if needs_service_route and device is None:
        raise RemoteError(f"{host.name}: no interface holds its address {address}")
    return render(
        task,
        "network/kubenorn-routes.service.j2",
        pod_routes=pod_routes(cluster, host),
        service_cidr=str(cluster.service_cidr) if needs_service_route else None,
        device=device,
        address=address,
        protocol=ROUTE_PROTOCOL,
    )


def ensure_pod_routes(task: Task, *, cluster: Cluster, dry_run: bool | None = None) -> Result:
    """Ensure this host routes every other node's pods (and, on a node, the Service network)."""
    steps = [
        task.run(
            task=ensure_unit_config,
            unit=ROUTES_UNIT,
            files=[],
            unit_file=routes_unit(task, cluster),
            dry_run=dry_run,
        ),
        task.run(task=ensure_service, unit=ROUTES_UNIT, dry_run=dry_run),
    ]
    return combined(task, steps)


def parse_routes(text: str) -> dict[str, str]:
    """destination -> gateway (or `dev NAME`) from `ip -4 route show` output."""
    routes = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if "via" in fields:
            routes[fields[0]] = fields[fields.index("via") + 1]
        elif "dev" in fields:
            routes[fields[0]] = "dev " + fields[fields.index("dev") + 1]
    return routes


def judge_routes(host: str, wanted: list[PodRoute], routes: dict[str, str]) -> list[Finding]:
    """One finding per missing or misdirected pod route; OK naming how many when all hold."""
    findings = []
    for route in wanted:
        found = routes.get(route.cidr)
        if found == route.via:
            continue
        what = f"routes {route.cidr} via {found}" if found else f"has no route to {route.cidr}"
        detail = f"{what}: {route.node}'s pods are reached via {route.via}"
        findings.append(Finding("pod-routes", host, "CRITICAL", detail))
    if findings:
        return findings
    return [Finding("pod-routes", host, "OK", f"{len(wanted)} routes to other nodes' pods")]


def check_pod_routes(task: Task, *, cluster: Cluster) -> Result:
    """This host's routes to the other nodes' pods, as the kernel holds them right now."""
    wanted = pod_routes(cluster, cluster.host(task.host.name))
    routes = parse_routes(run(task, ["ip", "-4", "route", "show"]).stdout)
    findings = judge_routes(task.host.name, wanted, routes)
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])
