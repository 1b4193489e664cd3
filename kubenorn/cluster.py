"""The cluster an inventory describes, as one frozen, typed model.

Built straight from the inventory's YAML files so that every problem can name its file, host
and field. Host-level fields resolve as Nornir's SimpleInventory does (host data, then each
group's data in order, parents included, then defaults data); the cluster-wide sections
(`cluster`, `pki`, `etcd`, `kubernetes`) are read from defaults.yaml only. etcd member names
and the initial-cluster list are both derived from the one `etcd` group, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

from kubenorn.image_archives import ImageArchive, parse_images
from kubenorn.inventory_fields import Problem, Section, valid_dns_name
from kubenorn.inventory_files import Raw, load_raw
from kubenorn.networks import check_pod_networks, dns_service_ip
from kubenorn.profiles import Profile, profile_for
from kubenorn.security_settings import SecuritySettings, read_security

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
ROLES = ("etcd", "controllers", "nodes")
KEY_ALGORITHMS = ("ecdsa-p256", "rsa-2048", "rsa-4096")


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
    raw = load_raw(inventory_dir)
    cluster = _build(raw)
    return (None if _has_errors(raw.problems) else cluster), raw.problems


def load_cluster(inventory_dir: Path) -> Cluster:
    """The cluster in `inventory_dir`; ClusterError lists every error (file, host, field)."""
    cluster, problems = inspect(inventory_dir)
    if cluster is None:
        raise ClusterError([p for p in problems if p.status == "CRITICAL"])
    return cluster


def _has_errors(problems: list[Problem]) -> bool:
    return any(p.status == "CRITICAL" for p in problems)


def _build(raw: Raw) -> Cluster | None:
    if not raw.loaded:
        return None
    hosts = tuple(h for h in (_host(raw, name) for name in raw.hosts) if h is not None)
    settings = raw.defaults_section
    cluster = settings.section("cluster")
    api = cluster.section("apiserver")
    apiserver = ApiServer(api.text("name"), api.port("port"), api.address("address", None))
    service_cidr = cluster.network("service_cidr")
    built = Cluster(
        inventory_dir=raw.directory,
        name=cluster.text("name"),
        domain=cluster.dns_name("domain"),
        service_cidr=service_cidr,
        dns_service_ip=dns_service_ip(cluster, service_cidr),
        cluster_cidr=cluster.network("cluster_cidr", None),
        apiserver=apiserver,
        kubernetes=_kubernetes(
            settings.section("kubernetes"), cluster.version("kubernetes_version"), raw.directory
        ),
        etcd=_etcd(settings.section("etcd"), hosts),
        pki=_pki(settings.section("pki", required=False), raw.directory),
        hosts=hosts,
    )
    _check_roles(raw, hosts)
    if not _has_errors(raw.problems):
        check_pod_networks(raw, built)
    return None if _has_errors(raw.problems) else built


def _host(raw: Raw, name: str) -> Host | None:
    data = raw.host_section(name)
    if not valid_dns_name(name):
        data.problem("-", "not a valid DNS name (it is used in certificates and /etc/hosts)")
    etcd_name = data.text("etcd_name", None)
    if etcd_name is not None and ("=" in etcd_name or "," in etcd_name):
        data.problem("etcd_name", "must not contain '=' or ',' (initial-cluster syntax)")
    address = data.address("address")
    if address is None:
        return None
    fqdn = data.dns_name("fqdn", None)
    runtime_section = data.section("runtime", required=False)
    runtime = runtime_section.text("kind", None)
    docker_tcp = _docker_tcp(runtime_section) if runtime == "docker" else None
    pod_cidr = data.network("pod_cidr", None)
    groups = raw.groups_of(name)
    return Host(name, address, groups, fqdn, etcd_name, runtime, docker_tcp, pod_cidr)


def _docker_tcp(runtime: Section) -> DockerTcp | None:
    tcp = runtime.section("docker", required=False).optional_section("tcp")
    if tcp is None:
        return None
    return DockerTcp(tcp.port("port"), tcp.abs_path("cert_dir"))


def _etcd(section: Section, hosts: tuple[Host, ...]) -> EtcdSettings:
    client_port, peer_port = section.port("client_port"), section.port("peer_port")
    members = tuple(
        EtcdMember(h, h.etcd_name or h.name, url(h.address, peer_port), url(h.address, client_port))
        for h in hosts
        if h.has_role("etcd")
    )
    return EtcdSettings(
        version=section.version("version"),
        client_port=client_port,
        peer_port=peer_port,
        user=section.text("user"),
        cert_dir=section.abs_path("cert_dir"),
        members=members,
        declared_initial_cluster=section.initial_cluster("initial_cluster"),
    )


def _kubernetes(section: Section, version: str, inventory_dir: Path) -> KubernetesSettings:
    return KubernetesSettings(
        version=version,
        config_dir=section.abs_path("config_dir"),
        cert_dir=section.abs_path("cert_dir"),
        user=section.text("user", "root"),
        pause_image=section.text("pause_image", None),
        kube_reserved=section.resources("kube_reserved"),
        conntrack_max_per_core=section.count("conntrack_max_per_core"),
        images=section.parsed(
            "images",
            lambda value: parse_images(value, inventory_dir),
            "a list of {name, archive} mappings",
            default=(),
        ),
        dns=_dns(section.optional_section("dns")),
        smoke_test=_smoke_test(section.optional_section("smoke_test")),
        security=read_security(section.optional_section("security")),
    )


def _dns(section: Section | None) -> DnsAddon | None:
    if section is None:
        return None
    upstream = section.parsed("upstream", _addresses, "a list of IP addresses", default=())
    return DnsAddon(section.text("image"), section.positive("replicas", 2), upstream)


def _addresses(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"must be a list of IP addresses, not {value!r}")
    return tuple(str(ip_address(str(item))) for item in value)


def _smoke_test(section: Section | None) -> SmokeTest | None:
    if section is None:
        return None
    return SmokeTest(section.text("image"), section.positive("timeout", 120))


def _pki(section: Section, inventory_dir: Path) -> PkiSettings:
    return PkiSettings(
        dir=(inventory_dir / (section.text("dir", ".pki") or ".pki")).resolve(),
        key_algorithm=section.choice("key_algorithm", KEY_ALGORITHMS, "ecdsa-p256"),
        ca_validity_days=section.positive("ca_validity_days", 3650),
        cert_validity_days=section.positive("cert_validity_days", 365),
        warn_days=section.positive("warn_days", 30),
    )


def _check_roles(raw: Raw, hosts: tuple[Host, ...]) -> None:
    """Each role has a host; no two hosts share a name, address or etcd member name."""
    for role in ROLES:
        if role in raw.groups and not any(h.has_role(role) for h in hosts):
            raw.problems.append(Problem("groups.yaml", f"group {role}", "-", "has no hosts"))
    _no_duplicates(raw, [(h.name, h.name.lower()) for h in hosts], "-", "name (ignoring case)")
    _no_duplicates(raw, [(h.name, str(h.address)) for h in hosts], "data.address", "address")
    etcd = [(h.name, h.etcd_name or h.name) for h in hosts if h.has_role("etcd")]
    _no_duplicates(raw, etcd, "data.etcd_name", "etcd member name")


def _no_duplicates(raw: Raw, pairs: list[tuple[str, str]], field: str, what: str) -> None:
    owner: dict[str, str] = {}
    for host, value in pairs:
        if value in owner:
            message = f"{what} {value} is also used by {owner[value]}"
            raw.problems.append(Problem("hosts.yaml", host, field, message))
        owner.setdefault(value, host)
