"""kubenorn.run and kubenorn.records: steps over the fake hosts, and the records they leave."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import Fleet
from nornir.core import Nornir
from nornir.core.task import Result, Task

from kubenorn import history
from kubenorn.records import Record
from kubenorn.run import Run
from tasks.files import ensure_file
from tasks.ssh import RemoteError, run_command

CHECK = "app --check"
FAILURE = "CommandError: h2: `app --check` exited 1: line 3: unknown key 'colour'"


def component(task: Task) -> Result:
    task.run(task=ensure_file, path="/etc/app.conf", content="x=1\n")
    task.run(task=run_command, name="check", argv=["app", "--check"])
    return Result(host=task.host)


def deploy(task: Task) -> Result:
    task.run(task=component)
    return Result(host=task.host)


def restart(task: Task) -> Result:
    return run_command(task, ["systemctl", "restart", "app"])


@pytest.fixture
def hosts(fleet: Fleet) -> Fleet:
    """Every host converges app.conf; h2's config check fails; the others restart."""
    for host in fleet.hosts.values():
        host.coreutils = True  # deployer installs app.conf through sudo
        host.script[CHECK] = (0, "ok\n", "")
    fleet["h2"].script[CHECK] = (1, "", "line 3: unknown key 'colour'\n")
    fleet["h1"].script["systemctl restart app"] = (0, "", "")
    fleet["deployer"].script["systemctl restart app"] = (0, "", "")
    return fleet


@pytest.fixture
def run(nr: Nornir, hosts: Fleet) -> Run:
    run = Run(nr, "deploy", argv=["-i", "inventory"])
    run.step("deploy", deploy)
    run.step("restart", restart)
    return run


def by_host_and_task(records: list[Record]) -> dict[tuple[str, str], Record]:
    return {(record.host, record.task): record for record in records}


def test_a_failed_host_is_skipped_by_later_steps_and_the_others_go_on(
    run: Run, hosts: Fleet
) -> None:
    assert run.failed == {"h2"}
    assert run.steps == ["deploy", "restart"]
    statuses = {key: r.status for key, r in by_host_and_task(run.records).items()}
    assert statuses == {
        ("h1", "deploy/component/ensure_file"): "changed",
        ("h1", "deploy/component/check"): "ok",
        ("h1", "deploy/component"): "changed",
        ("h1", "deploy"): "changed",
        ("h1", "restart"): "ok",
        ("h2", "deploy/component/ensure_file"): "changed",
        ("h2", "deploy/component/check"): "failed",
        ("h2", "deploy/component"): "failed",
        ("h2", "deploy"): "failed",
        ("h2", "restart"): "skipped",
        ("deployer", "deploy/component/ensure_file"): "changed",
        ("deployer", "deploy/component/check"): "ok",
        ("deployer", "deploy/component"): "changed",
        ("deployer", "deploy"): "changed",
        ("deployer", "restart"): "ok",
    }
    assert "systemctl restart app" not in hosts["h2"].lines()
    assert hosts["h1"].lines()[-1] == "systemctl restart app"


def test_a_failure_is_recorded_with_the_innermost_message_at_every_level(run: Run) -> None:
    records = by_host_and_task(run.records)
    for task in ("deploy/component/check", "deploy/component", "deploy"):
        assert records[("h2", task)].message == FAILURE
    assert records[("h2", "restart")].message == "not run: the host failed an earlier step"
    assert all(r.message == "" for r in run.records if r.status in ("ok", "changed"))


def test_records_carry_ids_diffs_changes_and_nested_durations(run: Run) -> None:
    records = by_host_and_task(run.records)
    written = records[("h1", "deploy/component/ensure_file")]
    assert written.diff == "--- /dev/null\n+++ /etc/app.conf\n@@ -0,0 +1 @@\n+x=1\n"
    assert written.changed and not records[("h1", "deploy/component/check")].changed
    assert records[("h1", "deploy")].diff == ""
    assert {(r.run_id, r.runbook) for r in run.records} == {(run.info.run_id, "deploy")}
    for host in ("h1", "h2", "deployer"):
        inner = records[(host, "deploy/component/ensure_file")].duration
        middle = records[(host, "deploy/component")].duration
        assert 0 < inner <= middle <= records[(host, "deploy")].duration
    assert records[("h2", "restart")].duration == 0.0


def test_close_stamps_the_verdict_closes_connections_and_keeps_history(
    run: Run, hosts: Fleet
) -> None:
    assert hosts["h1"].open_connections == 1
    info = run.close(1)
    assert (info.exit_code, info.runbook) == (1, "deploy")
    assert info.finished_at >= info.started_at
    assert all(host.open_connections == 0 for host in hosts.hosts.values())
    [stored] = [r for r in history.runs() if r["run_id"] == info.run_id]
    assert stored["exit_code"] == 1
    assert len(history.records_of(info.run_id)) == len(run.records)


def test_write_json_holds_the_run_and_every_record(run: Run, tmp_path: Path) -> None:
    run.close(1)
    path = tmp_path / "run.json"
    run.write_json(path)
    document = json.loads(path.read_text())
    assert set(document) == {"run", "records"}
    assert document["run"]["run_id"] == run.info.run_id
    assert (document["run"]["runbook"], document["run"]["exit_code"]) == ("deploy", 1)
    assert document["run"]["argv"] == ["-i", "inventory"]
    assert document["records"] == [record.as_dict() for record in run.records]
    failed = [r for r in document["records"] if r["status"] == "failed"]
    assert {r["host"] for r in failed} == {"h2"}


def test_a_serial_step_stops_the_rollout_at_the_first_failure(nr: Nornir, hosts: Fleet) -> None:
    hosts["h1"].script["systemctl restart app"] = (1, "", "Job for app.service failed.\n")
    run = Run(nr, "rollout", argv=[])
    results = run.step("restart", restart, serial=True)
    assert list(results) == ["h1"]
    records = by_host_and_task(run.records)
    assert records[("h1", "restart")].status == "failed"
    for host in ("h2", "deployer"):
        assert records[(host, "restart")].status == "skipped"
        assert records[(host, "restart")].message == "not run: rollout stopped at h1"
        assert hosts[host].lines() == []


def test_a_step_runs_only_on_the_hosts_it_is_for(nr: Nornir, hosts: Fleet) -> None:
    run = Run(nr, "restart", argv=[])
    run.step("restart", restart, only=lambda host: host.name == "h1")
    assert [(r.host, r.task) for r in run.records] == [("h1", "restart")]
    assert hosts["deployer"].lines() == []


def failing_with(outcome: Exception | Result) -> Callable[[Task], Result]:
    def task(task: Task) -> Result:
        if isinstance(outcome, Exception):
            raise outcome
        outcome.host = task.host
        return outcome

    return task


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (
            RemoteError("h1: cannot write /etc/x: Socket is closed"),
            "RemoteError: h1: cannot write /etc/x: Socket is closed",
        ),
        (KeyError("etcd"), "KeyError: 'etcd'"),
        (ValueError("ValueError is in the text already"), "ValueError is in the text already"),
        (Result(host=None, failed=True, result="disk full"), "disk full"),
        (Result(host=None, failed=True), "failed"),
    ],
)
def test_the_failure_message_is_the_failures_own_words(
    nr: Nornir, fleet: Fleet, outcome: Exception | Result, message: str
) -> None:
    run = Run(nr.filter(name="h1"), "x", argv=[])
    run.step("step", failing_with(outcome))
    [record] = run.records
    assert (record.status, record.message) == ("failed", message)
    assert "Traceback" not in record.message
