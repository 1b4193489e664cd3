"""`rotate`: renew leaf certificates (same key unless asked), then refresh the kubeconfigs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from kubenorn.cluster import Cluster
from kubenorn.pki import keys
from kubenorn.pki.issue import Change, issue, load_authority, write_kubeconfigs
from kubenorn.pki.plan import CertSpec, certificates
from kubenorn.pki.store import PkiError, Store


@dataclass(frozen=True)
class Renewal:
    """One renewed certificate: serial and expiry before and after, and whether the key changed."""

    name: str
    old_serial: int
    new_serial: int
    old_not_after: datetime
    new_not_after: datetime
    key_replaced: bool


def select(cluster: Cluster, names: Sequence[str]) -> list[CertSpec]:
    """The leaf certificates named, or of the hosts named; all of them when `names` is empty."""
    leaves = [spec for spec in certificates(cluster) if not spec.is_ca]
    if not names:
        return leaves
    chosen: dict[str, CertSpec] = {}
    for name in names:
        matched = [s for s in leaves if name in (s.name, s.host)]
        if not matched:
            raise PkiError(_unknown(cluster, name, leaves))
        chosen.update((s.name, s) for s in matched)
    return list(chosen.values())


def _unknown(cluster: Cluster, name: str, leaves: list[CertSpec]) -> str:
    if any(spec.is_ca and spec.name == name for spec in certificates(cluster)):
        return f"{name} is a CA: rotate renews leaf certificates only"
    shared = ", ".join(s.name for s in leaves if s.host is None)
    return f"no certificate or host named {name!r} (certificates: {shared}, or a host name)"


def rotate(
    cluster: Cluster,
    names: Sequence[str] = (),
    *,
    new_keys: bool = False,
    algorithm: str | None = None,
    now: datetime | None = None,
) -> tuple[list[Renewal], list[Change]]:
    """Renew the selected certificates; return them and the kubeconfigs rewritten."""
    now = now or datetime.now(UTC)
    store = Store(cluster.pki.dir)
    current = [_current(store, spec) for spec in select(cluster, names)]  # all, before any change
    authorities = {s.signer: load_authority(store, s.signer) for s, _, _ in current if s.signer}
    renewals = []
    for spec, old, key in current:
        if new_keys:
            # The key first: should the run die before the certificate, init sees the pair
            # mismatch and reissues for the new key.
            key = keys.generate(algorithm or cluster.pki.key_algorithm)
            store.save_key(spec.name, key, replace=True)
        cert = issue(store, spec, key, authorities[spec.signer or ""], cluster, now, replace=True)
        renewals.append(
            Renewal(
                spec.name,
                old.serial_number,
                cert.serial_number,
                old.not_valid_after_utc,
                cert.not_valid_after_utc,
                key_replaced=new_keys,
            )
        )
    changed = [c for c in write_kubeconfigs(cluster, store) if c.action != "kept"]
    return renewals, changed


def _current(store: Store, spec: CertSpec) -> tuple[CertSpec, x509.Certificate, keys.PrivateKey]:
    old, key = store.load_cert(spec.name), store.load_key(spec.name, validate=False)
    if old is None or key is None:
        raise PkiError(f"{spec.name} has not been issued yet: run init first")
    return spec, old, key
