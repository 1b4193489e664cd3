"""`check --remote`: judge the PKI files read from one host against the plan and the state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from kubenorn.cluster import Cluster, Host
from kubenorn.findings import Finding
from kubenorn.pki import keys
from kubenorn.pki.check import CA_CHECKS, Context, Material, certificate_findings, key_mode_problem
from kubenorn.pki.kubeconfig import parse
from kubenorn.pki.placement import Placement, content, placements
from kubenorn.pki.plan import CLUSTER_CA, CertSpec, certificates, kubeconfigs
from kubenorn.pki.store import PkiError, Store


@dataclass(frozen=True)
class RemoteFile:
    """A file as read from a host: its bytes (None when absent) and mode (e.g. "0600")."""

    content: bytes | None
    mode: str | None = None


def deployed_findings(
    cluster: Cluster, host: Host, files: Mapping[str, RemoteFile], *, now: datetime, warn_days: int
) -> list[Finding]:
    """Findings for every PKI file `host` should hold, as read into `files` (path -> file)."""
    store = Store(cluster.pki.dir)
    specs = {spec.name: spec for spec in certificates(cluster)}
    context = Context(host.name, now, warn_days)
    wanted = placements(cluster, host)
    findings: list[Finding] = []
    for placement in wanted:
        remote = files.get(placement.path, RemoteFile(None))
        findings += _file(store, placement, remote, context)
        if remote.content is None:
            continue
        findings += _judge(cluster, store, specs, placement, wanted, files, context)
    return findings


def _file(
    store: Store, placement: Placement, remote: RemoteFile, context: Context
) -> list[Finding]:
    """Presence, mode, and sameness with the state directory."""
    host, path = context.host, placement.path
    if remote.content is None:
        return [Finding("pki.deployed", host, "CRITICAL", f"{path}: missing")]
    found = []
    if remote.mode is not None and (
        problem := key_mode_problem(int(remote.mode, 8), int(placement.mode, 8))
    ):
        found.append(Finding("pki.key_mode", host, problem[0], f"{path}: {problem[1]}"))
    try:
        current = content(store, placement)
    except PkiError:
        current = None
    if remote.content != current:
        found.append(
            Finding(
                "pki.deployed",
                host,
                "WARNING",
                f"{path}: differs from the state directory (distribute again)",
            )
        )
    return found


def _judge(
    cluster: Cluster,
    store: Store,
    specs: dict[str, CertSpec],
    placement: Placement,
    wanted: tuple[Placement, ...],
    files: Mapping[str, RemoteFile],
    context: Context,
) -> list[Finding]:
    """Validity of a deployed certificate (with its deployed key) or kubeconfig."""
    data = files[placement.path].content or b""
    if placement.kind == "kubeconfig":
        return _kubeconfig(cluster, store, specs, placement, data, context)
    if placement.kind != "cert":
        return []
    spec = specs[placement.source]
    key_path = next((p.path for p in wanted if p.kind == "key" and p.source == spec.name), None)
    key_pem = files.get(key_path or "", RemoteFile(None)).content
    return _material_findings(store, spec, data, key_pem, context, placement.path)


def _material_findings(
    store: Store,
    spec: CertSpec,
    cert_pem: bytes,
    key_pem: bytes | None,
    context: Context,
    label: str,
) -> list[Finding]:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = keys.load_private(key_pem) if key_pem is not None else None
    except ValueError as error:
        return [Finding("pki.present", context.host, "CRITICAL", f"{label}: unreadable: {error}")]
    ca = _local_ca(store, spec)
    checks = CA_CHECKS if spec.is_ca else None
    return certificate_findings(spec, Material(cert, key), ca, context, label, checks)


def _local_ca(store: Store, spec: CertSpec) -> x509.Certificate | None:
    # The state directory's CA is the truth: a host holding another CA fails the chain check.
    try:
        return store.load_cert(spec.signer or spec.name)
    except PkiError:
        return None


def _kubeconfig(
    cluster: Cluster,
    store: Store,
    specs: dict[str, CertSpec],
    placement: Placement,
    data: bytes,
    context: Context,
) -> list[Finding]:
    label = placement.path
    try:
        credentials = parse(data)
    except ValueError as error:
        return [Finding("pki.kubeconfig", context.host, "CRITICAL", f"{label}: {error}")]
    if credentials.server != cluster.apiserver.url:
        detail = f"{label}: server {credentials.server}, the inventory says {cluster.apiserver.url}"
        return [Finding("pki.kubeconfig", context.host, "CRITICAL", detail)]
    if credentials.ca_pem != store.read(store.cert_path(CLUSTER_CA)):
        detail = f"{label}: certificate-authority-data is not the cluster CA of the state"
        return [Finding("pki.kubeconfig", context.host, "CRITICAL", detail)]
    cert_name = next(k.cert for k in kubeconfigs(cluster) if k.name == placement.source)
    spec = specs[cert_name]
    return _material_findings(
        store, spec, credentials.cert_pem, credentials.key_pem, context, label
    )
