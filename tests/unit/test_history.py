"""The run history: runs, records and findings appended and read back, JUnit from records."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kubenorn import history
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
