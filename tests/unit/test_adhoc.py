"""runbooks.run: an ad-hoc command on every selected host, answers grouped, on fake hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import Fleet

from runbooks import run as adhoc


def lines(out: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines() if line.strip()]


def test_identical_answers_are_grouped_with_their_hosts(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["h1"].script["uptime"] = (0, " 10:00 up 3 days\n", "")
    fleet["h2"].script["uptime"] = (0, " 10:00 up 3 days\n", "")
    fleet["deployer"].script["uptime"] = (0, " 10:00 up 9 days\n", "")
    assert adhoc.main(["-i", str(inventory_dir), "--", "uptime"]) == 0
    assert lines(capsys.readouterr().out) == [
        "deployer (1 host): exit 0",
        "     10:00 up 9 days",
        "h1, h2 (2 hosts): exit 0",
        "     10:00 up 3 days",
    ]


def test_a_non_zero_exit_is_shown_first_and_makes_exit_1(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = "test -e /etc/kubernetes/admin.kubeconfig"
    fleet["h1"].script[line] = (0, "", "")
    fleet["h2"].script[line] = (1, "", "")
    fleet["deployer"].script[line] = (1, "", "")
    assert adhoc.main(["-i", str(inventory_dir), "-l", "etcd,nodes", "--", *line.split()]) == 1
    assert lines(capsys.readouterr().out) == [
        "deployer, h2 (2 hosts): exit 1",
        "h1 (1 host): exit 0",
    ]


def test_limit_takes_comma_lists_and_one_argument_runs_in_the_shell(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["h1"].script["sh -c 'cat /etc/hostname | tr a-z A-Z'"] = (0, "H1\n", "")
    fleet["h2"].script["sh -c 'cat /etc/hostname | tr a-z A-Z'"] = (0, "H2\n", "")
    argv = ["-i", str(inventory_dir), "-l", "h1,h2", "--", "cat /etc/hostname | tr a-z A-Z"]
    assert adhoc.main(argv) == 0
    assert lines(capsys.readouterr().out) == [
        "h1 (1 host): exit 0",
        "    H1",
        "h2 (1 host): exit 0",
        "    H2",
    ]
    assert fleet["deployer"].commands == []


def test_sudo_goes_through_the_ssh_users_sudo(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["deployer"].script["sudo -n -- id -u"] = (0, "0\n", "")
    assert adhoc.main(["-i", str(inventory_dir), "-l", "deployer", "--sudo", "--", "id", "-u"]) == 0
    assert lines(capsys.readouterr().out) == ["deployer (1 host): exit 0", "    0"]


def test_an_unreachable_host_is_a_failure_with_its_cause(
    fleet: Fleet, inventory_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["h1"].script["true"] = (0, "", "")
    fleet["h2"].connect_error = ConnectionRefusedError(111, "Connection refused")
    report = tmp_path / "run.json"
    argv = ["-i", str(inventory_dir), "-l", "etcd", "--json", str(report), "--", "true"]
    assert adhoc.main(argv) == 1
    out = lines(capsys.readouterr().out)
    assert out[0].startswith("h2 (1 host): unreached: ") and "refused" in out[0]
    assert out[1] == "h1 (1 host): exit 0"
    records = json.loads(report.read_text())["records"]
    assert {(r["host"], r["status"]) for r in records} == {("h1", "ok"), ("h2", "failed")}


def test_an_unknown_limit_exits_3_before_any_host_is_touched(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert adhoc.main(["-i", str(inventory_dir), "-l", "h1,nope", "--", "true"]) == 3
    assert "--limit nope: no host or group" in capsys.readouterr().err
    assert all(not host.commands for host in fleet.hosts.values())


def test_verbose_prints_nornirs_own_result_view(
    fleet: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["h1"].script["hostname"] = (0, "h1\n", "")
    assert adhoc.main(["-i", str(inventory_dir), "-l", "h1", "-v", "--", "hostname"]) == 0
    out = capsys.readouterr().out
    assert "* h1 ** changed : False" in out  # nornir-utils' print_result
    assert "\x1b[" not in out  # not a terminal: plain
    assert out.rstrip().endswith("h1 (1 host): exit 0\n    h1")


def test_a_private_key_in_the_output_is_never_shown_nor_kept(
    fleet: Fleet, inventory_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_secrets_in_outputs import PEM_KEY

    fleet["h1"].script["cat /etc/kubernetes/ssl/apiserver.key"] = (0, PEM_KEY, "")
    report = tmp_path / "run.json"
    argv = ["-i", str(inventory_dir), "-l", "h1", "--json", str(report), "-v", "--"]
    assert adhoc.main([*argv, "cat", "/etc/kubernetes/ssl/apiserver.key"]) == 0
    secret = PEM_KEY.splitlines()[1]
    assert secret not in capsys.readouterr().out
    assert secret not in report.read_text()
    assert "[redacted]" in report.read_text()
