"""`init`: issues everything once, is idempotent, issues only what a new host needs."""

from __future__ import annotations

import json
import stat
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store
from pki_support import (
    Leaf,
    add_host,
    inventory_copy,
    load_authority,
    read_cert,
    read_key,
    write_cert,
)

from kubenorn.cluster import load_cluster
from kubenorn.pki import keys
from kubenorn.pki.issue import init
from kubenorn.pki.kubeconfig import parse
from kubenorn.pki.store import PkiError
from runbooks.pki import main


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return inventory_copy("good", tmp_path)


def issued(changes) -> dict[str, str]:  # noqa: ANN001
    return {c.item: c.action for c in changes if c.action != "kept"}


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    }


def test_init_issues_everything_with_private_modes(inventory: Path) -> None:
    changes = init(load_cluster(inventory))
    pki = inventory / ".pki"
    assert len(issued(changes)) == len(changes) == 2 + 6 + 2 + 6 + 4 + 1 + 1 + 6
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    for key in pki.rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for kubeconfig in pki.rglob("*.kubeconfig"):
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600, kubeconfig
    assert not list(pki.rglob(".*.crt.*")), "no temporary file is left behind"


def test_a_second_init_issues_nothing_and_touches_no_file(inventory: Path, capsys) -> None:  # noqa: ANN001
    assert main(["-i", str(inventory), "init"]) == 0
    before = snapshot(inventory / ".pki")
    capsys.readouterr()
    assert main(["-i", str(inventory), "init"]) == 0
    assert "nothing to issue: all 28 items valid" in capsys.readouterr().out
    assert snapshot(inventory / ".pki") == before


def test_adding_a_node_issues_only_that_nodes_certificates(inventory: Path) -> None:
    init(load_cluster(inventory))
    add_host(inventory, "kube.node03", "10.99.0.23", ["nodes"], pod_cidr="10.200.3.0/24")
    changes = init(load_cluster(inventory))
    assert issued(changes) == {
        "kubelet-client-kube.node03": "issued",
        "kubelet-server-kube.node03": "issued",
        "kubeconfigs/kubelet-kube.node03": "written",
    }


def test_adding_a_controller_also_reissues_the_apiserver_for_its_names(inventory: Path) -> None:
    init(load_cluster(inventory))
    key_before = (inventory / ".pki" / "apiserver.key").read_bytes()
    add_host(inventory, "kube.controller04", "10.99.0.14", ["controllers"])
    changes = {c.item: c for c in init(load_cluster(inventory)) if c.action != "kept"}
    assert set(changes) == {"apiserver"}
    assert changes["apiserver"].action == "reissued"
    assert "SAN missing for kube.controller04, 10.99.0.14" in changes["apiserver"].detail
    assert (inventory / ".pki" / "apiserver.key").read_bytes() == key_before


def test_init_repairs_an_invalid_certificate_keeping_its_key(inventory: Path) -> None:
    init(load_cluster(inventory))
    pki = inventory / ".pki"
    key = read_key(pki, "kube-proxy")
    bad = Leaf("system:kube-proxy", "system:masters", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    write_cert(pki, "kube-proxy", bad.sign(load_authority(pki, "ca"), key))
    changes = issued(init(load_cluster(inventory)))
    assert changes == {"kube-proxy": "reissued", "kubeconfigs/kube-proxy": "written"}
    assert keys.matches(read_cert(pki, "kube-proxy"), key)
    assert main(["-i", str(inventory), "check"]) == 0


def test_a_ca_without_its_key_is_an_error_not_a_new_ca(inventory: Path, capsys) -> None:  # noqa: ANN001
    init(load_cluster(inventory))
    (inventory / ".pki" / "ca.key").unlink()
    with pytest.raises(PkiError, match="ca.key is missing"):
        init(load_cluster(inventory))
    assert main(["-i", str(inventory), "init"]) == 3
    assert "ca.key is missing" in capsys.readouterr().err


def test_an_unreadable_key_is_never_replaced(inventory: Path) -> None:
    init(load_cluster(inventory))
    (inventory / ".pki" / "admin.key").write_bytes(b"not a key\n")
    with pytest.raises(PkiError, match="admin.key: not a usable private key"):
        init(load_cluster(inventory))
    assert (inventory / ".pki" / "admin.key").read_bytes() == b"not a key\n"


def test_certificates_carry_the_expected_extensions(inventory: Path) -> None:
    init(load_cluster(inventory))
    pki = inventory / ".pki"
    ca, leaf = read_cert(pki, "ca"), read_cert(pki, "apiserver")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment  # ECDSA
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    peer = read_cert(pki, "etcd-peer-kube.controller01")
    eku = peer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_server_certificates_pass_an_independent_verifier(inventory: Path) -> None:
    init(load_cluster(inventory))
    pki = inventory / ".pki"
    api = PolicyBuilder().store(Store([read_cert(pki, "ca")]))
    api.build_server_verifier(DNSName("kubernetes.default.svc")).verify(
        read_cert(pki, "apiserver"), []
    )
    etcd = PolicyBuilder().store(Store([read_cert(pki, "etcd-ca")]))
    etcd.build_server_verifier(IPAddress(ip_address("10.99.0.12"))).verify(
        read_cert(pki, "etcd-peer-kube.controller02"), []
    )


def test_rsa_keys_by_option_with_key_encipherment_on_servers(inventory: Path) -> None:
    assert main(["-i", str(inventory), "init", "--key-algorithm", "rsa-2048"]) == 0
    pki = inventory / ".pki"
    key = read_key(pki, "apiserver")
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    usage = read_cert(pki, "apiserver").extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment
    client = read_cert(pki, "admin").extensions.get_extension_for_class(x509.KeyUsage).value
    assert not client.key_encipherment


def test_kubeconfigs_embed_the_state_and_point_at_the_endpoint(inventory: Path) -> None:
    init(load_cluster(inventory))
    pki = inventory / ".pki"
    credentials = parse((pki / "kubeconfigs" / "kubelet-kube.node02.kubeconfig").read_bytes())
    assert credentials.server == "https://kube.apiserver:6443"
    assert credentials.ca_pem == (pki / "ca.crt").read_bytes()
    assert credentials.cert_pem == (pki / "kubelet-client-kube.node02.crt").read_bytes()
    assert credentials.key_pem == (pki / "kubelet-client-kube.node02.key").read_bytes()


def test_options_may_follow_the_command(inventory: Path, tmp_path: Path) -> None:
    out = tmp_path / "init.json"
    assert main(["init", "-i", str(inventory), "--json", str(out)]) == 0
    changes = json.loads(out.read_text())["changes"]
    assert {c["action"] for c in changes} == {"issued", "written"}
    assert main(["-i", str(inventory), "init", "--json", str(out)]) == 0
    assert {c["action"] for c in json.loads(out.read_text())["changes"]} == {"kept"}
