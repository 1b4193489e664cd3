"""The cluster an inventory describes, as one frozen, typed model.

Built from the inventory as Nornir holds it (read once, by kubenorn's inventory plugin, each
entry validated against kubenorn.inventory_model): host-level fields are what Nornir resolves
for the host (host data, then its groups', then defaults), and every problem names the file,
host (or group) and field where the value is set. The cluster-wide sections (`cluster`, `pki`,
`etcd`, `kubernetes`) come from defaults.yaml only. etcd member names and the initial-cluster
list are both derived from the one `etcd` group, so they cannot disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.inventory import Host as NornirHost
from nornir.core.inventory import Inventory
from pydantic import ValidationError

from kubenorn import inventory_model as model
from kubenorn.image_archives import ImageArchive
from kubenorn.inventory_files import CheckedInventory, read_inventory
from kubenorn.inventory_model import KEY_ALGORITHMS, IPAddress, IPNetwork, Problem, valid_dns_name
from kubenorn.networks import check_pod_networks, dns_service_ip
from kubenorn.nornir_setup import INVENTORY_SETTING, inventory_dir_of
from kubenorn.profiles import Profile, profile_for
from kubenorn.security_settings import SecuritySettings, read_security

ROLES = ("etcd", "controllers", "nodes")
__all__ = ["KEY_ALGORITHMS", "Problem"]


class ClusterError(Exception):
    """The inventory does not describe a usable cluster; one problem per line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class DockerTcp:
    """docker's API on TCP (runtime.docker.tcp): the port, and the node's TLS directory."""

    port: int
    cert_dir: str


@dataclass(frozen=True)
class Host:
    """One inventory host: its name, the address peers use, its roles (groups)."""

    name: str
    address: IPAddress
    groups: tuple[str, ...]
    fqdn: str | None = None
    etcd_name: str | None = None
    runtime: str | None = None  # a node's container runtime kind (runtime.kind)
    docker_tcp: DockerTcp | None = None  # docker's API on TCP, mutual TLS only
    pod_cidr: IPNetwork | None = None  # a node's pod addresses (inside cluster.cluster_cidr)

    @property
    def dns_names(self) -> tuple[str, ...]:
        """Every name peers may dial: inventory name, FQDN and its short name, no repeats."""
        names = [self.name]
        if self.fqdn:
            names += [self.fqdn, self.fqdn.split(".")[0]]
        return tuple(dict.fromkeys(names))

    def has_role(self, role: str) -> bool:
        return role in self.groups


def url(address: IPAddress, port: int) -> str:
    """An https URL for `address`:`port` (IPv6 in brackets)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"https://{host}:{port}"


@dataclass(frozen=True)
class EtcdMember:
    """An etcd member: its ETCD_NAME and the URLs its peers and clients dial."""

    host: Host
    name: str
    peer_url: str
    client_url: str


@dataclass(frozen=True)
class EtcdSettings:
    version: str
    client_port: int
    peer_port: int
    user: str
    cert_dir: str
    members: tuple[EtcdMember, ...]
    disk_warn_free_percent: int = 20
    # Only from an imported legacy config: preflight compares it with the derived list.
    declared_initial_cluster: tuple[tuple[str, str], ...] | None = None

    @property
    def initial_cluster(self) -> str:
        """ETCD_INITIAL_CLUSTER, derived from the members: `name=peer_url,...`."""
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def client_urls(self) -> tuple[str, ...]:
        return tuple(m.client_url for m in self.members)


@dataclass(frozen=True)
class ApiServer:
    """The endpoint every kubeconfig dials; `address` is what `name` resolves to on hosts."""

    name: str
    port: int
    address: IPAddress | None

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.port}"


@dataclass(frozen=True)
class PkiSettings:
    dir: Path
    key_algorithm: str
    ca_validity_days: int
    cert_validity_days: int
    warn_days: int


@dataclass(frozen=True)
class DnsAddon:
    """The cluster DNS add-on (CoreDNS) that deploy applies at cluster.dns_service_ip."""

    image: str
    replicas: int
    upstream: tuple[str, ...]  # resolvers for names outside the cluster; none: answer only it


@dataclass(frozen=True)
class SmokeTest:
    """verify's workload test: a pod on every node, a Service, cluster DNS."""

    image: str
    timeout: int  # seconds for the pods to run and every check to answer


@dataclass(frozen=True)
class KubernetesSettings:
    version: str
    config_dir: str
    cert_dir: str
    user: str
    pause_image: str | None = None  # the pod sandbox image (containerd's sandbox_image)
    kube_reserved: tuple[tuple[str, str], ...] = ()  # (resource, quantity) for the kubelet
    conntrack_max_per_core: int | None = None  # kube-proxy's; None leaves its default
    images: tuple[ImageArchive, ...] = ()  # loaded on every node from archives, never pulled
    dns: DnsAddon | None = None
    smoke_test: SmokeTest | None = None
    # kubernetes.security: the CIS Benchmark settings (kubenorn/security_settings.py).
    security: SecuritySettings = field(default_factory=SecuritySettings)

    @property
    def profile(self) -> Profile:
        """The version profile that decides flags and checks; ProfileError when none does."""
        return profile_for(self.version)


@dataclass(frozen=True)
class Cluster:
    """Everything the deploy needs to know about the cluster, decided once, in Python."""

    inventory_dir: Path
    name: str
    domain: str
    service_cidr: IPNetwork
    dns_service_ip: IPAddress  # the cluster DNS Service's address (kubelet clusterDNS)
    cluster_cidr: IPNetwork | None  # every pod address; each node's pod_cidr lies inside
    apiserver: ApiServer
    kubernetes: KubernetesSettings
    etcd: EtcdSettings
    pki: PkiSettings
    hosts: tuple[Host, ...]

    def in_role(self, role: str) -> tuple[Host, ...]:
        if role in self._roles:
            return self._roles[role]
        return tuple(h for h in self.hosts if h.has_role(role))

    @cached_property
    def _roles(self) -> dict[str, tuple[Host, ...]]:
        # Asked per host per task (cluster.nodes): once per model, not once per question.
        return {role: tuple(h for h in self.hosts if h.has_role(role)) for role in ROLES}

    @property
    def controllers(self) -> tuple[Host, ...]:
        return self.in_role("controllers")

    @property
    def nodes(self) -> tuple[Host, ...]:
        return self.in_role("nodes")

    @cached_property
    def _by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    def host(self, name: str) -> Host:
        return self._by_name[name]

    @property
    def first_service_ip(self) -> IPAddress:
        """The `kubernetes` Service's cluster IP: the first address of the service range."""
        return self.service_cidr[1]

    def host_entries(self) -> list[tuple[str, list[str]]]:
        """/etc/hosts lines (address, names) for every host, and the apiserver endpoint."""
        entries = [(str(h.address), list(h.dns_names)) for h in self.hosts]
        if self.apiserver.address is not None:
            entries.append((str(self.apiserver.address), [self.apiserver.name]))
        return entries


def inspect(inventory_dir: Path) -> tuple[Cluster | None, list[Problem]]:
    """The cluster in `inventory_dir` (None when it has errors) and every problem found."""
    return inspect_inventory(read_inventory(inventory_dir))


def inspect_inventory(inventory: Inventory) -> tuple[Cluster | None, list[Problem]]:
    """The cluster a Nornir inventory loaded by kubenorn's plugin describes (None when it has
    errors), and every problem found."""
    if not isinstance(inventory, CheckedInventory):
        raise TypeError("the inventory was not loaded by kubenorn's inventory plugin")
    problems = list(inventory.problems)
    cluster = _build(inventory, problems)
    return (None if _has_errors(problems) else cluster), problems


def load_cluster(inventory_dir: Path) -> Cluster:
    """The cluster in `inventory_dir`; ClusterError lists every error (file, host, field)."""
    cluster, problems = inspect(inventory_dir)
    if cluster is None:
        raise ClusterError([p for p in problems if p.status == "CRITICAL"])
    return cluster


_built = threading.Lock()


def cluster_of_nornir(nr: Nornir) -> Cluster:
    """The cluster of the inventory a Nornir object (filtered or not) was loaded from, built
    once from the inventory Nornir holds; ClusterError lists every error."""
    inventory = nr.config.user_defined.get(INVENTORY_SETTING)
    if inventory is None:  # a Nornir object not made by init_nornir
        return load_cluster(inventory_dir_of(nr).resolve())
    with _built:
        if inventory.cluster is None:
            inventory.cluster = inspect_inventory(inventory)
    cluster, problems = inventory.cluster
    if cluster is None:
        raise ClusterError([p for p in problems if p.status == "CRITICAL"])
    return cluster


def _has_errors(problems: list[Problem]) -> bool:
    return any(p.status == "CRITICAL" for p in problems)


def origin(host: NornirHost, key: str) -> tuple[str, str]:
    """The file and entry (host, `group NAME` or `defaults`) whose data gives `host` its `key`,
    in the order Nornir resolves it."""
    if key in host.data:
        return "hosts.yaml", host.name
    for group in host.extended_groups():
        if key in group.data:
            return "groups.yaml", f"group {group.name}"
    return "defaults.yaml", "defaults"


class Report:
    """Problems about the inventory, each named where its value is set."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def add(self, file: str, where: str, field: str, message: str) -> None:
        self.problems.append(Problem(file, where, field, message))

    def defaults(self, field: str, message: str) -> None:
        self.add("defaults.yaml", "defaults", f"data.{field}", message)

    def host(self, host: NornirHost, key: str, message: str) -> None:
        """About `key` of `host`: at the host itself (when missing there too)."""
        self.add("hosts.yaml", host.name, f"data.{key}", message)

    def host_at(self, host: NornirHost, key: str, message: str) -> None:
        """About the value `host` resolves for `key`, named where that value is set."""
        self.add(*origin(host, key), f"data.{key}", message)


def _build(inventory: CheckedInventory, problems: list[Problem]) -> Cluster | None:
    report = Report(problems)
    for role in ROLES:
        if inventory.loaded and role not in inventory.groups:
            report.add("groups.yaml", f"group {role}", "-", "missing role group")
    if not inventory.loaded:
        return None
    built_hosts = [(h, _host(h, report)) for h in inventory.hosts.values()]
    hosts = tuple(host for _, host in built_hosts if host is not None)
    _check_roles(inventory, hosts, report)
    settings = inventory.defaults_model
    if settings is None:
        return None
    data = settings.data
    sections = {"cluster": data.cluster, "etcd": data.etcd, "kubernetes": data.kubernetes}
    for name, section in sections.items():
        if section is None:
            report.defaults(name, "missing (expected a mapping)")
    if data.cluster is None or data.etcd is None or data.kubernetes is None:
        return None
    section = data.cluster
    built = Cluster(
        inventory_dir=inventory.directory,
        name=section.name,
        domain=section.domain,
        service_cidr=section.service_cidr,
        dns_service_ip=dns_service_ip(section, report),
        cluster_cidr=section.cluster_cidr,
        apiserver=ApiServer(
            section.apiserver.name, section.apiserver.port, section.apiserver.address
        ),
        kubernetes=_kubernetes(data.kubernetes, section.kubernetes_version, inventory.directory),
        etcd=_etcd(data.etcd, hosts),
        pki=_pki(data.pki, inventory.directory),
        hosts=hosts,
    )
    if not _has_errors(problems):
        check_pod_networks(inventory, built, report)
    return None if _has_errors(problems) else built


def _host(host: NornirHost, report: Report) -> Host | None:
    """The host as Nornir resolves its data; None when a value is wrong (already reported
    where it is set) or its address is missing."""
    if not valid_dns_name(host.name):
        message = "not a valid DNS name (it is used in certificates and /etc/hosts)"
        report.add("hosts.yaml", host.name, "-", message)
    resolved: dict[str, Any] = {
        key: value for key, value in host.items() if key in model.HostData.model_fields
    }
    try:
        data = model.HostData.model_validate(resolved)
    except ValidationError as error:  # reported where set: build from the valid fields
        wrong = {e["loc"][0] for e in error.errors() if e["loc"]}
        data = model.HostData.model_validate({k: v for k, v in resolved.items() if k not in wrong})
        if "address" in wrong:
            return None
    if data.etcd_name is not None and ("=" in data.etcd_name or "," in data.etcd_name):
        report.host_at(host, "etcd_name", "must not contain '=' or ',' (initial-cluster syntax)")
    if data.address is None:
        report.host(host, "address", "missing (expected an IP address)")
        return None
    runtime = data.runtime.kind if data.runtime else None
    docker = data.runtime.docker if data.runtime and runtime == "docker" else None
    tcp = docker.tcp if docker else None
    return Host(
        name=host.name,
        address=data.address,
        groups=tuple(group.name for group in host.extended_groups()),
        fqdn=data.fqdn,
        etcd_name=data.etcd_name,
        runtime=runtime,
        docker_tcp=DockerTcp(tcp.port, tcp.cert_dir) if tcp else None,
        pod_cidr=data.pod_cidr,
    )


def _etcd(section: model.Etcd, hosts: tuple[Host, ...]) -> EtcdSettings:
    client_port, peer_port = section.client_port, section.peer_port
    members = tuple(
        EtcdMember(h, h.etcd_name or h.name, url(h.address, peer_port), url(h.address, client_port))
        for h in hosts
        if h.has_role("etcd")
    )
    return EtcdSettings(
        version=section.version,
        client_port=client_port,
        peer_port=peer_port,
        user=section.user,
        cert_dir=section.cert_dir,
        members=members,
        disk_warn_free_percent=section.disk_warn_free_percent,
        declared_initial_cluster=section.initial_cluster,
    )


def _kubernetes(section: model.Kubernetes, version: str, inventory_dir: Path) -> KubernetesSettings:
    dns, smoke = section.dns, section.smoke_test
    return KubernetesSettings(
        version=version,
        config_dir=section.config_dir,
        cert_dir=section.cert_dir,
        user=section.user,
        pause_image=section.pause_image,
        kube_reserved=section.kube_reserved,
        conntrack_max_per_core=section.conntrack_max_per_core,
        images=tuple(
            ImageArchive(image.name, inventory_dir / image.archive, image.digest)
            for image in section.images
        ),
        dns=DnsAddon(dns.image, dns.replicas, tuple(map(str, dns.upstream))) if dns else None,
        smoke_test=SmokeTest(smoke.image, smoke.timeout) if smoke else None,
        security=read_security(section.security),
    )


def _pki(section: model.Pki, inventory_dir: Path) -> PkiSettings:
    return PkiSettings(
        dir=(inventory_dir / section.dir).resolve(),
        key_algorithm=section.key_algorithm,
        ca_validity_days=section.ca_validity_days,
        cert_validity_days=section.cert_validity_days,
        warn_days=section.warn_days,
    )


def _check_roles(inventory: CheckedInventory, hosts: tuple[Host, ...], report: Report) -> None:
    """Each role has a host; no two hosts share a name, address or etcd member name."""
    for role in ROLES:
        if role in inventory.groups and not any(h.has_role(role) for h in hosts):
            report.add("groups.yaml", f"group {role}", "-", "has no hosts")
    _no_duplicates(report, [(h.name, h.name.lower()) for h in hosts], "-", "name (ignoring case)")
    _no_duplicates(report, [(h.name, str(h.address)) for h in hosts], "data.address", "address")
    etcd = [(h.name, h.etcd_name or h.name) for h in hosts if h.has_role("etcd")]
    _no_duplicates(report, etcd, "data.etcd_name", "etcd member name")


def _no_duplicates(report: Report, pairs: list[tuple[str, str]], field: str, what: str) -> None:
    owner: dict[str, str] = {}
    for host, value in pairs:
        if value in owner:
            report.add("hosts.yaml", host, field, f"{what} {value} is also used by {owner[value]}")
        owner.setdefault(value, host)
