"""kubenorn.api: the runbooks from Python, results as DataFrames with an HTML view; fake hosts."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
from fakes import Fleet
from pki_support import INVENTORIES
from rich.console import Console
from test_facts import CENTOS_7, FACTS_LINE, ROCKY_9, UBUNTU_22_04

from kubenorn import api, cli, history
from kubenorn.cluster import Cluster
from kubenorn.run import Run, RunInterrupted


@pytest.fixture
def answering(fleet: Fleet) -> Fleet:
    for name, output in {"h1": CENTOS_7, "h2": ROCKY_9, "deployer": UBUNTU_22_04}.items():
        fleet[name].script[FACTS_LINE] = (0, output, "")
    return fleet


def test_facts_as_records_and_data(
    answering: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = api.open(inventory_dir).facts()
    assert result.ok and result.status == "OK"
    assert isinstance(result.records, pd.DataFrame)
    assert set(result.records["host"]) == {"h1", "h2", "deployer"}
    assert result.data.loc["h2", "os_id"] == "rocky"
    assert result.steps.loc["h1", "facts"] == "ok"
    assert capsys.readouterr().out == ""  # a notebook shows the result, not the CLI's output
    assert result.run_id in {run["run_id"] for run in history.runs()}


def test_a_failed_host_is_in_the_result(answering: Fleet, inventory_dir: Path) -> None:
    answering["h2"].script[FACTS_LINE] = (1, "", "sh: cannot create /tmp/x\n")
    result = api.open(inventory_dir).facts(limit=["h1", "h2"])
    assert (result.exit_code, result.status, result.failed_hosts) == (1, "FAILED", ["h2"])
    assert "FAILED h2 facts" in result.output
    html = result._repr_html_()
    assert "FAILED (exit 1)" in html and "<table" in html and "h2" in html


def test_run_answers_and_groups(fleet: Fleet, inventory_dir: Path) -> None:
    fleet["h1"].script["cat /etc/hostname"] = (0, "h1\n", "")
    fleet["h2"].script["cat /etc/hostname"] = (1, "", "cat: /etc/hostname: No such file\n")
    fleet["deployer"].connect_error = ConnectionRefusedError(111, "Connection refused")
    result = api.open(inventory_dir).run(["cat", "/etc/hostname"])
    assert result.exit_code == 1
    answers = result.answers.set_index("host")
    assert answers.loc["h1", "rc"] == 0 and answers.loc["h1", "stdout"] == "h1\n"
    assert answers.loc["h2", "rc"] == 1 and "No such file" in answers.loc["h2", "stderr"]
    assert pd.isna(answers.loc["deployer", "rc"]) and "refused" in answers.loc["deployer", "error"]
    assert len(result.groups) == 3
    assert "cat: /etc/hostname: No such file" in result._repr_html_()


def test_identical_answers_group_together(fleet: Fleet, inventory_dir: Path) -> None:
    for name in ("h1", "h2"):
        fleet[name].script["uptime"] = (0, "up\n", "")
    result = api.open(inventory_dir).run("uptime", limit="etcd")
    assert result.groups.to_dict("records") == [
        {"hosts": "h1, h2", "rc": 0, "stdout": "up\n", "stderr": "", "error": ""}
    ]


def test_an_unusable_inventory_raises_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(api.KubenornError, match="inventory file is missing"):
        api.open(tmp_path / "absent").facts()


def test_preflight_findings_as_a_dataframe() -> None:
    result = api.open(INVENTORIES / "missing-fields").preflight(pki=False)
    assert result.status == "CRITICAL" and result.exit_code == 2
    assert "data.addr: unknown key" in " ".join(result.findings["detail"])
    assert "problems" in result._repr_html_()


def test_the_cluster_model_of_the_inventory() -> None:
    assert [h.name for h in api.open(INVENTORIES / "good").cluster.nodes] == [
        "kube.node01",
        "kube.node02",
    ]


@pytest.mark.parametrize("call", ["verify", "deploy"])
def test_verify_and_deploy_refuse_a_broken_inventory_before_any_host(call: str) -> None:
    inventory = api.open(INVENTORIES / "missing-fields")
    with pytest.raises(api.KubenornError, match="data.addr: unknown key"):
        getattr(inventory, call)()


# Each runbook: its typed entry point, a command line, and the API call that means the same.
ENTRY_POINTS = [
    (
        "facts",
        "gather",
        ["--limit", "kube.node01", "--quiet"],
        lambda inv: inv.facts(limit="kube.node01"),
    ),
    (
        "verify",
        "verify_cluster",
        ["--limit", "kube.node01", "--quiet", "--no-smoke-test"],
        lambda inv: inv.verify(limit=["kube.node01"], smoke_test=False),
    ),
    (
        "deploy",
        "deploy_cluster",
        ["--limit", "kube.node01", "--quiet", "--dry-run", "--force"],
        lambda inv: inv.deploy(limit="kube.node01", force=True),
    ),
    (
        "upgrade",
        "upgrade_cluster",
        ["--limit", "kube.node01", "--dry-run", "--probe-interval", "0.5"],
        lambda inv: inv.upgrade(limit="kube.node01", probe_interval=0.5),
    ),
    (
        "run",
        "run_command",
        ["--limit", "kube.node01", "--quiet", "--sudo", "--", "cat /etc/hostname"],
        lambda inv: inv.run("cat /etc/hostname", limit="kube.node01", sudo=True),
    ),
]


@pytest.mark.parametrize(("runbook", "entry", "argv", "call"), ENTRY_POINTS)
def test_the_api_and_the_command_line_call_one_typed_function_alike(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    runbook: str,
    entry: str,
    argv: list[str],
    call: Callable[[api.Inventory], api.Result],
) -> None:
    """Same parameters (the history's command line too); its refusal is the API's error."""
    module = importlib.import_module(f"runbooks.{runbook}")
    real = getattr(module, entry)
    seen: list[dict[str, Any]] = []

    def refused(*args: Any, **kwargs: Any) -> Run:
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append({name: comparable(value) for name, value in bound.arguments.items()})
        raise cli.UsageError(f"{entry} refused")

    monkeypatch.setattr(module, entry, refused)
    inventory = INVENTORIES / "good"
    assert module.main(["-i", str(inventory), *argv]) == cli.EXIT_UNKNOWN
    assert f"error: {entry} refused" in capsys.readouterr().err
    with pytest.raises(api.KubenornError, match=f"^{entry} refused$"):
        call(api.open(inventory))
    cli_call, api_call = seen
    assert cli_call == api_call
    assert api_call["options"].argv == ("-i", str(inventory), *argv)


def comparable(value: Any) -> Any:
    """A parameter as the two calls can share it: a cluster by its inventory, any console."""
    if isinstance(value, Cluster):
        return value.inventory_dir.resolve()
    return "a console" if isinstance(value, Console) else value


@pytest.mark.parametrize("call", ["facts", "run"])
def test_an_option_error_raises_with_its_message(
    fleet: Fleet, inventory_dir: Path, call: str
) -> None:
    inventory = api.open(inventory_dir)
    with pytest.raises(api.KubenornError, match="^--limit nope: no host or group of that name"):
        inventory.facts(limit="nope") if call == "facts" else inventory.run("true", limit="nope")
    assert history.runs() == []


def test_ctrl_c_closes_the_run_with_130_as_the_command_line_does(
    fleet: Fleet, inventory_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cli.new_run

    def interrupted_run(options: cli.Options, runbook: str, **display: Any) -> Run:
        run = real(options, runbook, **display)

        def step(*args: Any, **kwargs: Any) -> NoReturn:  # Ctrl-C while the first step runs
            raise RunInterrupted(run)

        run.step = step  # type: ignore[method-assign]
        return run

    monkeypatch.setattr(cli, "new_run", interrupted_run)
    result = api.open(inventory_dir).facts()
    assert (result.exit_code, result.status) == (130, "FAILED")
    assert [run["exit_code"] for run in history.runs()] == [130]
    assert "0 hosts, 0 changed steps, 0 failed hosts" in result.output  # the CLI's summary
