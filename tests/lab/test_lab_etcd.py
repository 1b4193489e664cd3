"""etcd on the lab: deploy, idempotence, quorum-safe restarts, verify severities, drill, backup."""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_support import inventory_with, verifies_ok_within

from kubenorn.cluster import load_cluster
from kubenorn.etcd_client import EtcdUnavailable, endpoints
from kubenorn.nornir_setup import init_nornir
from runbooks import deploy, drill, etcd_backup, etcd_restore, verify
from tasks.components import ensure_etcd_member
from tasks.etcd import DRILL_DROPIN, UNIT

MEMBERS = ["kube.controller01", "kube.controller02", "kube.controller03"]


@pytest.fixture(scope="module")
def etcd_lab(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    """Fresh hosts (no earlier deploy), then the cluster deployed from scratch, once per module.

    The whole cluster, not etcd alone: verify judges the control plane on the etcd hosts too.
    """
    lab.down(purge=True)
    lab.up()
    assert deploy.main(["-i", str(lab_inventory)]) == 0
    return lab_inventory


def main_pids(lab) -> dict[str, str]:  # noqa: ANN001
    return {
        host: lab.ssh(host, ["systemctl", "show", "--property=MainPID", "--value", UNIT]).stdout
        for host in MEMBERS
    }


def journal_cursors(lab) -> dict[str, str]:  # noqa: ANN001
    """Where each member's journal ends now."""
    cursors = {}
    for host in MEMBERS:
        shown = lab.ssh(host, ["journalctl", "-n", "0", "--show-cursor", "-o", "cat"]).stdout
        cursors[host] = shown.strip().rsplit("-- cursor: ", 1)[-1]
    return cursors


def starts_after(lab, host: str, cursor: str) -> int:  # noqa: ANN001
    journal = lab.ssh(host, ["journalctl", "-u", UNIT, f"--after-cursor={cursor}", "-o", "cat"])
    return journal.stdout.count("Started etcd.service")


class QuorumWatcher:
    """Samples every member's status: the fewest members answering, and samples with no leader."""

    def __init__(self, inventory: Path) -> None:
        self.members = endpoints(load_cluster(inventory), timeout=0.5)
        self.fewest = len(self.members)
        self.samples = 0
        self.leaderless = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> QuorumWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            leaders = []
            for member in self.members:
                with contextlib.suppress(EtcdUnavailable):
                    leaders.append(int(member.status().get("leader", 0)))
            self.fewest = min(self.fewest, len(leaders))
            # Leaderless: no answering member knows a leader (a member just back from its
            # restart may not have heard from the leader yet; the cluster still has one).
            self.leaderless += int(not any(leaders))
            self.samples += 1
            self._stop.wait(0.1)


def test_deploy_from_scratch_then_verify_is_ok(etcd_lab: Path) -> None:
    assert verify.main(["-i", str(etcd_lab), "--limit", "etcd"]) == 0


def test_a_second_deploy_changes_nothing_and_restarts_nothing(
    etcd_lab: Path,
    lab,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    before = main_pids(lab)
    report = tmp_path / "deploy.json"
    assert deploy.main(["-i", str(etcd_lab), "--limit", "etcd", "--json", str(report)]) == 0
    records = json.loads(report.read_text())["records"]
    assert [r for r in records if r["changed"]] == []
    assert main_pids(lab) == before


def test_dry_run_shows_the_diff_and_the_restart_and_changes_nothing(
    etcd_lab: Path,
    lab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    changed = inventory_with(etcd_lab, tmp_path, "etcd", heartbeat_interval_ms=150)
    before = main_pids(lab)
    config_before = lab.ssh("kube.controller01", ["cat", "/etc/etcd/etcd.conf"]).stdout
    assert deploy.main(["-i", str(changed), "--limit", "etcd", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '-ETCD_HEARTBEAT_INTERVAL="100"' in out and '+ETCD_HEARTBEAT_INTERVAL="150"' in out
    assert out.count(f"would restart {UNIT}") == 3
    assert lab.ssh("kube.controller01", ["cat", "/etc/etcd/etcd.conf"]).stdout == config_before
    assert main_pids(lab) == before


def test_a_changed_setting_restarts_each_member_once_while_quorum_holds(
    etcd_lab: Path,
    lab,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    changed = inventory_with(etcd_lab, tmp_path, "etcd", election_timeout_ms=1200)
    before, cursors = main_pids(lab), journal_cursors(lab)
    with QuorumWatcher(etcd_lab) as watcher:
        assert deploy.main(["-i", str(changed), "--limit", "etcd"]) == 0
    after = main_pids(lab)
    assert all(after[host] != before[host] for host in MEMBERS)
    assert [starts_after(lab, host, cursors[host]) for host in MEMBERS] == [1, 1, 1]
    assert watcher.samples > 10
    assert watcher.fewest >= 2, "a restart took the cluster below quorum"
    # The leader hands over before its restart, so no sample should find the cluster leaderless.
    assert watcher.leaderless == 0, f"{watcher.leaderless} of {watcher.samples} samples: no leader"
    # Back to the inventory's own settings (another rolling restart) for the next tests.
    assert deploy.main(["-i", str(etcd_lab), "--limit", "etcd"]) == 0


def test_a_deploy_killed_after_writing_restarts_on_the_next_run(
    etcd_lab: Path,
    lab,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    changed = inventory_with(etcd_lab, tmp_path, "etcd", log_level="warn")
    cluster = load_cluster(changed)
    before = main_pids(lab)
    # The first half of a deploy, as a run killed before its restart step leaves it.
    nr = init_nornir(changed).filter(filter_func=lambda h: h.name in MEMBERS)
    written = nr.run(
        task=ensure_etcd_member,
        cluster=cluster,
        certificates_changed=frozenset(),
        formed=True,
        dry_run=False,
    )
    nr.close_connections()
    assert not written.failed and all(r.changed for r in written.values())
    assert main_pids(lab) == before
    assert deploy.main(["-i", str(changed), "--limit", "etcd"]) == 0
    assert all(main_pids(lab)[host] != before[host] for host in MEMBERS)
    assert deploy.main(["-i", str(etcd_lab), "--limit", "etcd"]) == 0


def test_verify_warns_with_one_member_down_and_is_critical_with_two(
    etcd_lab: Path,
    lab,  # noqa: ANN001
) -> None:
    try:
        lab.ssh("kube.controller03", ["systemctl", "stop", UNIT])
        assert verify.main(["-i", str(etcd_lab), "--limit", "etcd", "--quiet"]) == 1
        lab.ssh("kube.controller02", ["systemctl", "stop", UNIT])
        assert verify.main(["-i", str(etcd_lab), "--limit", "etcd", "--quiet"]) == 2
    finally:
        for host in ("kube.controller02", "kube.controller03"):
            lab.ssh(host, ["systemctl", "start", "--no-block", UNIT])
    deadline = time.monotonic() + 60
    while verify.main(["-i", str(etcd_lab), "--limit", "etcd", "--quiet"]) != 0:
        assert time.monotonic() < deadline, "etcd did not recover"
        time.sleep(1)


def test_the_leader_drill_passes(etcd_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert drill.main(["-i", str(etcd_lab), "etcd-leader"]) == 0
    out = capsys.readouterr().out
    assert "time to a new leader after the kill:" in out and "never" not in out
    assert "none lost" in out


@pytest.fixture
def keys(etcd_lab: Path) -> Iterator[list]:  # type: ignore[type-arg]
    members = endpoints(load_cluster(etcd_lab))
    yield members
    members[0].delete_prefix("/kubenorn-test/")


def backed_up_then_deleted(etcd_lab: Path, keys: list, tmp_path: Path) -> Path:  # type: ignore[type-arg]
    """Write 20 keys, back them up, delete them; the snapshot."""
    for number in range(20):
        keys[0].put(f"/kubenorn-test/{number:02d}", f"value {number}")
    backups = tmp_path / "backups"
    assert etcd_backup.main(["-i", str(etcd_lab), "--dest", str(backups), "--quiet"]) == 0
    [snapshot] = list(backups.glob("etcd-*.db"))
    keys[0].delete_prefix("/kubenorn-test/")
    return snapshot


def test_backup_then_restore_brings_deleted_keys_back(
    etcd_lab: Path,
    keys: list,  # type: ignore[type-arg]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = backed_up_then_deleted(etcd_lab, keys, tmp_path)
    assert keys[0].range_prefix("/kubenorn-test/") == {}
    assert etcd_restore.main(["-i", str(etcd_lab), str(snapshot)]) == 3  # no --yes: refused
    assert etcd_restore.main(["-i", str(etcd_lab), str(snapshot), "--yes"]) == 0
    assert "restart your own controllers and operators" in capsys.readouterr().out
    restored = endpoints(load_cluster(etcd_lab))[1].range_prefix("/kubenorn-test/")
    assert len(restored) == 20 and restored["/kubenorn-test/07"] == "value 7"
    assert verify.main(["-i", str(etcd_lab), "--limit", "etcd", "--quiet"]) == 0
    # The revision went back: pods, a Service and its DNS name created only now (verify's smoke
    # test) work only if kubelet, kube-proxy and CoreDNS watch the restored data afresh.
    assert verifies_ok_within(etcd_lab, 60)


def test_a_drill_interrupted_after_killing_the_leader_leaves_etcd_healthy(
    etcd_lab: Path,
    lab,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C while the killed leader is down: its undo starts it before the drill ends."""

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(drill, "wait_for", ctrl_c)  # the first wait: for a new leader
    assert drill.main(["-i", str(etcd_lab), "etcd-leader"]) == 130
    out = capsys.readouterr().out
    assert "drill.undo" in out and "LEFT DOWN" not in out
    for host in MEMBERS:
        assert lab.ssh(host, ["systemctl", "is-active", UNIT]).stdout.strip() == "active", host
        assert lab.ssh(host, ["test", "-e", DRILL_DROPIN]).returncode == 1, host
    monkeypatch.undo()
    assert verify.main(["-i", str(etcd_lab), "--limit", "etcd", "--quiet"]) == 0


# A member whose restore fails: its etcdctl refuses `snapshot restore` as a data directory that
# cannot be written would (everything else, health checks included, goes to the real etcdctl).
FAILING_RESTORE = """#!/bin/sh
if [ "$1" = snapshot ] && [ "$2" = restore ]; then
  echo "Error: mkdir /var/lib/etcd: read-only file system (lab fault)" >&2
  exit 1
fi
exec {real} "$@"
"""
WRAPPER = "/usr/local/bin/etcdctl"


@contextlib.contextmanager
def restore_fails_on(lab, host: str) -> Iterator[None]:  # noqa: ANN001
    real = lab.ssh(host, ["sh", "-c", "command -v etcdctl"]).stdout.strip()
    assert real and real != WRAPPER, real
    script = FAILING_RESTORE.format(real=real)
    install = f"printf %s {shlex.quote(script)} > {WRAPPER} && chmod 0755 {WRAPPER}"
    assert lab.ssh(host, ["sh", "-c", install]).returncode == 0
    try:
        yield
    finally:
        lab.ssh(host, ["rm", "-f", WRAPPER])


def test_a_restore_failing_on_one_member_puts_all_back_and_a_rerun_finishes_it(
    etcd_lab: Path,
    keys: list,  # type: ignore[type-arg]
    lab,  # noqa: ANN001
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = backed_up_then_deleted(etcd_lab, keys, tmp_path)
    with restore_fails_on(lab, "kube.controller02"):
        assert etcd_restore.main(["-i", str(etcd_lab), str(snapshot), "--yes"]) == 1
    out = capsys.readouterr().out
    assert "lab fault" in out
    assert out.count("running on its original data: the restore did not take effect") == 3
    # Every member runs again, on its original data: the deleted keys are still deleted.
    for host in MEMBERS:
        assert lab.ssh(host, ["systemctl", "is-active", UNIT]).stdout.strip() == "active", host
    assert verifies_ok_within(etcd_lab, 120)
    assert endpoints(load_cluster(etcd_lab))[1].range_prefix("/kubenorn-test/") == {}

    assert etcd_restore.main(["-i", str(etcd_lab), str(snapshot), "--yes"]) == 0
    assert "resuming restore" in capsys.readouterr().out
    restored = endpoints(load_cluster(etcd_lab))[1].range_prefix("/kubenorn-test/")
    assert len(restored) == 20 and restored["/kubenorn-test/07"] == "value 7"
    assert verifies_ok_within(etcd_lab, 120)
