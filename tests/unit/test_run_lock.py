"""One lock per inventory: every runbook that changes hosts or PKI state (and verify) takes it."""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import Fleet
from pki_support import inventory_copy

from kubenorn.lock import AlreadyRunning, exclusive
from runbooks import cron, deploy, drill, etcd_backup, etcd_restore, pki, upgrade, verify


def runbook_calls(tmp_path: Path, inventory: str) -> dict[str, Callable[[], int]]:
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"not read: the lock is taken first")
    return {
        "deploy": lambda: deploy.main(["-i", inventory]),
        "deploy --dry-run": lambda: deploy.main(["-i", inventory, "--dry-run"]),
        "pki init": lambda: pki.main(["-i", inventory, "init"]),
        "pki rotate": lambda: pki.main(["-i", inventory, "rotate"]),
        "etcd_backup": lambda: etcd_backup.main(["-i", inventory, "--dest", str(tmp_path / "b")]),
        "etcd_restore": lambda: etcd_restore.main(["-i", inventory, str(snapshot), "--yes"]),
        "drill": lambda: drill.main(["-i", inventory, "etcd-leader"]),
        "cron install": lambda: cron.main(
            ["install", "-i", inventory, "--cron-file", str(tmp_path / "cron")]
        ),
        "verify": lambda: verify.main(["-i", inventory]),
        "upgrade": lambda: upgrade.main(["-i", inventory, "--yes", "--dest", str(tmp_path / "b")]),
    }


RUNBOOKS = [
    "deploy",
    "deploy --dry-run",
    "pki init",
    "pki rotate",
    "etcd_backup",
    "etcd_restore",
    "drill",
    "cron install",
    "verify",
    "upgrade",
]


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_every_changing_runbook_is_refused_while_another_run_holds_the_inventory(
    runbook: str,
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(etcd_restore, "verify_snapshot", lambda path: None)
    inventory_dir = inventory_copy("good", tmp_path)
    before = sorted(inventory_dir.rglob("*"))
    call = runbook_calls(tmp_path, str(inventory_dir))[runbook]
    with exclusive("deploy", inventory_dir):  # another run: its own open file, its own lock
        assert call() == 3
    err = capsys.readouterr().err
    assert "already running" in err
    assert re.search(rf"pid {os.getpid()}, runbook deploy, started \d{{4}}-\d\d-\d\dT", err)
    assert not (tmp_path / "cron").exists()
    assert sorted(inventory_dir.rglob("*")) == before  # no PKI issued, no backup directory
    # `fleet` fails the test on any command run on a host (and tests/conftest.py any connection).


def hold_lock(runbook: str, inventory: str, ready, done) -> None:  # type: ignore[no-untyped-def]  # noqa: ANN001
    with exclusive(runbook, Path(inventory)):
        ready.set()
        done.wait(10)


def test_the_lock_is_per_inventory_not_per_runbook(tmp_path: Path) -> None:
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(
        target=hold_lock, args=("etcd_backup", str(tmp_path), ready, done)
    )
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(AlreadyRunning, match=f"pid {holder.pid}, runbook etcd_backup, started"),
            exclusive("deploy", tmp_path),
        ):
            pass
        other = tmp_path / "other"
        other.mkdir()
        with exclusive("deploy", other):  # another inventory is free
            pass
    finally:
        done.set()
        holder.join(10)


def test_two_backups_never_share_a_remote_snapshot_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from tasks import etcd_backup as backup_tasks

    ran: list[list[str]] = []
    fetched: list[str] = []
    monkeypatch.setattr(
        backup_tasks,
        "member_of",
        lambda cluster, name: SimpleNamespace(host=name, client_url="https://127.0.0.1:2379"),
    )
    monkeypatch.setattr(backup_tasks, "client_tls", lambda cluster, host: None)
    monkeypatch.setattr(
        backup_tasks.etcdctl, "etcdctl_command", lambda tls, urls, *words, **kw: list(words)
    )
    monkeypatch.setattr(backup_tasks, "run", lambda task, command, **kw: ran.append(command))
    monkeypatch.setattr(
        backup_tasks, "fetch_file", lambda task, remote, dest: fetched.append(remote)
    )
    task = SimpleNamespace(host=SimpleNamespace(name="h1"))
    for run_id in ("20261129T000000Z-aaaaaaaa", "20261129T000000Z-bbbbbbbb"):
        backup_tasks.fetch_snapshot(
            task,  # type: ignore[arg-type]
            cluster=None,  # type: ignore[arg-type]
            destination=tmp_path / "s.db",
            run_id=run_id,
        )
    assert len(set(fetched)) == 2
    assert all(
        run_id in path for run_id, path in zip(("aaaaaaaa", "bbbbbbbb"), fetched, strict=True)
    )
    saved = [c[-1] for c in ran if c[:2] == ["snapshot", "save"]]
    removed = [c[-1] for c in ran if c[:2] == ["rm", "-f"]]
    assert saved == fetched == removed
