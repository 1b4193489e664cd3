"""`rotate`: renews leaf certificates, keeps keys unless asked, reports what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pki_support import inventory_copy, read_cert

from kubenorn.cluster import load_cluster
from kubenorn.pki import keys
from kubenorn.pki.issue import init
from kubenorn.pki.kubeconfig import parse
from kubenorn.pki.rotate import rotate
from kubenorn.pki.store import PkiError
from runbooks.pki import main


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = inventory_copy("good", tmp_path)
    init(load_cluster(path))
    return path


def test_rotate_keeps_the_key_by_default(inventory: Path) -> None:
    pki = inventory / ".pki"
    key_before = (pki / "apiserver.key").read_bytes()
    cert_before = read_cert(pki, "apiserver")
    renewals, kubeconfigs = rotate(load_cluster(inventory), ["apiserver"])
    assert [r.name for r in renewals] == ["apiserver"]
    assert renewals[0].old_serial == cert_before.serial_number
    assert renewals[0].new_serial != cert_before.serial_number
    assert not renewals[0].key_replaced
    assert (pki / "apiserver.key").read_bytes() == key_before
    assert read_cert(pki, "apiserver").serial_number == renewals[0].new_serial
    assert kubeconfigs == []  # no kubeconfig embeds the apiserver's certificate


def test_new_keys_replace_the_key_and_refresh_the_kubeconfig(inventory: Path) -> None:
    pki = inventory / ".pki"
    key_before = (pki / "kube-proxy.key").read_bytes()
    renewals, kubeconfigs = rotate(load_cluster(inventory), ["kube-proxy"], new_keys=True)
    assert renewals[0].key_replaced
    key_after = (pki / "kube-proxy.key").read_bytes()
    assert key_after != key_before
    assert keys.matches(read_cert(pki, "kube-proxy"), keys.load_private(key_after))
    assert [c.item for c in kubeconfigs] == ["kubeconfigs/kube-proxy"]
    embedded = parse((pki / "kubeconfigs" / "kube-proxy.kubeconfig").read_bytes())
    assert embedded.key_pem == key_after


def test_a_host_name_selects_every_certificate_of_that_host(inventory: Path) -> None:
    renewals, kubeconfigs = rotate(load_cluster(inventory), ["kube.node02"])
    assert sorted(r.name for r in renewals) == [
        "kubelet-client-kube.node02",
        "kubelet-server-kube.node02",
    ]
    assert [c.item for c in kubeconfigs] == ["kubeconfigs/kubelet-kube.node02"]


def test_rotate_all_renews_every_leaf_and_check_stays_ok(inventory: Path, tmp_path: Path) -> None:
    pki = inventory / ".pki"
    ca_before = (pki / "ca.crt").read_bytes()
    out = tmp_path / "rotate.json"
    assert main(["-i", str(inventory), "rotate", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert len(document["renewals"]) == 18
    assert len(document["kubeconfigs"]) == 6
    assert (pki / "ca.crt").read_bytes() == ca_before
    assert main(["-i", str(inventory), "check"]) == 0


def test_unknown_names_and_cas_are_refused_before_any_change(inventory: Path, capsys) -> None:  # noqa: ANN001
    pki = inventory / ".pki"
    before = (pki / "admin.crt").read_bytes()
    with pytest.raises(PkiError, match="no certificate or host named 'nobody'"):
        rotate(load_cluster(inventory), ["admin", "nobody"])
    assert (pki / "admin.crt").read_bytes() == before
    assert main(["-i", str(inventory), "rotate", "etcd-ca"]) == 3
    assert "etcd-ca is a CA: rotate renews leaf certificates only" in capsys.readouterr().err
