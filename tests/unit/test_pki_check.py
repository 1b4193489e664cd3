"""`check`: every finding class, each shown with a certificate made wrong on purpose."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pki_support import (
    CLIENT,
    SERVER,
    Leaf,
    inventory_copy,
    load_authority,
    make_ca,
    new_key,
    read_key,
    write_cert,
    write_key,
)

from kubenorn.cluster import load_cluster
from kubenorn.findings import Finding, exit_code
from kubenorn.pki.issue import init
from kubenorn.pki.local import check_state
from runbooks.pki import main


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = inventory_copy("good", tmp_path)
    init(load_cluster(path))
    return path


def bad(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.check, f.host, f.status) for f in findings if not f.ok]


def check(inventory: Path, *, warn_days: int | None = None) -> list[Finding]:
    return check_state(load_cluster(inventory), warn_days=warn_days)


def detail(findings: list[Finding], check_name: str) -> str:
    return next(f.detail for f in findings if f.check == check_name)


def test_a_fresh_state_is_all_ok(inventory: Path, tmp_path: Path) -> None:
    findings = check(inventory)
    assert bad(findings) == []
    # certificates, service account, Secrets key, kubeconfigs
    assert len(findings) == 20 + 1 + 1 + 6
    out = tmp_path / "check.json"
    assert main(["-i", str(inventory), "check", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert (document["status"], document["exit_code"]) == ("OK", 0)
    assert len(document["findings"]) == 28


def test_missing_san_for_a_name_the_apiserver_is_dialled_by(inventory: Path) -> None:
    pki = inventory / ".pki"
    leaf = Leaf("kube-apiserver", dns=["kubernetes", "kube.controller01"], ips=["10.32.0.1"])
    write_cert(pki, "apiserver", leaf.sign(load_authority(pki, "ca"), read_key(pki, "apiserver")))
    findings = check(inventory)
    assert ("pki.san", "cluster", "CRITICAL") in bad(findings)
    missing = detail(findings, "pki.san")
    assert "kube.apiserver" in missing and "10.99.0.12" in missing and "127.0.0.1" in missing
    assert "kube.controller01," not in missing


def test_peer_certificate_without_its_own_address(inventory: Path) -> None:
    """etcd >= 3.2 checks a peer's IP SANs against the address it connects from."""
    pki = inventory / ".pki"
    name = "etcd-peer-kube.controller02"
    leaf = Leaf("kube.controller02", dns=["kube.controller02", "localhost"], ips=["127.0.0.1"])
    write_cert(pki, name, leaf.sign(load_authority(pki, "etcd-ca"), read_key(pki, name)))
    findings = check(inventory)
    assert bad(findings) == [("pki.san", "kube.controller02", "CRITICAL")]
    assert detail(findings, "pki.san") == f".pki/{name}.crt: SAN missing for 10.99.0.12"


def test_client_only_eku_on_a_server_certificate(inventory: Path) -> None:
    pki = inventory / ".pki"
    name = "etcd-server-kube.controller01"
    leaf = Leaf(
        "kube.controller01",
        dns=["kube.controller01", "controller01.example.test", "controller01", "localhost"],
        ips=["10.99.0.11", "127.0.0.1"],
        eku=[CLIENT],
    )
    write_cert(pki, name, leaf.sign(load_authority(pki, "etcd-ca"), read_key(pki, name)))
    findings = check(inventory)
    assert bad(findings) == [("pki.eku", "kube.controller01", "CRITICAL")]
    assert "lacks serverAuth needed for peer use (has: clientAuth)" in detail(findings, "pki.eku")


def test_server_eku_on_a_client_certificate(inventory: Path) -> None:
    pki = inventory / ".pki"
    leaf = Leaf("kube-apiserver-etcd-client", eku=[SERVER])
    key = read_key(pki, "apiserver-etcd-client")
    write_cert(pki, "apiserver-etcd-client", leaf.sign(load_authority(pki, "etcd-ca"), key))
    assert bad(check(inventory)) == [("pki.eku", "cluster", "CRITICAL")]


def test_expired_and_not_yet_valid(inventory: Path) -> None:
    pki = inventory / ".pki"
    ca = load_authority(pki, "ca")
    expired = Leaf("admin", "system:masters", eku=[CLIENT], not_before=timedelta(days=-400))
    expired.not_after = timedelta(days=-1)
    write_cert(pki, "admin", expired.sign(ca, read_key(pki, "admin")))
    future = Leaf("system:kube-scheduler", eku=[CLIENT], not_before=timedelta(days=2))
    write_cert(pki, "kube-scheduler", future.sign(ca, read_key(pki, "kube-scheduler")))
    findings = [f for f in check(inventory) if f.check == "pki.expiry"]
    assert [f.status for f in findings] == ["CRITICAL", "CRITICAL"]
    assert findings[0].detail.startswith(".pki/admin.crt: expired on ")
    assert findings[1].detail.startswith(".pki/kube-scheduler.crt: not valid before ")


def test_expiring_soon_is_a_warning_with_configurable_days(inventory: Path) -> None:
    pki = inventory / ".pki"
    soon = Leaf("system:kube-proxy", "system:node-proxier", eku=[CLIENT])
    soon.not_after = timedelta(days=10, hours=1)
    write_cert(pki, "kube-proxy", soon.sign(load_authority(pki, "ca"), read_key(pki, "kube-proxy")))
    findings = [f for f in check(inventory) if not f.ok]
    # The kube-proxy kubeconfig still embeds the old certificate: stale, reported too.
    assert [(f.check, f.status) for f in findings] == [
        ("pki.expiry", "WARNING"),
        ("pki.kubeconfig", "CRITICAL"),
    ]
    assert findings[0].detail.startswith(".pki/kube-proxy.crt: expires in 10 days")
    init(load_cluster(inventory))  # refresh the kubeconfig; the certificate is still valid
    assert exit_code(check(inventory)) == 1
    assert main(["-i", str(inventory), "check"]) == 1
    assert main(["-i", str(inventory), "check", "--warn-days", "5"]) == 0


def test_signed_by_another_ca(inventory: Path) -> None:
    pki = inventory / ".pki"
    name = "kubelet-server-kube.node01"
    leaf = Leaf("kube.node01", dns=["kube.node01"], ips=["10.99.0.21"], eku=[SERVER])
    write_cert(pki, name, leaf.sign(make_ca(), read_key(pki, name)))
    findings = check(inventory)
    assert bad(findings) == [("pki.chain", "kube.node01", "CRITICAL")]
    assert "not signed by CA ca (issuer: CN=someone else's CA)" in detail(findings, "pki.chain")


def test_key_that_does_not_match_the_certificate(inventory: Path) -> None:
    write_key(inventory / ".pki", "apiserver-kubelet-client", new_key())
    findings = check(inventory)
    assert bad(findings) == [("pki.key", "cluster", "CRITICAL")]
    assert "does not match" in detail(findings, "pki.key")


def test_wrong_kubelet_common_name_and_wrong_organization(inventory: Path) -> None:
    pki = inventory / ".pki"
    ca = load_authority(pki, "ca")
    name = "kubelet-client-kube.node01"
    wrong_cn = Leaf("system:node:kube.node02", "system:nodes", eku=[CLIENT])
    write_cert(pki, name, wrong_cn.sign(ca, read_key(pki, name)))
    escalated = Leaf("system:kube-proxy", "system:masters", eku=[CLIENT])
    write_cert(pki, "kube-proxy", escalated.sign(ca, read_key(pki, "kube-proxy")))
    findings = [f for f in check(inventory) if f.check == "pki.subject"]
    assert [(f.host, f.status) for f in findings] == [
        ("cluster", "CRITICAL"),
        ("kube.node01", "CRITICAL"),
    ]
    assert "should be CN=system:node:kube.node01, O=system:nodes" in findings[1].detail
    assert "should be CN=system:kube-proxy, O=system:node-proxier" in findings[0].detail


def test_key_files_more_open_than_0600(inventory: Path) -> None:
    pki = inventory / ".pki"
    (pki / "admin.key").chmod(0o644)
    (pki / "kube-proxy.key").chmod(0o640)
    (pki / "kubeconfigs" / "admin.kubeconfig").chmod(0o604)
    findings = [f for f in check(inventory) if f.check in ("pki.key_mode", "pki.kubeconfig")]
    statuses = {f.detail.split(":")[0]: f.status for f in findings if not f.ok}
    assert statuses == {
        ".pki/admin.key": "CRITICAL",
        ".pki/kube-proxy.key": "WARNING",
        "kubeconfigs/admin": "CRITICAL",
    }


def test_missing_files_and_a_mismatched_service_account_pair(inventory: Path) -> None:
    pki = inventory / ".pki"
    (pki / "kube-controller-manager.crt").unlink()
    (pki / "sa.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\n")
    (pki / "kubeconfigs" / "admin.kubeconfig").unlink()
    assert sorted(bad(check(inventory))) == [
        ("pki.kubeconfig", "cluster", "CRITICAL"),  # admin missing
        ("pki.kubeconfig", "cluster", "CRITICAL"),  # controller-manager's certificate is gone
        ("pki.present", "cluster", "CRITICAL"),
        ("pki.service_account", "cluster", "CRITICAL"),
    ]


def test_a_state_directory_open_to_others(inventory: Path) -> None:
    (inventory / ".pki").chmod(0o755)
    assert bad(check(inventory)) == [("pki.state", "control", "WARNING")]


def test_no_state_at_all_could_not_be_checked(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    inventory = inventory_copy("good", tmp_path)
    assert main(["-i", str(inventory), "check"]) == 3
    assert "run `python -m runbooks.pki init` first" in capsys.readouterr().out


def test_a_bad_inventory_is_a_message_and_exit_3(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    inventory = inventory_copy("missing-fields", tmp_path)
    assert main(["-i", str(inventory), "check"]) == 3
    err = capsys.readouterr().err
    assert "hosts.yaml: kube.controller02: data.address: missing" in err
    assert "Traceback" not in err


def test_the_worst_finding_decides_the_exit_code(inventory: Path) -> None:
    pki = inventory / ".pki"
    (pki / "admin.key").chmod(0o640)  # WARNING
    assert main(["-i", str(inventory), "check"]) == 1
    write_key(pki, "kube-proxy", new_key())  # CRITICAL
    assert main(["-i", str(inventory), "check"]) == 2
