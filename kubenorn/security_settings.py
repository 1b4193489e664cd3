"""The inventory's `kubernetes.security` block: the CIS Benchmark settings, typed.

Every field defaults to what cis-1.12 asks (README, "Security (CIS Benchmark)"), so an
inventory without the block is secure by default; the supported profile's templates read it,
the 1.6 reference profile cannot (its release has none of these flags). The keys and their
types are kubenorn.inventory_model's `Security`, whose defaults are these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENCRYPTION_PROVIDERS = ("aescbc", "secretbox")
# The level of every request but those on secrets and tokens, which are always Metadata.
AUDIT_LEVELS = ("Metadata", "Request", "RequestResponse")
# TLS 1.2 suites in both of cis-1.12's lists (1.2.29 apiserver, 4.2.12 kubelet), for ECDSA
# (kubenorn's default keys) and RSA keys; TLS 1.3 suites are not configurable in Go.
CIS_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
)


@dataclass(frozen=True)
class AuditSettings:
    """kube-apiserver's audit log (1.2.16-1.2.19, 3.2.1)."""

    log_path: str = "/var/log/kubernetes/audit/audit.log"
    max_age_days: int = 30
    max_backups: int = 10
    max_size_mb: int = 100
    level: str = "Metadata"


@dataclass(frozen=True)
class SecuritySettings:
    """`kubernetes.security`: what the supported profile's components are told."""

    profiling: bool = False  # 1.2.15, 1.3.2, 1.4.1
    audit: AuditSettings = field(default_factory=AuditSettings)
    encryption_provider: str = "aescbc"  # 1.2.27, 1.2.28
    service_account_extend_token_expiration: bool = False  # 1.2.30
    admission_plugins: tuple[str, ...] = ("NodeRestriction", "DenyServiceExternalIPs")
    tls_cipher_suites: tuple[str, ...] = CIS_CIPHER_SUITES  # 1.2.29, 4.2.12
    terminated_pod_gc_threshold: int = 12500  # 1.3.1: the controller-manager's default, stated
    pod_pids_limit: int = 4096  # 4.2.13
    seccomp_default: bool = False  # 4.2.14: opt-in, see the README


def read_security(block: Any) -> SecuritySettings:
    """The `kubernetes.security` block as validated by the inventory model (None: every
    default; the model checks the types and values, naming file and field)."""
    if block is None:
        return SecuritySettings()
    return SecuritySettings(
        profiling=block.profiling,
        audit=AuditSettings(**block.audit.model_dump()),
        encryption_provider=block.encryption_provider,
        service_account_extend_token_expiration=block.service_account_extend_token_expiration,
        admission_plugins=tuple(block.admission_plugins),
        tls_cipher_suites=tuple(block.tls_cipher_suites),
        terminated_pod_gc_threshold=block.terminated_pod_gc_threshold,
        pod_pids_limit=block.pod_pids_limit,
        seccomp_default=block.seccomp_default,
    )


def name_list(value: Any) -> tuple[str, ...]:
    """A non-empty list of names, or one comma-separated string of them."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise TypeError("must be a non-empty list of names (or one comma-separated string)")
    cleaned = tuple(str(name).strip() for name in names)
    if any(not name or " " in name or "," in name for name in cleaned):
        raise ValueError(f"{value!r}: each entry must be one name")
    return cleaned
