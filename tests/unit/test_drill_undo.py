"""Drills undo what they broke: a killed etcd leader or a stopped apiserver is started again
whatever ends the drill (Ctrl-C, an error, a failed check), and the report says so.

The drill's host tasks are replaced by fakes that record what they were asked to do on which
host (no connection is opened); the runbook, its Run and its undos are the real ones.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nornir.core.task import Result, Task

from kubenorn import history
from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.run import Run
from runbooks import drill

VICTIM = "kube.controller01"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    # The inventory alone: a lab run leaves its restore journal and backups beside it.
    state = shutil.ignore_patterns(".restore", ".backups")
    return Path(
        shutil.copytree(REPO_ROOT / "lab" / "inventory", tmp_path / "inventory", ignore=state)
    )


class Host:
    """What the fake tasks did, per host, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []

    def task(self, name: str, *, fail: bool = False, changed: bool = True) -> Callable[..., Result]:
        def fake(task: Task, **kwargs: Any) -> Result:
            self.done.append((task.host.name, name))
            if fail:
                raise RuntimeError(f"{name} failed on {task.host.name}")
            return Result(host=task.host, changed=changed)

        return fake


class FakeEndpoint:
    def __init__(self, url: str) -> None:
        self.url = url
        self.deleted: list[str] = []

    def range_prefix(self, prefix: str) -> dict[str, str]:
        return {}

    def delete_prefix(self, prefix: str) -> None:
        self.deleted.append(prefix)


class FakeWriter:
    def __init__(self, endpoints: list[FakeEndpoint], prefix: str) -> None:
        self.acked: dict[int, float] = {}
        self.errors: list[tuple[float, str]] = []
        self.stopped = False
        self.prefix = prefix

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self.stopped = True

    def first_ack_after(self, moment: float) -> float | None:
        return None


def fake_etcd(
    monkeypatch: pytest.MonkeyPatch, inventory: Path, hosts: Host
) -> tuple[list[FakeWriter], list[FakeEndpoint]]:
    """The etcd drill sees controller01 leading; kill and revive are recorded."""
    cluster = load_cluster(inventory)
    members = [FakeEndpoint(m.client_url) for m in cluster.etcd.members]
    writers: list[FakeWriter] = []

    def writer(endpoints: list[FakeEndpoint], prefix: str) -> FakeWriter:
        writers.append(FakeWriter(endpoints, prefix))
        return writers[-1]

    monkeypatch.setattr(drill, "endpoints", lambda cluster: members)
    monkeypatch.setattr(drill, "leader_of", lambda endpoints: (1, {1: members[0]}))
    monkeypatch.setattr(drill, "Writer", writer)
    monkeypatch.setattr(drill, "kill_member", hosts.task("kill"))
    monkeypatch.setattr(drill, "revive_etcd", hosts.task("revive"))
    monkeypatch.setattr(drill.time, "sleep", lambda seconds: None)
    return writers, members


def interrupt(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


def last_run() -> dict[str, Any]:
    run_id = history.latest_run_id("drill")
    return next(r for r in history.runs(limit=10) if r["run_id"] == run_id)


def test_ctrl_c_after_killing_the_etcd_leader_starts_it_again(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = Host()
    writers, members = fake_etcd(monkeypatch, inventory, hosts)
    monkeypatch.setattr(drill, "wait_for", interrupt)  # Ctrl-C while waiting for an election
    assert drill.main(["-i", str(inventory), "etcd-leader"]) == 130
    assert hosts.done == [(VICTIM, "kill"), (VICTIM, "revive")]
    assert writers[0].stopped
    assert members[0].deleted == [writers[0].prefix], "the drill's keys are deleted"
    out = capsys.readouterr().out
    assert "undone:" in out and f"OK {VICTIM} drill.undo: etcd.service" in out
    assert last_run()["exit_code"] == 130
    rows = history.records_of(last_run()["run_id"])
    records = {(r["host"], r["task"], r["status"]) for r in rows}
    assert (VICTIM, "restart-member", "changed") in records


def test_an_error_after_the_kill_still_starts_the_leader_again(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = Host()
    fake_etcd(monkeypatch, inventory, hosts)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the drill")

    monkeypatch.setattr(drill, "wait_for", broken)
    with pytest.raises(RuntimeError, match="a bug in the drill"):
        drill.main(["-i", str(inventory), "etcd-leader"])
    assert hosts.done == [(VICTIM, "kill"), (VICTIM, "revive")]


def test_a_kill_that_failed_half_way_is_undone_on_that_host(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that failed the kill is in run.failed: the undo must reach it all the same."""
    hosts = Host()
    fake_etcd(monkeypatch, inventory, hosts)
    monkeypatch.setattr(drill, "kill_member", hosts.task("kill", fail=True))
    assert drill.main(["-i", str(inventory), "etcd-leader"]) == 1
    assert hosts.done == [(VICTIM, "kill"), (VICTIM, "revive")]


def test_a_failed_undo_is_critical_naming_host_and_unit(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = Host()
    fake_etcd(monkeypatch, inventory, hosts)
    monkeypatch.setattr(drill, "wait_for", interrupt)
    monkeypatch.setattr(drill, "revive_etcd", hosts.task("revive", fail=True))
    assert drill.main(["-i", str(inventory), "etcd-leader"]) == 130
    out = capsys.readouterr().out
    assert f"CRITICAL {VICTIM} drill.undo: etcd.service LEFT DOWN: undo failed" in out
    assert "revive failed on kube.controller01" in out
    with history.connect() as db:
        findings = db.execute(
            "SELECT host, status FROM findings WHERE run_id = ?", (last_run()["run_id"],)
        ).fetchall()
    assert findings == [(VICTIM, "CRITICAL")]


def test_the_apiserver_drill_starts_the_apiserver_again_after_ctrl_c(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = Host()
    monkeypatch.setattr(drill, "probe_load_balancer", hosts.task("probe"))
    monkeypatch.setattr(drill, "stop_component", hosts.task("stop"))
    monkeypatch.setattr(drill, "restart_component", hosts.task("start"))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if seconds == drill.APISERVER_DOWN:
            raise KeyboardInterrupt  # Ctrl-C while the apiserver is down

    monkeypatch.setattr(drill.time, "sleep", sleep)
    assert drill.main(["-i", str(inventory), "apiserver"]) == 130
    mine = [step for step in hosts.done if step[0] == VICTIM]
    assert mine == [(VICTIM, "stop"), (VICTIM, "start")]


def test_a_leader_drill_that_times_out_still_makes_sure_the_component_runs(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tasks.kube_verify import LeaderRecord

    hosts = Host()
    record = LeaderRecord(f"{VICTIM}_5b1f", time.time(), 4.0)
    monkeypatch.setattr(drill, "leader_seen", lambda run, cluster, component, observer: record)
    monkeypatch.setattr(drill, "kill_component", hosts.task("kill"))
    monkeypatch.setattr(drill, "restart_component", hosts.task("start", changed=False))
    monkeypatch.setattr(drill, "wait_for", lambda *args, **kwargs: None)  # no new leader
    monkeypatch.setattr(
        drill, "wait_control_plane_healthy", lambda nr, cluster, timeout: (None, [])
    )
    assert drill.main(["-i", str(inventory), "scheduler"]) == 1
    assert hosts.done == [(VICTIM, "kill"), (VICTIM, "start")]
    out = capsys.readouterr().out
    assert "kube-scheduler.service" in out and "nothing to put back" in out


def test_undos_run_last_registered_first_and_only_once(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubenorn.nornir_setup import init_nornir
    from kubenorn.report import make_console
    from kubenorn.undo import Undos

    hosts = Host()
    run = Run(init_nornir(inventory), "drill", argv=[])
    with Undos(run, make_console()) as undos:
        undos.register("first", "kube.controller01", "a.service", "start a", hosts.task("a"))
        undos.register("second", "kube.controller02", "b.service", "start b", hosts.task("b"))
        assert undos.undo_all()
        undos.register("third", "kube.controller03", "c.service", "start c", hosts.task("c"))
    assert [name for _, name in hosts.done] == ["b", "a", "c"]
    run.close(0)
