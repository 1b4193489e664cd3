"""The inventory's `kubernetes.security` block: the CIS Benchmark settings, typed.

Every field defaults to what cis-1.12 asks (README, "Security (CIS Benchmark)"), so an
inventory without the block is secure by default; the supported profile's templates read it,
the 1.6 reference profile cannot (its release has none of these flags).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubenorn.inventory_fields import Section

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


def read_security(section: Section | None) -> SecuritySettings:
    """The `kubernetes.security` block (None or absent: every default); problems go to
    the section's problem list, naming file and field, as for every other field."""
    if section is None:
        return SecuritySettings()
    default = SecuritySettings()
    audit = section.optional_section("audit")
    return SecuritySettings(
        profiling=_boolean(section, "profiling", default.profiling),
        audit=_audit(audit) if audit is not None else AuditSettings(),
        encryption_provider=section.choice(
            "encryption_provider", ENCRYPTION_PROVIDERS, default.encryption_provider
        ),
        service_account_extend_token_expiration=_boolean(
            section,
            "service_account_extend_token_expiration",
            default.service_account_extend_token_expiration,
        ),
        admission_plugins=_names(section, "admission_plugins", default.admission_plugins),
        tls_cipher_suites=_names(section, "tls_cipher_suites", default.tls_cipher_suites),
        terminated_pod_gc_threshold=section.positive(
            "terminated_pod_gc_threshold", default.terminated_pod_gc_threshold
        ),
        pod_pids_limit=section.positive("pod_pids_limit", default.pod_pids_limit),
        seccomp_default=_boolean(section, "seccomp_default", default.seccomp_default),
    )


def _audit(section: Section) -> AuditSettings:
    default = AuditSettings()
    log_path = section.parsed("log_path", _absolute, "an absolute path", default.log_path)
    return AuditSettings(
        log_path=log_path or default.log_path,
        max_age_days=section.positive("max_age_days", default.max_age_days),
        max_backups=section.positive("max_backups", default.max_backups),
        max_size_mb=section.positive("max_size_mb", default.max_size_mb),
        level=section.choice("level", AUDIT_LEVELS, default.level),
    )


def _boolean(section: Section, key: str, default: bool) -> bool:
    value = section.parsed(key, _bool, "true or false", default)
    return default if value is None else bool(value)


def _names(section: Section, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    return section.parsed(key, _name_list, "a list of names", default) or default


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, not {value!r}")
    return value


def _absolute(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"must be an absolute path on the hosts, not {value!r}")
    return value


def _name_list(value: Any) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise TypeError("must be a non-empty list of names (or one comma-separated string)")
    cleaned = tuple(str(name).strip() for name in names)
    if any(not name or " " in name or "," in name for name in cleaned):
        raise ValueError(f"{value!r}: each entry must be one name")
    return cleaned
