"""Preflight: everything that can be checked before a host is touched, as findings.

The inventory's own problems (missing groups or fields, duplicates, types), then the cluster
rules: etcd quorum and member names, the apiserver endpoint, versions, the service range,
where the PKI files go, and the PKI check of the certificates the deploy will use.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from kubenorn.cluster import ROLES, Cluster, EtcdMember, Problem, inspect
from kubenorn.findings import Finding
from kubenorn.inventory_model import is_ip
from kubenorn.pki.local import check_state
from kubenorn.pki.placement import PlacementConflict, placements
from kubenorn.pki.rehearsal import with_pki_dir
from kubenorn.profiles import ProfileError
from kubenorn.ssh_settings import ssh_problems

DEFAULTS = "defaults.yaml"


def preflight(
    inventory_dir: Path,
    *,
    pki: bool = True,
    pki_dir: Path | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Every finding for the inventory in `inventory_dir` (and its PKI unless `pki` is False;
    read from `pki_dir` instead of the inventory's state directory when given)."""
    cluster, problems = inspect(inventory_dir)
    if cluster is not None:
        problems = problems + cluster_problems(cluster) + ssh_problems(inventory_dir)
    findings = [p.finding() for p in problems]
    if cluster is not None and not problems:
        summary = (
            f"{inventory_dir}: {len(cluster.hosts)} hosts, {len(cluster.etcd.members)} etcd "
            f"members, {len(cluster.controllers)} controllers, {len(cluster.nodes)} nodes"
        )
        findings.append(Finding("inventory", "cluster", "OK", summary))
    if cluster is not None and pki:
        findings += pki_findings(with_pki_dir(cluster, pki_dir) if pki_dir else cluster, now)
    return findings


def cluster_problems(cluster: Cluster) -> list[Problem]:
    """The rules a structurally valid inventory must still satisfy."""
    return [
        *roles(cluster),
        *etcd_quorum(cluster),
        *initial_cluster(cluster),
        *apiserver_resolution(cluster),
        *versions(cluster),
        *service_range(cluster),
        *placement_conflicts(cluster),
    ]


def roles(cluster: Cluster) -> list[Problem]:
    """A host in no role group would be neither deployed nor checked: surely a mistake."""
    return [
        Problem("hosts.yaml", host.name, "groups", f"in no role group ({', '.join(ROLES)})")
        for host in cluster.hosts
        if not any(host.has_role(role) for role in ROLES)
    ]


def etcd_quorum(cluster: Cluster) -> list[Problem]:
    count = len(cluster.etcd.members)
    if count >= 3 and count % 2:
        return []
    why = "no member may fail" if count < 3 else f"tolerates no more failures than {count - 1}"
    message = f"{count} etcd members: {why}; use 3 or 5"
    return [Problem("hosts.yaml", "group etcd", "groups", message, "WARNING")]


def initial_cluster(cluster: Cluster) -> list[Problem]:
    """An imported ETCD_INITIAL_CLUSTER must name each member as its ETCD_NAME and peer URL."""
    declared = cluster.etcd.declared_initial_cluster
    if declared is None:
        return []
    field = "data.etcd.initial_cluster"
    found = []
    names = {name for name, _ in declared}
    for name, peer_url in declared:
        entry = f"entry {name}={peer_url}"
        parts = urlsplit(peer_url)
        if parts.scheme != "https":
            found.append(Problem(DEFAULTS, "defaults", field, f"{entry}: peers must use https"))
        member = _member_at(cluster, parts.hostname or "")
        if member is None:
            found.append(
                Problem(DEFAULTS, "defaults", field, f"{entry}: no etcd member at that URL")
            )
        elif member.name != name:
            message = (
                f"{entry} names member {member.host.name} '{name}', but its ETCD_NAME is "
                f"'{member.name}': a first start fails (\"couldn't find local name\"), and "
                "an existing member hides it until its data directory is rebuilt"
            )
            found.append(Problem(DEFAULTS, "defaults", field, message))
        elif parts.port != cluster.etcd.peer_port:
            found.append(
                Problem(DEFAULTS, "defaults", field, f"{entry}: port is not etcd.peer_port")
            )
    for member in cluster.etcd.members:
        if member.name not in names:
            listed = ", ".join(sorted(names))
            message = f"ETCD_NAME '{member.name}' is not in etcd.initial_cluster ({listed})"
            found.append(Problem("hosts.yaml", member.host.name, "data.etcd_name", message))
    return found


def _member_at(cluster: Cluster, host: str) -> EtcdMember | None:
    """The member a peer URL's host part designates, by address or by any of its names."""
    for member in cluster.etcd.members:
        if host in (str(member.host.address), *member.host.dns_names):
            return member
    return None


def apiserver_resolution(cluster: Cluster) -> list[Problem]:
    """Nodes must be able to resolve the apiserver name from inventory data alone."""
    endpoint = cluster.apiserver
    if endpoint.address is not None or is_ip(endpoint.name):
        return []
    if any(endpoint.name in host.dns_names for host in cluster.hosts):
        return []
    message = (
        f"nodes cannot resolve {endpoint.name!r} from the inventory: set "
        "cluster.apiserver.address or name an inventory host"
    )
    return [Problem(DEFAULTS, "defaults", "data.cluster.apiserver.address", message)]


def versions(cluster: Cluster) -> list[Problem]:
    """A profile for the Kubernetes version, a runtime it supports on every node, etcd 3."""
    found = []
    try:
        runtimes = cluster.kubernetes.profile.runtimes
    except ProfileError as error:
        found.append(Problem(DEFAULTS, "defaults", "data.cluster.kubernetes_version", str(error)))
        runtimes = ()
    for node in cluster.nodes if runtimes else ():
        if node.runtime not in runtimes:
            message = (
                f"{node.runtime!r}: Kubernetes {cluster.kubernetes.version} runs on "
                f"{' or '.join(runtimes)}"
            )
            found.append(Problem(DEFAULTS, node.name, "data.runtime.kind", message))
    if not cluster.etcd.version.startswith("3."):
        message = f"etcd {cluster.etcd.version}: kubenorn needs etcd 3 (the v3 API)"
        found.append(Problem(DEFAULTS, "defaults", "data.etcd.version", message))
    return found


def service_range(cluster: Cluster) -> list[Problem]:
    """A host inside the service range would be shadowed by service IPs."""
    return [
        Problem(
            "hosts.yaml",
            host.name,
            "data.address",
            f"{host.address} is inside cluster.service_cidr {cluster.service_cidr}",
        )
        for host in cluster.hosts
        if host.address in cluster.service_cidr
    ]


def placement_conflicts(cluster: Cluster) -> list[Problem]:
    found = []
    for host in cluster.hosts:
        try:
            placements(cluster, host)
        except PlacementConflict as error:
            found.append(Problem(DEFAULTS, host.name, "data.*.cert_dir", str(error)))
    return found


def pki_findings(cluster: Cluster, now: datetime | None) -> list[Finding]:
    """The PKI check; before a deploy, a missing state is an error, not an unknown."""
    findings = check_state(cluster, now=now)
    return [
        Finding(f.check, f.host, "CRITICAL", f.detail) if f.status == "UNKNOWN" else f
        for f in findings
    ]
