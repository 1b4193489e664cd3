"""Where the PKI goes on each host: exactly the files its roles need, with mode and owner."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

from kubenorn.cluster import Cluster, Host
from kubenorn.pki.plan import CLUSTER_CA, DOCKER_CA, ETCD_CA, SERVICE_ACCOUNT
from kubenorn.pki.store import PkiError, Store

Kind = Literal["cert", "key", "public", "kubeconfig"]


@dataclass(frozen=True)
class Placement:
    """One file on one host: the state item it holds (`kind`, `source`), path, mode, owner."""

    kind: Kind
    source: str  # a certificate name (cert, key), SERVICE_ACCOUNT, or a kubeconfig name
    path: str
    mode: str
    owner: str
    group: str
    # Written by this service's own task rather than the certificates step, so that a change
    # owes exactly that service a restart (one that survives an interrupted run).
    service: str | None = None

    @property
    def secret(self) -> bool:
        return self.kind in ("key", "kubeconfig")


@dataclass(frozen=True)
class Directory:
    path: str
    mode: str
    owner: str
    group: str


class PlacementConflict(ValueError):
    """Two different files would land on the same path of one host."""


def _pair(source: str, directory: str, stem: str, owner: str) -> list[Placement]:
    return [
        Placement("cert", source, posixpath.join(directory, f"{stem}.crt"), "0644", owner, owner),
        Placement("key", source, posixpath.join(directory, f"{stem}.key"), "0600", owner, owner),
    ]


def _public(kind: Kind, source: str, directory: str, name: str) -> Placement:
    return Placement(kind, source, posixpath.join(directory, name), "0644", "root", "root")


def _etcd(cluster: Cluster, host: Host) -> list[Placement]:
    directory, user = cluster.etcd.cert_dir, cluster.etcd.user
    return [
        _public("cert", ETCD_CA, directory, "ca.crt"),
        *_pair(f"etcd-server-{host.name}", directory, "server", user),
        *_pair(f"etcd-peer-{host.name}", directory, "peer", user),
        # For etcdctl on the member itself (health checks run as root).
        *_pair("etcd-healthcheck-client", directory, "healthcheck-client", "root"),
    ]


def _kubeconfig(cluster: Cluster, source: str, file: str) -> Placement:
    path = posixpath.join(cluster.kubernetes.config_dir, f"{file}.kubeconfig")
    user = cluster.kubernetes.user
    return Placement("kubeconfig", source, path, "0600", user, user)


def _controller(cluster: Cluster) -> list[Placement]:
    directory, user = cluster.kubernetes.cert_dir, cluster.kubernetes.user
    # The CA private keys are not among these: they never leave the control machine.
    return [
        _public("cert", CLUSTER_CA, directory, "ca.crt"),
        _public("cert", ETCD_CA, directory, "etcd-ca.crt"),
        *_pair("apiserver", directory, "apiserver", user),
        *_pair("apiserver-kubelet-client", directory, "apiserver-kubelet-client", user),
        *_pair("apiserver-etcd-client", directory, "apiserver-etcd-client", user),
        Placement("key", SERVICE_ACCOUNT, f"{directory}/sa.key", "0600", user, user),
        _public("public", SERVICE_ACCOUNT, directory, "sa.pub"),
        _kubeconfig(cluster, "admin", "admin"),
        _kubeconfig(cluster, "kube-scheduler", "kube-scheduler"),
        _kubeconfig(cluster, "kube-controller-manager", "kube-controller-manager"),
    ]


def _node(cluster: Cluster, host: Host) -> list[Placement]:
    directory, user = cluster.kubernetes.cert_dir, cluster.kubernetes.user
    return [
        _public("cert", CLUSTER_CA, directory, "ca.crt"),
        *_pair(f"kubelet-server-{host.name}", directory, "kubelet", user),
        _kubeconfig(cluster, f"kubelet-{host.name}", "kubelet"),
        _kubeconfig(cluster, "kube-proxy", "kube-proxy"),
    ]


DOCKER_UNIT = "docker.service"


def docker_tls(host: Host) -> list[Placement]:
    """docker's TCP API files on a node that asks for it: CA, server certificate, server key."""
    if host.docker_tcp is None or not host.has_role("nodes"):
        return []
    directory, server = host.docker_tcp.cert_dir, f"docker-server-{host.name}"
    files: list[tuple[Kind, str, str, str]] = [
        ("cert", DOCKER_CA, "ca.crt", "0644"),
        ("cert", server, "server.crt", "0644"),
        ("key", server, "server.key", "0600"),
    ]
    return [
        Placement(kind, source, posixpath.join(directory, name), mode, "root", "root", DOCKER_UNIT)
        for kind, source, name, mode in files
    ]


def placements(cluster: Cluster, host: Host) -> tuple[Placement, ...]:
    """Every PKI file `host` needs for its roles; PlacementConflict if two share a path."""
    wanted: list[Placement] = []
    if host.has_role("etcd"):
        wanted += _etcd(cluster, host)
    if host.has_role("controllers"):
        wanted += _controller(cluster)
    if host.has_role("nodes"):
        wanted += _node(cluster, host) + docker_tls(host)
    by_path: dict[str, Placement] = {}
    for placement in wanted:
        other = by_path.setdefault(placement.path, placement)
        if other != placement:
            raise PlacementConflict(
                f"{host.name}: {placement.path} would hold both {other.kind} {other.source} "
                f"and {placement.kind} {placement.source}: give etcd and Kubernetes "
                "different cert_dir settings"
            )
    return tuple(by_path.values())


def directories(cluster: Cluster, host: Host) -> tuple[Directory, ...]:
    """The directories those files live in, created before them."""
    wanted: list[Directory] = []
    if host.has_role("etcd"):
        # etcd reads its keys through this directory; nobody else lists it.
        wanted.append(Directory(cluster.etcd.cert_dir, "0750", "root", cluster.etcd.user))
    if host.has_role("controllers") or host.has_role("nodes"):
        wanted.append(Directory(cluster.kubernetes.cert_dir, "0755", "root", "root"))
        wanted.append(Directory(cluster.kubernetes.config_dir, "0755", "root", "root"))
    # Only dockerd (root) reads its TLS files.
    docker_dirs = {posixpath.dirname(p.path) for p in docker_tls(host)}
    wanted += [Directory(d, "0700", "root", "root") for d in sorted(docker_dirs)]
    return tuple(dict.fromkeys(wanted))


def content(store: Store, placement: Placement) -> bytes:
    """The bytes `placement` should hold, from the state directory; PkiError when absent."""
    paths = {
        "cert": store.cert_path,
        "key": store.key_path,
        "public": store.public_path,
        "kubeconfig": store.kubeconfig_path,
    }
    path = paths[placement.kind](placement.source)
    data = store.read(path)
    if data is None:
        raise PkiError(f"{path} is missing: run `python -m runbooks.pki init` first")
    return data
