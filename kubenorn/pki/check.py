"""Checks of one certificate against its plan: pure functions from material to findings.

Used for the state directory, for the files deployed on hosts, and by `init` to decide
whether a certificate still fits (no CRITICAL finding) or must be reissued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubenorn.findings import Finding, Status
from kubenorn.pki import keys
from kubenorn.pki.builders import EKU
from kubenorn.pki.plan import CertSpec

KEY_MODE = 0o600
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}


@dataclass(frozen=True)
class Material:
    """What was found for one certificate: the certificate and its key."""

    cert: x509.Certificate | None
    key: keys.PrivateKey | None


@dataclass(frozen=True)
class Context:
    """Where and when a check runs: findings name `host`; WARNING `warn_days` before expiry."""

    host: str
    now: datetime
    warn_days: int


Outcome = tuple[str, Status, str]  # (check, status, detail)
Check = Callable[
    [CertSpec, x509.Certificate, keys.PrivateKey | None, x509.Certificate | None, Context],
    Outcome | None,
]


def certificate_findings(
    spec: CertSpec,
    material: Material,
    ca: x509.Certificate | None,
    context: Context,
    label: str = "",
    checks: tuple[Check, ...] | None = None,
) -> list[Finding]:
    """Every finding for one certificate; a single OK finding when all checks pass."""
    label = label or spec.name
    if material.cert is None:
        return [Finding("pki.present", context.host, "CRITICAL", f"{label}: certificate missing")]
    found = [
        r
        for check in checks or CHECKS
        if (r := check(spec, material.cert, material.key, ca, context)) is not None
    ]
    if found:
        return [
            Finding(name, context.host, status, f"{label}: {detail}")
            for name, status, detail in found
        ]
    until = material.cert.not_valid_after_utc
    days = (until - context.now).days
    return [
        Finding(
            "pki.certificate",
            context.host,
            "OK",
            f"{label}: valid until {until:%Y-%m-%d} ({days} days)",
        )
    ]


def mode_problem(mode: int | None, allowed: int = KEY_MODE) -> tuple[Status, str] | None:
    """(status, detail) when a file's mode is more open than `allowed` (CRITICAL: world)."""
    if mode is None or not mode & ~allowed:
        return None
    status: Status = "CRITICAL" if mode & 0o004 else "WARNING"
    return status, f"mode {mode:04o} is more open than {allowed:04o}"


def _validity(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    now = context.now
    if now < cert.not_valid_before_utc:
        return (
            "pki.expiry",
            "CRITICAL",
            f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (clock skew?)",
        )
    if now >= cert.not_valid_after_utc:
        return "pki.expiry", "CRITICAL", f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    days = (cert.not_valid_after_utc - now).days
    if days < context.warn_days:
        return (
            "pki.expiry",
            "WARNING",
            f"expires in {days} days ({cert.not_valid_after_utc:%Y-%m-%d})",
        )
    return None


def _chain(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    issuer = cert if spec.is_ca else ca
    if issuer is None:
        return "pki.chain", "CRITICAL", f"its CA {spec.signer} is missing"
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        expected = "itself" if spec.is_ca else f"CA {spec.signer}"
        return (
            "pki.chain",
            "CRITICAL",
            f"not signed by {expected} (issuer: {cert.issuer.rfc4514_string()})",
        )
    if spec.is_ca and not _is_ca(cert):
        return "pki.chain", "CRITICAL", "lacks BasicConstraints CA:TRUE"
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _key(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    if key is None:
        return "pki.key", "CRITICAL", "private key missing"
    if not keys.matches(cert, key):
        return "pki.key", "CRITICAL", "private key does not match the certificate"
    return None


def _usage(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    if spec.is_ca:
        return None
    try:
        present = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        present = set()
    missing = [_EKU_NAMES[oid] for oid in EKU[spec.usage] if oid not in present]
    if not missing:
        return None
    has = ", ".join(sorted(_EKU_NAMES.get(oid, oid.dotted_string) for oid in present)) or "none"
    return (
        "pki.eku",
        "CRITICAL",
        f"lacks {', '.join(missing)} needed for {spec.usage} use (has: {has})",
    )


def _names(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    missing = [n for n in spec.dns_names if n.lower() not in dns]
    missing += [str(a) for a in spec.ip_addresses if a not in ips]
    if not missing:
        return None
    return "pki.san", "CRITICAL", f"SAN missing for {', '.join(missing)}"


def _subject(
    spec: CertSpec,
    cert: x509.Certificate,
    key: keys.PrivateKey | None,
    ca: x509.Certificate | None,
    context: Context,
) -> Outcome | None:
    if spec.is_ca:
        return None  # a CA keeps its name; renaming the cluster must not replace it
    subject = cert.subject
    cn = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    wanted_orgs = [spec.organization] if spec.organization else []
    if cn == [spec.common_name] and orgs == wanted_orgs:
        return None
    want = f"CN={spec.common_name}" + (f", O={spec.organization}" if spec.organization else "")
    return "pki.subject", "CRITICAL", f"subject {subject.rfc4514_string()} should be {want}"


CHECKS: tuple[Check, ...] = (_validity, _chain, _key, _usage, _names, _subject)
# For a CA certificate deployed on a host, where its private key never goes.
CA_CHECKS: tuple[Check, ...] = (_validity, _chain)


def fits(spec: CertSpec, material: Material, ca: x509.Certificate | None, now: datetime) -> bool:
    """Whether the certificate is present and valid for `spec`: nothing to reissue."""
    context = Context("-", now, warn_days=0)
    return all(f.status != "CRITICAL" for f in certificate_findings(spec, material, ca, context))
