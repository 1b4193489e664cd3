"""kubenorn.report: the hosts x steps table, each failure told once with its message."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from kubenorn.records import Record, RunInfo
from kubenorn.report import failures, print_summary, step_matrix

INFO = RunInfo("20261125T010000Z-abcd1234", "deploy", "/inv", [], False, "2026-11-25T01:00:00")
STEPS = ["deploy", "restart"]
CHECK_FAILED = "CommandError: h2: `app --check` exited 1: line 3: unknown key 'colour'"


def record(host: str, task: str, status: str, message: str = "") -> Record:
    return Record(INFO.run_id, "deploy", host, task, status, status == "changed", 0.1, "", message)  # type: ignore[arg-type]


RECORDS = [
    record("h1", "deploy/component/check", "ok"),
    record("h1", "deploy/component", "changed"),
    record("h1", "deploy", "changed"),
    record("h1", "restart", "ok"),
    record("h2", "deploy/component/check", "failed", CHECK_FAILED),
    record("h2", "deploy/component", "failed", CHECK_FAILED),
    record("h2", "deploy", "failed", CHECK_FAILED),
    record("h2", "restart", "skipped", "not run: the host failed an earlier step"),
    record("deployer", "deploy", "ok"),
    record("deployer", "restart", "failed", "RemoteError: deployer: the SSH connection has closed"),
]


def summary(records: list[Record], info: RunInfo = INFO) -> str:
    console = Console(file=StringIO(), width=200, color_system=None)
    print_summary(info, records, STEPS, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_matrix_holds_each_steps_top_level_status() -> None:
    assert step_matrix(RECORDS, STEPS) == {
        "h1": {"deploy": "changed", "restart": "ok"},
        "h2": {"deploy": "failed", "restart": "skipped"},
        "deployer": {"deploy": "ok", "restart": "failed"},
    }


def test_each_failure_is_told_once_at_its_innermost_task() -> None:
    assert [(r.host, r.task) for r in failures(RECORDS)] == [
        ("h2", "deploy/component/check"),
        ("deployer", "restart"),
    ]


def test_the_summary_names_every_host_step_and_failure() -> None:
    text = summary(RECORDS)
    lines = text.splitlines()
    assert f"deploy {INFO.run_id}" in text
    for host in ("h1", "h2", "deployer"):
        [row] = [line for line in lines if line.split("│")[1:2] == [f" {host:<8} "]]
        assert (
            row.split("│")[2:4]
            == {
                "h1": [" changed ", " ok      "],
                "h2": [" failed  ", " skipped "],
                "deployer": [" ok      ", " failed  "],
            }[host]
        )
    assert f"FAILED h2 deploy/component/check: {CHECK_FAILED}" in lines
    assert "FAILED deployer restart: RemoteError: deployer: the SSH connection has closed" in lines
    assert sum(line.startswith("FAILED") for line in lines) == 2
    assert lines[-1] == "3 hosts, 1 changed steps, 2 failed hosts: deployer, h2"


def test_a_clean_run_says_so() -> None:
    text = summary([record("h1", "deploy", "ok"), record("h1", "restart", "changed")])
    assert "FAILED" not in text
    assert text.splitlines()[-1] == "1 hosts, 1 changed steps, 0 failed hosts"


def test_a_dry_run_is_marked_in_the_title() -> None:
    dry = RunInfo(INFO.run_id, "deploy", "/inv", [], True, INFO.started_at)
    assert f"deploy {INFO.run_id} (dry run)" in " ".join(summary(RECORDS, dry).split())
    assert "(dry run)" not in summary(RECORDS)


@pytest.mark.parametrize(
    "message",
    [
        "h1: `ls /etc/[a-z]*` exited 2: ls: cannot access '/etc/[a-z]*': No such file",
        "h1: `x` exited 1: [sudo] password for deploy: Sorry, try again.",
        "h1: cannot write [/etc/x]: Permission denied",
        "h1: `x` exited 1: [bold]not markup[/bold]",
    ],
)
def test_a_message_is_printed_as_it_is_never_as_console_markup(message: str) -> None:
    text = summary([record("h1", "deploy", "failed", message)])
    assert f"FAILED h1 deploy: {message}" in text.splitlines()


def test_without_a_terminal_nothing_is_cut(capsys: pytest.CaptureFixture[str]) -> None:
    """cron mail, CI logs and pipes: full host names and messages, no colour codes."""
    from kubenorn.report import make_console

    host = "kube.controller01.a-rather-long-datacentre-name.example.test"
    message = "a message " * 40 + "that ends here"
    records = [record(host, "deploy", "failed", message), record("kube.node01", "deploy", "ok")]
    print_summary(INFO, records, ["deploy"], make_console())
    out = capsys.readouterr().out
    assert host in out and "…" not in out
    assert f"FAILED {host} deploy: {message}" in out
    assert "\x1b[" not in out
