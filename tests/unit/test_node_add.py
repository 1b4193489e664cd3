"""runbooks.node add on fake hosts a real deploy set up (tests/unit/fake_reset.py).

The new worker goes through deploy alone (`deploy --limit HOST`, the real deploy); the others
only learn of it (their /etc/hosts and pod routes, changed here only if they lack it) and no
component restarts anywhere; the run ends once the apiserver lists the node Ready. A node the
apiserver never counts Ready fails the run, naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_reset import Deployed, deployed_fleet, mutating, served

from kubenorn import cli
from kubenorn.cluster import Cluster
from kubenorn.history import records_of, runs
from kubenorn.run import Run
from runbooks import deploy, node
from tasks import kube_verify

CONTROLLER, NODE, OTHER = "kube.controller01", "kube.node02", "kube.node01"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deployed_fleet(tmp_path_factory.mktemp("node-add"))


@pytest.fixture
def fleet(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    calls: list[tuple[tuple[str, ...], bool, list[str]]] = []  # limit, dry run, history's argv
    real = deploy.deploy_cluster

    def recorded(cluster: Cluster, options: cli.Options, *args: Any, **kwargs: Any) -> Run:
        calls.append((tuple(options.limit), options.dry_run, list(options.argv)))
        return real(cluster, options, *args, **kwargs)

    monkeypatch.setattr(node.deploy, "deploy_cluster", recorded)
    deployed.deploys = calls  # type: ignore[attr-defined]
    with served(deployed):
        yield deployed


def add(deployed: Deployed, host: str, *args: str) -> int:
    return node.main(["add", host, "-i", str(deployed.inventory), *args])


def test_the_new_worker_is_deployed_alone_and_the_others_restart_nothing(
    fleet: Deployed,
) -> None:
    assert add(fleet, NODE) == 0
    argv = ["-i", str(fleet.inventory), "--limit", NODE]  # what --retry-failed reruns
    assert fleet.deploys == [((NODE,), False, argv)]  # type: ignore[attr-defined]
    others = fleet.lines(OTHER) + fleet.lines(CONTROLLER)
    assert [
        line for line in others if line.startswith(("systemctl restart", "systemctl start"))
    ] == []
    assert mutating(fleet.lines(OTHER)) == []  # it already routed and named NODE
    steps = [r["task"] for r in records_of(runs(limit=1)[0]["run_id"]) if "/" not in r["task"]]
    assert set(steps) == {"facts", "hosts", "pod-network", "node-ready", "uncordon"}


MARK = "kubenorn.io/cordoned-for"
# the node's cordon and annotations before `node add` -> whether it ends schedulable
CORDONS = {
    "left cordoned by a removal that stopped": ({MARK: "removal"}, True),
    "cordoned by someone else": ({}, False),
}


@pytest.mark.parametrize("case", CORDONS.values(), ids=CORDONS.keys())
def test_only_kubenorns_own_cordon_is_lifted(
    fleet: Deployed, case: tuple[dict[str, str], bool]
) -> None:
    annotations, schedulable = case
    api = fleet.fakes[CONTROLLER]
    api.cordoned, api.annotations = {NODE}, {NODE: dict(annotations)}
    assert add(fleet, NODE) == 0
    assert (NODE not in api.cordoned) is schedulable
    assert MARK not in api.annotations[NODE]


def test_a_dry_run_passes_it_on_to_deploy_and_changes_nothing(fleet: Deployed) -> None:
    assert add(fleet, NODE, "--dry-run") == 0
    argv = ["-i", str(fleet.inventory), "--limit", NODE, "--dry-run"]
    assert fleet.deploys == [((NODE,), True, argv)]  # type: ignore[attr-defined]
    for name in fleet.fakes:
        assert fleet.fleet[name].writes() == [], name


def test_a_node_never_ready_fails_the_run_naming_it(
    fleet: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kube_verify, "NODES_READY_TIMEOUT", 0.0)
    monkeypatch.setattr(kube_verify, "ready_nodes", lambda listed: {NODE: False})
    assert add(fleet, NODE) == 1
    assert f"{NODE} NotReady" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("host", "says"),
    [(CONTROLLER, "not in group nodes"), ("kube.nobody", "no such host")],
)
def test_anything_but_a_worker_is_refused_before_any_host_is_touched(
    fleet: Deployed, host: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(fleet, host) == 3
    assert says in capsys.readouterr().err
    assert fleet.deploys == []  # type: ignore[attr-defined]
    assert all(fleet.fleet[name].commands == [] for name in fleet.fakes)
