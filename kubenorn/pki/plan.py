"""Which certificates and kubeconfigs an inventory needs: subject, SANs, usage, signer.

Decided here, as data, so that issuing, checking and distributing all read the same plan
(where each file goes on the hosts is placement.py's part).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from typing import Literal, TypeVar

from kubenorn.cluster import Cluster, Host, IPAddress
from kubenorn.inventory_model import is_ip

Usage = Literal["ca", "server", "client", "peer"]  # peer: both serverAuth and clientAuth

CLUSTER_CA = "ca"
ETCD_CA = "etcd-ca"
DOCKER_CA = "docker-ca"  # only docker's TCP API trusts it: no cluster identity is docker root
DOCKER_CLIENT = "docker-client"  # stays on the control machine, like the CA keys
SERVICE_ACCOUNT = "sa"  # a key pair without a certificate: signs service account tokens
LOOPBACK = ip_address("127.0.0.1")
T = TypeVar("T")


@dataclass(frozen=True)
class CertSpec:
    """One certificate: whom it names, what it may be used for, which CA signs it."""

    name: str
    common_name: str
    usage: Usage
    signer: str | None = None  # None: a self-signed CA
    organization: str | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    host: str | None = None  # the host it identifies, for per-host certificates

    @property
    def is_ca(self) -> bool:
        return self.usage == "ca"


@dataclass(frozen=True)
class KubeconfigSpec:
    """A kubeconfig that authenticates as certificate `cert`, named `user` inside."""

    name: str
    cert: str
    user: str


def _unique(items: list[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


def _member(prefix: str, host: Host) -> CertSpec:
    # Members serve clients and are both ends to peers; etcd's gRPC gateway also dials the
    # client port with the server certificate, so both certificates carry both usages.
    # Since etcd 3.2 a peer's IP SANs must include the address it connects from.
    return CertSpec(
        name=f"{prefix}-{host.name}",
        common_name=host.name,
        usage="peer",
        signer=ETCD_CA,
        dns_names=(*host.dns_names, "localhost"),
        ip_addresses=_unique([host.address, LOOPBACK]),
        host=host.name,
    )


def apiserver_spec(cluster: Cluster) -> CertSpec:
    """The apiserver's serving certificate: every name and address a client may dial."""
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    names.append(f"kubernetes.default.svc.{cluster.domain}")
    ips: list[IPAddress] = [cluster.first_service_ip]
    endpoint = cluster.apiserver
    if is_ip(endpoint.name):
        ips.append(ip_address(endpoint.name))
    else:
        names.append(endpoint.name)
    if endpoint.address is not None:
        ips.append(endpoint.address)
    for host in cluster.controllers:
        names += host.dns_names
        ips.append(host.address)
    ips.append(LOOPBACK)
    return CertSpec(
        "apiserver", "kube-apiserver", "server", CLUSTER_CA, None, _unique(names), _unique(ips)
    )


def _client(name: str, cn: str, org: str | None = None, signer: str = CLUSTER_CA) -> CertSpec:
    return CertSpec(name, cn, "client", signer, org)


def _kubelet(node: Host) -> tuple[CertSpec, CertSpec]:
    client = CertSpec(
        f"kubelet-client-{node.name}",
        f"system:node:{node.name}",
        "client",
        CLUSTER_CA,
        "system:nodes",
        host=node.name,
    )
    server = CertSpec(
        f"kubelet-server-{node.name}",
        node.name,
        "server",
        CLUSTER_CA,
        dns_names=node.dns_names,
        ip_addresses=(node.address,),
        host=node.name,
    )
    return client, server


def _docker_server(node: Host) -> CertSpec:
    return CertSpec(
        f"docker-server-{node.name}",
        node.name,
        "server",
        DOCKER_CA,
        dns_names=node.dns_names,
        ip_addresses=_unique([node.address, LOOPBACK]),
        host=node.name,
    )


def docker_certificates(cluster: Cluster) -> list[CertSpec]:
    """docker's TCP API, where a node asks for it: its own CA, a server per node, one client."""
    tcp_nodes = [node for node in cluster.nodes if node.docker_tcp]
    if not tcp_nodes:
        return []
    return [
        CertSpec(DOCKER_CA, f"{cluster.name} docker CA", "ca"),
        *(_docker_server(node) for node in tcp_nodes),
        _client(DOCKER_CLIENT, "kubenorn-docker-client", signer=DOCKER_CA),
    ]


def certificates(cluster: Cluster) -> tuple[CertSpec, ...]:
    """Every certificate the cluster needs, CAs first (worked out once per cluster model)."""
    # Kept on the (frozen) model the way functools.cached_property keeps its values.
    known: tuple[CertSpec, ...] | None = cluster.__dict__.get("_certificates")
    if known is None:
        known = cluster.__dict__["_certificates"] = _certificates(cluster)
    return known


def _certificates(cluster: Cluster) -> tuple[CertSpec, ...]:
    specs = [
        CertSpec(CLUSTER_CA, f"{cluster.name} cluster CA", "ca"),
        CertSpec(ETCD_CA, f"{cluster.name} etcd CA", "ca"),
    ]
    for member in cluster.etcd.members:
        specs += [_member("etcd-server", member.host), _member("etcd-peer", member.host)]
    specs += [
        _client("apiserver-etcd-client", "kube-apiserver-etcd-client", signer=ETCD_CA),
        _client("etcd-healthcheck-client", "kube-etcd-healthcheck-client", signer=ETCD_CA),
        apiserver_spec(cluster),
        _client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        _client("admin", "admin", "system:masters"),
        _client("kube-scheduler", "system:kube-scheduler"),
        _client("kube-controller-manager", "system:kube-controller-manager"),
        _client("kube-proxy", "system:kube-proxy", "system:node-proxier"),
    ]
    for node in cluster.nodes:
        specs += _kubelet(node)
    return (*specs, *docker_certificates(cluster))


def kubeconfigs(cluster: Cluster) -> tuple[KubeconfigSpec, ...]:
    """The kubeconfigs: admin, scheduler, controller-manager, kube-proxy, one per kubelet."""
    shared = [
        KubeconfigSpec("admin", "admin", "admin"),
        KubeconfigSpec("kube-scheduler", "kube-scheduler", "system:kube-scheduler"),
        KubeconfigSpec(
            "kube-controller-manager", "kube-controller-manager", "system:kube-controller-manager"
        ),
        KubeconfigSpec("kube-proxy", "kube-proxy", "system:kube-proxy"),
    ]
    kubelets = [
        KubeconfigSpec(f"kubelet-{n.name}", f"kubelet-client-{n.name}", f"system:node:{n.name}")
        for n in cluster.nodes
    ]
    return (*shared, *kubelets)
