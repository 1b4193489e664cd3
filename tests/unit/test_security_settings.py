"""kubernetes.security: the CIS Benchmark settings, their defaults, and what the supported
profile's templates make of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from pki_support import INVENTORIES, inventory_copy
from test_kubernetes_profiles import cluster_for, component_flags, config_of, rendered

from kubenorn.cluster import inspect, load_cluster
from kubenorn.pki import encryption
from kubenorn.pki.store import PkiError, Store
from kubenorn.security_settings import CIS_CIPHER_SUITES, AuditSettings, SecuritySettings
from tasks.kube_units import log_directories, secret_files

# cis-1.12's strong suites: 1.2.29 (apiserver) and 4.2.12 (kubelet).
APISERVER_SUITES = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
KUBELET_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
}


def with_security(tmp_path: Path, security: object) -> Path:
    inventory = inventory_copy("good", tmp_path)
    path = inventory / "defaults.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["kubernetes"]["security"] = security
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return inventory


def test_without_the_block_every_setting_is_the_benchmarks() -> None:
    security = load_cluster(INVENTORIES / "good").kubernetes.security
    assert security == SecuritySettings()
    assert security.profiling is False
    assert security.audit == AuditSettings("/var/log/kubernetes/audit/audit.log", 30, 10, 100)
    assert security.encryption_provider == "aescbc"
    assert security.service_account_extend_token_expiration is False
    assert "NodeRestriction" in security.admission_plugins
    assert set(CIS_CIPHER_SUITES) <= APISERVER_SUITES & KUBELET_SUITES


def test_the_shipped_inventories_state_the_defaults() -> None:
    assert cluster_for("supported").kubernetes.security == SecuritySettings()


def test_settings_are_read_from_the_block(tmp_path: Path) -> None:
    inventory = with_security(
        tmp_path,
        {
            "profiling": True,
            "audit": {"max_backups": 20, "level": "Request", "log_path": "/srv/audit.log"},
            "encryption_provider": "secretbox",
            "admission_plugins": "NodeRestriction,EventRateLimit",
        },
    )
    security = load_cluster(inventory).kubernetes.security
    assert security.profiling is True
    assert security.audit == AuditSettings("/srv/audit.log", 30, 20, 100, "Request")
    assert security.encryption_provider == "secretbox"
    assert security.admission_plugins == ("NodeRestriction", "EventRateLimit")


@pytest.mark.parametrize(
    ("security", "problem"),
    [
        ({"profiling": "no"}, "data.kubernetes.security.profiling: must be true or false"),
        ({"encryption_provider": "identity"}, "encryption_provider: must be one of aescbc"),
        ({"audit": {"max_age_days": 0}}, "security.audit.max_age_days: must be a whole number"),
        ({"audit": {"log_path": "audit.log"}}, "security.audit.log_path: must be an absolute"),
        ({"audit": {"level": "None"}}, "security.audit.level: must be one of Metadata"),
        ({"tls_cipher_suites": []}, "security.tls_cipher_suites: must be a non-empty list"),
    ],
)
def test_a_wrong_setting_is_a_problem_naming_file_and_field(
    tmp_path: Path, security: dict[str, object], problem: str
) -> None:
    cluster, problems = inspect(with_security(tmp_path, security))
    assert cluster is None
    assert any(problem in str(p) and str(p).startswith("defaults.yaml") for p in problems), [
        str(p) for p in problems
    ]


def test_the_apiserver_runs_as_the_benchmark_asks() -> None:
    flags = component_flags(cluster_for("supported"), "kube-apiserver", "kube.controller01")
    assert flags["profiling"] == "false"
    assert flags["audit-policy-file"] == "/etc/kubernetes/audit-policy.yaml"
    assert flags["audit-log-path"] == "/var/log/kubernetes/audit/audit.log"
    assert (flags["audit-log-maxage"], flags["audit-log-maxbackup"]) == ("30", "10")
    assert flags["audit-log-maxsize"] == "100"
    assert flags["encryption-provider-config"] == "/etc/kubernetes/encryption-config.yaml"
    assert flags["service-account-extend-token-expiration"] == "false"
    assert flags["service-account-lookup"] == "true"
    assert "NodeRestriction" in flags["enable-admission-plugins"].split(",")
    assert set(flags["tls-cipher-suites"].split(",")) <= APISERVER_SUITES
    assert "token-auth-file" not in flags


def test_profiling_off_in_the_controller_manager_and_the_scheduler_file() -> None:
    cluster = cluster_for("supported")
    manager = component_flags(cluster, "kube-controller-manager", "kube.controller01")
    assert manager["profiling"] == "false"
    assert manager["terminated-pod-gc-threshold"] == "12500"
    scheduler = config_of(cluster, "kube-scheduler", "kube.controller01")
    assert scheduler["enableProfiling"] is False
    flags = component_flags(cluster, "kube-scheduler", "kube.controller01")
    assert "profiling" not in flags  # deprecated flag: the file says it


def test_profiling_on_when_the_inventory_asks() -> None:
    cluster = cluster_for("supported")
    security = dataclasses.replace(cluster.kubernetes.security, profiling=True)
    kubernetes = dataclasses.replace(cluster.kubernetes, security=security)
    cluster = dataclasses.replace(cluster, kubernetes=kubernetes)
    assert component_flags(cluster, "kube-apiserver", "kube.controller01")["profiling"] == "true"
    assert config_of(cluster, "kube-scheduler", "kube.controller01")["enableProfiling"] is True


def test_the_kubelet_uses_strong_suites_and_limits_pids() -> None:
    config = config_of(cluster_for("supported"), "kubelet", "kube.node01")
    assert set(config["tlsCipherSuites"]) <= KUBELET_SUITES
    assert config["podPidsLimit"] == 4096
    assert "seccompDefault" not in config
    assert "rotateCertificates" not in config  # kubenorn rotates from the control machine


def test_the_audit_policy_never_records_a_secrets_body() -> None:
    cluster = cluster_for("supported")
    policy = yaml.safe_load(
        rendered(cluster, "kube.controller01")["/etc/kubernetes/audit-policy.yaml"]
    )
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    first = policy["rules"][0]
    assert first["level"] == "Metadata"
    assert {"group": "", "resources": ["secrets", "serviceaccounts/token"]} in first["resources"]
    # Rules apply first match: nothing before it could log secrets at a deeper level.
    assert policy["rules"][-1] == {"level": "Metadata"}


def test_the_apiserver_gets_its_encryption_configuration_from_the_pki_state(
    tmp_path: Path,
) -> None:
    cluster = dataclasses.replace(
        cluster_for("supported"),
        pki=dataclasses.replace(cluster_for("supported").pki, dir=tmp_path / "pki"),
    )
    store = Store(cluster.pki.dir)
    store.create()
    with pytest.raises(PkiError, match="encryption.json is missing"):
        secret_files(cluster, "kube-apiserver")
    state, _ = encryption.ensure_state(store, "aescbc")
    [file] = secret_files(cluster, "kube-apiserver")
    assert (file.path, file.mode, file.owner, file.secret) == (
        "/etc/kubernetes/encryption-config.yaml",
        "0600",
        "root",
        True,  # diffs say "changed", never the key
    )
    assert file.content == encryption.config_text(state)
    assert secret_files(cluster, "kubelet") == []
    assert secret_files(cluster_for("1.6"), "kube-apiserver") == []
    flags = component_flags(cluster, "kube-apiserver", "kube.controller01")
    assert flags["encryption-provider-config"] == file.path
    assert log_directories(cluster, "kube-apiserver") == ["/var/log/kubernetes/audit"]
    assert log_directories(cluster_for("1.6"), "kube-apiserver") == []
