"""`init`: issue every certificate, key and kubeconfig the plan needs, and nothing else.

A certificate that fits its plan (present, signed by its CA, key matching, right subject, SANs
and usage, not expired) is kept untouched; an existing private key is never replaced here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509

from kubenorn.cluster import Cluster
from kubenorn.pki import encryption, keys
from kubenorn.pki.builders import ca_certificate, leaf_certificate
from kubenorn.pki.check import Context, Material, certificate_findings, fits
from kubenorn.pki.kubeconfig import Credentials, render
from kubenorn.pki.plan import CLUSTER_CA, SERVICE_ACCOUNT, CertSpec, certificates, kubeconfigs
from kubenorn.pki.store import PUBLIC_MODE, SECRET_MODE, PkiError, Store, write_atomic

Action = Literal["kept", "issued", "reissued", "written"]


@dataclass(frozen=True)
class Change:
    """What happened to one item of the state: `kept` means nothing did."""

    item: str
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: keys.PrivateKey


def init(
    cluster: Cluster, *, algorithm: str | None = None, now: datetime | None = None
) -> list[Change]:
    """Issue what is missing or no longer fits; return one Change per item of the plan."""
    now = now or datetime.now(UTC)
    algorithm = algorithm or cluster.pki.key_algorithm
    store = Store(cluster.pki.dir)
    store.create()
    authorities: dict[str, Authority] = {}
    changes: list[Change] = []
    for spec in certificates(cluster):
        if spec.is_ca:
            authorities[spec.name], change = _ensure_ca(store, spec, cluster, algorithm, now)
        else:
            assert spec.signer is not None
            change = _ensure_leaf(store, spec, authorities[spec.signer], cluster, algorithm, now)
        changes.append(change)
    changes.append(_ensure_service_account(store, algorithm))
    changes.append(_ensure_encryption_key(store, cluster))
    return changes + write_kubeconfigs(cluster, store)


def _ensure_encryption_key(store: Store, cluster: Cluster) -> Change:
    """The key that encrypts Secrets at rest: made once, replaced only by a rotation."""
    state, created = encryption.ensure_state(store, cluster.kubernetes.security.encryption_provider)
    if created:
        key = state.incoming or state.current
        return Change(encryption.STATE_FILE, "issued", f"Secrets key {key.name}")
    return Change(encryption.STATE_FILE, "kept")


def _ensure_ca(
    store: Store, spec: CertSpec, cluster: Cluster, algorithm: str, now: datetime
) -> tuple[Authority, Change]:
    cert, key = store.load_cert(spec.name), store.load_key(spec.name)
    if cert is not None and key is None:
        raise PkiError(f"{store.key_path(spec.name)} is missing: the CA cannot sign; restore it")
    if cert is not None and key is not None:
        if not keys.matches(cert, key):
            raise PkiError(
                f"{store.key_path(spec.name)} does not match {store.cert_path(spec.name)}"
            )
        if now >= cert.not_valid_after_utc:
            raise PkiError(
                f"{store.cert_path(spec.name)} has expired; CA rotation is not supported"
            )
        return Authority(cert, key), Change(spec.name, "kept")
    if key is None:
        key = keys.generate(algorithm)
        store.save_key(spec.name, key, replace=False)
    cert = ca_certificate(spec.common_name, key, days=cluster.pki.ca_validity_days, now=now)
    store.save_cert(spec.name, cert, replace=False)
    return Authority(cert, key), Change(spec.name, "issued", f"CN={spec.common_name}")


def _ensure_leaf(
    store: Store, spec: CertSpec, ca: Authority, cluster: Cluster, algorithm: str, now: datetime
) -> Change:
    # A key that cannot be read is an error, never replaced. Leaf keys never sign here.
    key = store.load_key(spec.name, validate=False)
    try:
        cert = store.load_cert(spec.name)
    except PkiError as error:
        cert, unreadable = None, str(error)
    else:
        unreadable = ""
    material = Material(cert, key)
    if fits(spec, material, ca.cert, now):
        return Change(spec.name, "kept")
    reason = unreadable or _reasons(spec, material, ca.cert, now)
    if key is None:
        key = keys.generate(algorithm)
        store.save_key(spec.name, key, replace=False)
    issue(store, spec, key, ca, cluster, now, replace=store.cert_path(spec.name).exists())
    action: Action = "reissued" if reason else "issued"
    return Change(spec.name, action, reason)


def _reasons(spec: CertSpec, material: Material, ca: x509.Certificate, now: datetime) -> str:
    if material.cert is None:
        return ""
    found = certificate_findings(spec, material, ca, Context("-", now, 0))
    return "; ".join(f.detail.split(": ", 1)[1] for f in found if f.status == "CRITICAL")


def issue(
    store: Store,
    spec: CertSpec,
    key: keys.PrivateKey,
    ca: Authority,
    cluster: Cluster,
    now: datetime,
    *,
    replace: bool,
) -> x509.Certificate:
    """Sign a certificate for `spec` with `key` and save it."""
    days = cluster.pki.cert_validity_days
    cert = leaf_certificate(spec, key.public_key(), ca.cert, ca.key, days=days, now=now)
    store.save_cert(spec.name, cert, replace=replace)
    return cert


def _ensure_service_account(store: Store, algorithm: str) -> Change:
    key = store.load_key(SERVICE_ACCOUNT)
    action: Action = "kept"
    if key is None:
        key = keys.generate(algorithm)
        store.save_key(SERVICE_ACCOUNT, key, replace=False)
        action = "issued"
    public = keys.public_pem(key)
    path = store.public_path(SERVICE_ACCOUNT)
    if store.read(path) != public:
        write_atomic(path, public, PUBLIC_MODE, replace=True)
    return Change(SERVICE_ACCOUNT, action, "service account key pair" if action != "kept" else "")


def load_authority(store: Store, name: str) -> Authority:
    """The CA `name` with its key; PkiError when either is missing."""
    cert, key = store.load_cert(name), store.load_key(name)
    if cert is None or key is None:
        raise PkiError(f"CA {name} is missing from {store.root}: run init first")
    return Authority(cert, key)


def expected_kubeconfig(cluster: Cluster, store: Store, cert: str, user: str) -> bytes | None:
    """The kubeconfig the state implies for certificate `cert`, None if it is not issued."""
    ca_pem = store.read(store.cert_path(CLUSTER_CA))
    cert_pem, key_pem = store.read(store.cert_path(cert)), store.read(store.key_path(cert))
    if ca_pem is None or cert_pem is None or key_pem is None:
        return None
    credentials = Credentials(cluster.apiserver.url, ca_pem, cert_pem, key_pem)
    return render(cluster.name, user, credentials)


def write_kubeconfigs(cluster: Cluster, store: Store) -> list[Change]:
    """Write each kubeconfig whose content the state now implies differently; derived data."""
    changes = []
    for spec in kubeconfigs(cluster):
        path = store.kubeconfig_path(spec.name)
        content = expected_kubeconfig(cluster, store, spec.cert, spec.user)
        if content is None or store.read(path) == content:
            changes.append(Change(f"kubeconfigs/{spec.name}", "kept"))
            continue
        write_atomic(path, content, SECRET_MODE, replace=True)
        changes.append(Change(f"kubeconfigs/{spec.name}", "written", cluster.apiserver.url))
    return changes
