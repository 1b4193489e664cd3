"""The run history: runs, records and findings appended and read back, JUnit from records."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pki_support import inventory_copy

from kubenorn import cli, history
from kubenorn.junit import write_junit
from kubenorn.records import Record, RunInfo


def make_run(run_id: str, started: str) -> tuple[RunInfo, list[Record]]:
    info = RunInfo(
        run_id, "verify", "/inv", ["-i", "/inv"], False, started, finished_at=started, exit_code=1
    )
    records = [
        Record(run_id, "verify", "kube.node01", "etcd", "ok", False, 0.5),
        Record(run_id, "verify", "kube.node02", "etcd", "failed", False, 0.25, message="outer"),
        Record(
            run_id,
            "verify",
            "kube.node02",
            "etcd/health",
            "failed",
            False,
            0.2,
            message="etcd on kube.node02 is down",
        ),
        Record(run_id, "verify", "kube.node03", "etcd", "skipped", False, 0.0, message="earlier"),
    ]
    return info, records


def test_runs_records_and_findings_round_trip(private_history: Path) -> None:
    first = make_run("r1", "2026-11-25T01:00:00+00:00")
    second = make_run("r2", "2026-11-25T02:00:00+00:00")
    finding = {
        "check": "etcd.health",
        "host": "kube.node02",
        "status": "CRITICAL",
        "detail": "down",
    }
    history.append_run(*first)
    history.append_run(*second, [finding])
    assert [run["run_id"] for run in history.runs()] == ["r2", "r1"]
    assert history.latest_run_id() == "r2"
    assert history.latest_run_id("deploy") is None
    records = history.records_of("r1")
    assert [(r["host"], r["status"]) for r in records][:2] == [
        ("kube.node01", "ok"),
        ("kube.node02", "failed"),
    ]
    frames = history.load_dataframes()
    assert len(frames["runs"]) == 2
    assert len(frames["records"]) == 8
    assert frames["findings"].iloc[0]["status"] == "CRITICAL"


def test_history_path_follows_the_environment(private_history: Path) -> None:
    assert history.history_path() == private_history


def test_junit_has_a_case_per_host_and_step_with_the_innermost_message(tmp_path: Path) -> None:
    info, records = make_run("r3", "2026-11-25T03:00:00+00:00")
    path = tmp_path / "junit.xml"
    write_junit(path, info, records, ["etcd"])
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("classname"): case for case in suite.iter("testcase")}
    failure = cases["kube.node02"].find("failure")
    assert failure is not None and failure.get("message") == "etcd on kube.node02 is down"
    assert cases["kube.node03"].find("skipped") is not None
    assert cases["kube.node01"].find("failure") is None


def unwritable_history(tmp_path: Path, how: str) -> Path:
    if how == "parent is a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "history.sqlite"
    if how == "a directory":
        (tmp_path / "history.sqlite").mkdir()
    else:  # not a database
        (tmp_path / "history.sqlite").write_bytes(b"\x00garbage" * 512)
    return tmp_path / "history.sqlite"


HOW = ["parent is a file", "a directory", "not a database"]


@pytest.mark.parametrize("how", HOW)
def test_an_unwritable_history_database_is_named(tmp_path: Path, how: str) -> None:
    path = unwritable_history(tmp_path, how)
    with pytest.raises(history.HistoryError, match=f"history database {path}: cannot be written"):
        history.check_writable(path)
    history.check_writable(tmp_path / "fine" / "history.sqlite")  # a new one is created


@pytest.mark.parametrize("how", HOW)
def test_a_run_with_an_unwritable_history_exits_3_before_touching_a_host(
    tmp_path: Path,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from runbooks import verify

    path = unwritable_history(tmp_path, how)
    monkeypatch.setenv(history.HISTORY_ENV, str(path))
    connections: list[str] = []
    monkeypatch.setattr(cli, "new_run", record_then_refuse(connections))
    assert verify.main(["-i", str(inventory_copy("good", tmp_path)), "--quiet"]) == 3
    error = capsys.readouterr().err
    assert error.startswith(f"error: history database {path}: cannot be written")
    assert error.count("\n") == 1 and "Traceback" not in error
    assert connections == [], "no run (and so no host) was started"


def record_then_refuse(started: list[str]) -> Any:
    real = cli.new_run

    def new_run(options: cli.Options, runbook: str, **display: Any) -> Any:
        real(options, runbook, **display)  # the check comes first, or this run starts
        started.append(runbook)
        raise cli.UsageError("a run started despite the unwritable history")

    return new_run
