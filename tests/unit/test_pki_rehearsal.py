"""The PKI a deploy uses: issued in place, or for a dry run in a private throwaway copy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pki_support import inventory_copy

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.pki.issue import init
from kubenorn.pki.rehearsal import deploy_pki
from kubenorn.pki.store import PkiError, Store


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_a_dry_run_on_a_fresh_inventory_issues_into_a_private_copy_only(tmp_path: Path) -> None:
    cluster = load_cluster(inventory_copy("good", tmp_path))
    with deploy_pki(cluster, dry_run=True) as (rehearsed, issued):
        scratch = rehearsed.pki.dir
        assert len(issued) == len(init(rehearsed)) and issued, "everything would be issued"
        store = Store(scratch)
        assert store.cert_path("ca").is_file() and store.kubeconfig_path("admin").is_file()
        assert stat.S_IMODE(scratch.parent.stat().st_mode) == 0o700
        assert not cluster.pki.dir.exists(), "the real state is not created"
    assert not scratch.parent.exists(), "the copy, CA keys included, is gone after the run"


def test_a_dry_run_sees_the_real_state_and_changes_none_of_it(tmp_path: Path) -> None:
    cluster = load_cluster(inventory_copy("good", tmp_path))
    init(cluster)
    Store(cluster.pki.dir).cert_path("kubelet-server-kube.node01").unlink()
    before = snapshot(cluster.pki.dir)
    with deploy_pki(cluster, dry_run=True) as (rehearsed, issued):
        assert [change.item for change in issued] == ["kubelet-server-kube.node01"]
        key = str(Store(cluster.pki.dir).key_path("ca").relative_to(cluster.pki.dir))
        assert snapshot(rehearsed.pki.dir)[key] == before[key], "the same CA signs"
    assert snapshot(cluster.pki.dir) == before


def test_a_real_deploy_issues_in_place(tmp_path: Path) -> None:
    cluster = load_cluster(inventory_copy("good", tmp_path))
    with deploy_pki(cluster, dry_run=False) as (used, issued):
        assert used == cluster and issued
    assert Store(cluster.pki.dir).cert_path("ca").is_file()


def broken_ca_key(tmp_path: Path, how: str) -> tuple[Cluster, Path]:
    cluster = load_cluster(inventory_copy("good", tmp_path))
    init(cluster)
    key = Store(cluster.pki.dir).key_path("ca")
    key.unlink()
    if how == "garbage":
        key.write_text("garbage\n")
    else:  # unreadable: a directory (root reads any file, whatever its mode)
        key.mkdir()
    return cluster, key


@pytest.mark.parametrize(("how", "said"), [("garbage", "not a usable private key"),
                                           ("unreadable", "cannot be read")])  # fmt: skip
def test_a_broken_ca_key_under_a_dry_run_names_the_users_file(
    tmp_path: Path, how: str, said: str
) -> None:
    cluster, key = broken_ca_key(tmp_path, how)
    with pytest.raises(PkiError) as raised, deploy_pki(cluster, dry_run=True):
        pass
    assert str(raised.value).startswith(f"{key}: {said}"), str(raised.value)
    assert "kubenorn-dry-run-pki" not in str(raised.value)


@pytest.mark.parametrize("dry_run", [True, False])
def test_deploy_with_a_broken_ca_key_exits_3_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    from runbooks import deploy

    cluster, key = broken_ca_key(tmp_path, "garbage")
    inventory = cluster.pki.dir.parent
    argv = ["-i", str(inventory), "--quiet"] + (["--dry-run"] if dry_run else [])
    assert deploy.main(argv) == 3
    error = capsys.readouterr().err
    assert error.startswith(f"error: {key}: not a usable private key") and "Traceback" not in error
    assert error.count("\n") == 1
