"""runbooks.node remove on fake hosts a real deploy set up (tests/unit/fake_reset.py).

Through the API on the first controller: cordon, then drain, then delete, and only then the
host's reset (the same tasks as runbooks.reset). A dry run issues no mutating command; a drain
that fails deletes nothing and touches no host; an unreachable host is still removed from the
API and named; a stranger, or the last controller or etcd member, is refused before any host
is touched (tests/unit/test_etcd_membership.py: an etcd member leaving).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import NotRequired, TypedDict

import pytest
import yaml
from fake_cluster import write_inventory
from fake_reset import BEFORE_DEPLOY, Deployed, deployed_fleet, mutating, served

from kubenorn import cli
from kubenorn.cluster import load_cluster
from kubenorn.history import records_of, runs
from runbooks import node

CONTROLLER, NODE, OTHER = "kube.controller01", "kube.node01", "kube.node02"
SMOKE = shlex.quote("--pod-selector=app.kubernetes.io/managed-by!=kubenorn-smoke-test")
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deployed_fleet(tmp_path_factory.mktemp("node"))


@pytest.fixture
def fleet(deployed: Deployed) -> Iterator[Deployed]:
    with served(deployed):
        yield deployed


def remove(deployed: Deployed, host: str, *args: str) -> int:
    return node.main(["remove", host, "-i", str(deployed.inventory), *args])


def api_calls(deployed: Deployed) -> list[str]:
    return [line for line in deployed.lines(CONTROLLER) if line.startswith(KUBECTL)]


def test_cordon_then_drain_then_delete_then_the_host_is_reset(
    fleet: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    on_node_at_delete: list[int] = []
    fleet.fakes[CONTROLLER].on_delete = lambda: on_node_at_delete.append(
        len(fleet.fleet[NODE].commands)
    )
    assert remove(fleet, NODE, "--timeout", "60") == 0
    assert on_node_at_delete == [0], "the host is reset only once the API is done with it"
    assert api_calls(fleet) == [
        f"{KUBECTL} get node {NODE} -o name --ignore-not-found",
        f"{KUBECTL} get node {NODE} -o json",
        f"{KUBECTL} annotate --overwrite node {NODE} kubenorn.io/cordoned-for=removal",
        f"{KUBECTL} cordon {NODE}",
        f"{KUBECTL} drain {NODE} --ignore-daemonsets --delete-emptydir-data {SMOKE} --timeout=60s",
        f"{KUBECTL} delete node {NODE}",
    ]
    assert NODE not in fleet.fakes[CONTROLLER].api_nodes
    left = {p for p in fleet.fakes[NODE].host.files if p not in BEFORE_DEPLOY}
    assert left and all(p.startswith(("/var/lib/kubelet", "/var/lib/containerd")) for p in left)
    assert not mutating(fleet.lines(OTHER)), "no other node is touched"
    out = capsys.readouterr().out
    assert "no certificate was revoked" in out and "no CRL" in out
    assert f"now delete {NODE} from {fleet.inventory / 'hosts.yaml'}" in out


def test_purge_data_takes_the_node_s_data_too(fleet: Deployed) -> None:
    assert remove(fleet, NODE, "--purge-data") == 0
    assert set(fleet.fakes[NODE].host.files) == set(BEFORE_DEPLOY)


def test_a_dry_run_issues_no_mutating_command(
    fleet: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert remove(fleet, NODE, "--dry-run") == 0
    for name in fleet.fakes:
        assert mutating(fleet.lines(name)) == [], name
        assert fleet.fleet[name].writes() == [], name
    out = capsys.readouterr().out
    assert f"would cordon {NODE}" in out and f"would delete node {NODE}" in out
    assert "would stop kubelet.service" in out


def test_a_second_removal_changes_nothing(fleet: Deployed) -> None:
    assert remove(fleet, NODE) == 0
    for host in fleet.fleet.hosts.values():
        host.commands.clear()
    assert remove(fleet, NODE) == 0
    assert [r["task"] for r in records_of(runs(limit=1)[0]["run_id"]) if r["changed"]] == []
    assert api_calls(fleet) == [f"{KUBECTL} get node {NODE} -o name --ignore-not-found"]
    assert mutating(fleet.lines(NODE)) == []


def test_a_drain_that_fails_deletes_nothing_and_leaves_the_host_alone(
    fleet: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.fakes[CONTROLLER].drain_error = "error: Cannot evict pod: disruption budget\n"
    assert remove(fleet, NODE) == 1
    assert not [c for c in api_calls(fleet) if " delete " in c]
    assert NODE in fleet.fakes[CONTROLLER].api_nodes
    assert fleet.fleet[NODE].commands == []
    assert "stays cordoned" in capsys.readouterr().out


def test_a_node_someone_cordoned_keeps_their_cordon_when_its_drain_fails(
    fleet: Deployed,
) -> None:
    """Unmarked, a later `node add` or upgrade does not lift it: it was never kubenorn's."""
    controller = fleet.fakes[CONTROLLER]
    controller.cordoned.add(NODE)
    controller.drain_error = "error: Cannot evict pod: disruption budget\n"
    assert remove(fleet, NODE) == 1
    assert NODE in controller.cordoned and not controller.annotations.get(NODE)


def test_an_unreachable_host_leaves_the_api_and_is_named(
    fleet: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.fleet[NODE].connect_error = ConnectionRefusedError(111, "Connection refused")
    assert remove(fleet, NODE) == 1
    assert f"{KUBECTL} delete node {NODE}" in api_calls(fleet)
    out = capsys.readouterr().out
    assert f"{NODE}: NOT cleaned" in out and "Connection refused" in out
    assert "files removed: /etc/kubernetes/kubelet.env" in out
    assert f"now delete {NODE}" in out


def exit_code(argv: list[str]) -> int | str | None:
    """node.main's exit code, argparse's own exit (a missing argument) included."""
    try:
        return node.main(argv)
    except SystemExit as error:
        return error.code


class Refusal(TypedDict):
    host: str | None
    args: NotRequired[list[str]]
    says: str


REFUSALS: dict[str, Refusal] = {
    "a stranger": {"host": "kube.nobody", "says": "no such host"},
    "a limit": {"host": NODE, "args": ["--limit", OTHER], "says": "no --limit"},
    "no host": {"host": None, "says": "required: host"},
    "no timeout": {"host": NODE, "args": ["--timeout", "0"], "says": "at least 1"},
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_exit_3_and_touch_no_host(
    fleet: Deployed, case: Refusal, capsys: pytest.CaptureFixture[str]
) -> None:
    host = case["host"]
    argv = ["remove", *([str(host)] if host else []), "-i", str(fleet.inventory)]
    assert exit_code([*argv, *case.get("args", [])]) == 3
    assert case["says"] in capsys.readouterr().err
    assert all(h.commands == [] for h in fleet.fleet.hosts.values())


def test_node_add_refuses_a_node_that_is_also_a_controller_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write_inventory(tmp_path / "inventory", nodes=1)
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    hosts["kube.controller01"]["groups"].append("nodes")
    hosts["kube.controller01"]["data"]["pod_cidr"] = "10.200.9.0/24"
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    assert node.main(["add", "kube.controller01", "-i", str(inventory)]) == 3
    err = capsys.readouterr().err
    assert "also in etcd, controllers" in err and "joins with `deploy`" in err


@pytest.mark.parametrize("group", ["controllers", "etcd"])
def test_the_last_controller_or_etcd_member_is_refused(tmp_path: Path, group: str) -> None:
    inventory = write_inventory(tmp_path / "inventory", nodes=1)
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    for name in ("kube.controller02", "kube.controller03"):
        hosts[name]["groups"] = [g for g in hosts[name]["groups"] if g != group]
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    with pytest.raises(cli.UsageError, match=f"the last of group {group}"):
        node.check_removable(load_cluster(inventory), CONTROLLER)
