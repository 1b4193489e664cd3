"""Cordon, drain and uncordon: given the node as the API has it, the kubectl commands run.

And the running-versions survey's parser, and which packages go with which components.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import Fleet, run_on
from nornir.core import Nornir
from test_non_root import deploy_inventory

from kubenorn.cluster import load_cluster
from tasks.drain import MARK, cordon_node, drain_node, uncordon_node
from tasks.upgrade import component_packages, outdated
from tasks.versions import parse_versions

HOST = "h1"
SMOKE = shlex.quote("--pod-selector=app.kubernetes.io/managed-by!=kubenorn-smoke-test")
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig "
GET = KUBECTL + "get node n1 -o json"


def node(cordoned: bool, marked: bool) -> str:
    annotations = {MARK: "upgrade"} if marked else {}
    spec = {"unschedulable": True} if cordoned else {}
    return json.dumps({"metadata": {"name": "n1", "annotations": annotations}, "spec": spec})


CASES = [
    # (task, cordoned, marked, dry run, the commands after the read, changed)
    (
        cordon_node,
        False,
        False,
        False,
        [f"annotate --overwrite node n1 {MARK}=upgrade", "cordon n1"],
        True,
    ),
    (cordon_node, False, False, True, [], True),
    (cordon_node, True, True, False, [], False),  # an interrupted upgrade's cordon
    (cordon_node, True, False, False, [], False),  # someone's cordon: not marked as ours
    (uncordon_node, True, True, False, ["uncordon n1", f"annotate node n1 {MARK}-"], True),
    (uncordon_node, False, True, False, ["uncordon n1", f"annotate node n1 {MARK}-"], True),
    (uncordon_node, True, True, True, [], True),
    (uncordon_node, True, False, False, [], False),  # someone's cordon stays
    (uncordon_node, False, False, False, [], False),
]


@pytest.fixture
def cluster_nr(fleet: Fleet, tmp_path: Path, make_nr: Callable[..., Nornir]) -> tuple[Any, Nornir]:
    inventory = deploy_inventory(tmp_path / "cluster")  # h1 a controller, h2 a node
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    defaults["username"] = "root"
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return load_cluster(inventory), make_nr(inventory)


@pytest.mark.parametrize(("task", "cordoned", "marked", "dry_run", "commands", "changed"), CASES)
def test_cordons_given_the_node(
    fleet: Fleet,
    cluster_nr: tuple[Any, Nornir],
    task: Callable[..., Any],
    cordoned: bool,
    marked: bool,
    dry_run: bool,
    commands: list[str],
    changed: bool,
) -> None:
    cluster, nr = cluster_nr
    fleet[HOST].script[GET] = (0, node(cordoned, marked), "")
    for command in commands:
        fleet[HOST].script[KUBECTL + command] = (0, "", "")
    result = run_on(nr, HOST, task, cluster=cluster, node="n1", dry_run=dry_run)
    assert not result.failed, result[0].exception
    assert fleet[HOST].lines() == [GET, *(KUBECTL + c for c in commands)]
    assert result[0].changed is changed


DRAIN = KUBECTL + "drain n1 --ignore-daemonsets --delete-emptydir-data " + SMOKE + " --timeout=60s"


@pytest.mark.parametrize(
    ("reply", "changed", "error"),
    [
        ((0, "node/n1 drained\n", "evicting pod default/web-1\n"), True, ""),
        ((0, "node/n1 already cordoned\nnode/n1 drained\n", ""), False, ""),
        ((1, "", "error: cannot evict pod: disruption budget\n"), False, "drain n1 failed: error"),
    ],
)
def test_drain(
    fleet: Fleet,
    cluster_nr: tuple[Any, Nornir],
    reply: tuple[int, str, str],
    changed: bool,
    error: str,
) -> None:
    cluster, nr = cluster_nr
    fleet[HOST].script[DRAIN] = reply
    result = run_on(nr, HOST, drain_node, cluster=cluster, node="n1", timeout=60)
    assert fleet[HOST].lines() == [DRAIN]
    if error:
        assert result.failed and error in str(result[0].exception)
    else:
        assert result[0].changed is changed


def test_a_dry_run_drain_runs_nothing(fleet: Fleet, cluster_nr: tuple[Any, Nornir]) -> None:
    cluster, nr = cluster_nr
    result = run_on(nr, HOST, drain_node, cluster=cluster, node="n1", dry_run=True)
    assert fleet[HOST].lines() == [] and result[0].diff == "would drain n1\n"


def test_parse_versions() -> None:
    output = (
        "== kubenorn-version kube-apiserver.service 4242\nKubernetes v1.36.3\n"
        "== kubenorn-version kube-scheduler.service 0\n"
        "== kubenorn-version kubelet.service 77\n/proc/77/exe: Permission denied\n"
    )
    assert parse_versions(output) == {
        "kube-apiserver": "Kubernetes v1.36.3",
        "kube-scheduler": None,
        "kubelet": "/proc/77/exe: Permission denied",
    }


def test_outdated_leaves_out_what_does_not_run() -> None:
    running = {"kubelet": "Kubernetes v1.36.3", "kube-proxy": None, "x": "Kubernetes v1.37.2"}
    assert outdated(running, "1.37.2") == ["kubelet"]


def test_component_packages_with_their_companions() -> None:
    packages = ["kube-apiserver=1.37.2-*", "kube-scheduler=1.37.2-*", "kubectl=1.37.2-*", "curl"]
    assert component_packages(packages, ["kube-apiserver"]) == [
        "kube-apiserver=1.37.2-*",
        "kubectl=1.37.2-*",
    ]
    assert component_packages(packages, ["kube-scheduler"]) == ["kube-scheduler=1.37.2-*"]
