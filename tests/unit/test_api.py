"""kubenorn.api: the runbooks from Python, results as DataFrames with an HTML view; fake hosts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fakes import Fleet
from pki_support import INVENTORIES
from test_facts import CENTOS_7, FACTS_LINE, ROCKY_9, UBUNTU_22_04

from kubenorn import api, history


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
