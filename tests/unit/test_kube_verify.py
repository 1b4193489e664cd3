"""The Kubernetes verdicts: leader records read from both lock kinds, leaders and nodes judged."""

from __future__ import annotations

import json

import pytest

from kubenorn.cluster import load_cluster
from kubenorn.findings import Finding
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.profiles import profile_for
from tasks.kube_verify import (
    LEADER_ANNOTATION,
    ControllerView,
    LeaderRecord,
    gated,
    judge_control_plane,
    judge_leader,
    judge_nodes,
    leader_record,
    node_pressures,
    ready_nodes,
)

CONTROLLERS = {"kube.controller01", "kube.controller02", "kube.controller03"}
NOW = 1_800_000_000.0
RENEW = "2027-01-15T08:00:00Z"  # == NOW
SPEC = {"holderIdentity": "kube.controller02_5b1f", "leaseDurationSeconds": 4, "renewTime": RENEW}


def test_a_lease_and_an_endpoints_annotation_give_the_same_record() -> None:
    lease = leader_record(profile_for("1.37.2"), {"spec": SPEC})
    annotations = {LEADER_ANNOTATION: json.dumps(SPEC)}
    endpoints = leader_record(profile_for("1.6.0"), {"metadata": {"annotations": annotations}})
    assert lease == endpoints == LeaderRecord("kube.controller02_5b1f", NOW, 4.0)
    assert lease is not None and lease.host == "kube.controller02"


def test_an_object_nobody_holds_has_no_record() -> None:
    assert leader_record(profile_for("1.37.2"), {"spec": {}}) is None
    assert leader_record(profile_for("1.6.0"), {"metadata": {}}) is None


def view(host: str, record: LeaderRecord | None, *, clock: float = NOW, active: bool = True):  # noqa: ANN201
    return ControllerView(
        host,
        active={"kube-scheduler": active},
        leaders={"kube-scheduler": record},
        nodes={},
        clock=clock,
    )


LEADER = LeaderRecord("kube.controller02_5b1f", NOW, 4.0)


@pytest.mark.parametrize(
    ("views", "status", "detail"),
    [
        ([view("kube.controller01", LEADER), view("kube.controller02", LEADER)], "OK", "led by"),
        # Renewed 3 s before the observer's clock read it: within the 4 s lease.
        ([view("kube.controller02", LEADER, clock=NOW + 3)], "OK", "kube.controller02"),
        ([view("kube.controller01", None)], "CRITICAL", "no leader record"),
        ([view("kube.controller02", LEADER, clock=NOW + 30)], "CRITICAL", "expired"),
        # The holder's own scheduler is not running: a stale lease nobody took over yet.
        ([view("kube.controller02", LEADER, active=False)], "CRITICAL", "not a live controller"),
        (
            [view("kube.controller02", LeaderRecord("kube.node01_aa", NOW, 4.0))],
            "CRITICAL",
            "not a live controller",
        ),
        (
            [
                view("kube.controller01", LEADER),
                view("kube.controller03", LeaderRecord("kube.controller03_9c", NOW, 4.0)),
            ],
            "CRITICAL",
            "two leaders",
        ),
    ],
)
def test_judge_leader(views: list[ControllerView], status: str, detail: str) -> None:
    finding = judge_leader("kube-scheduler", views, CONTROLLERS)
    assert (finding.status, finding.host) == (status, "leader")
    assert detail in finding.detail


def node(name: str, ready: str) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def test_nodes_registered_ready_notready_and_missing() -> None:
    listed = ready_nodes({"items": [node("kube.node01", "True"), node("kube.node02", "False")]})
    views = [ControllerView("kube.controller01", nodes=listed)]
    findings = judge_nodes(views, ["kube.node01", "kube.node02", "kube.node03"])
    assert [(f.host, f.status, f.detail) for f in findings] == [
        ("kube.node01", "OK", "Ready"),
        ("kube.node02", "WARNING", "NotReady"),
        ("kube.node03", "WARNING", "not registered"),
    ]


def test_a_ready_node_under_pressure_is_a_warning_naming_the_conditions() -> None:
    pressed = node("kube.node02", "True")
    pressed["status"]["conditions"] += [
        {"type": "DiskPressure", "status": "True"},
        {"type": "MemoryPressure", "status": "False"},
        {"type": "PIDPressure", "status": "True"},
    ]
    node_list = {"items": [node("kube.node01", "True"), pressed]}
    listed, pressures = ready_nodes(node_list), node_pressures(node_list)
    views = [ControllerView("kube.controller01", nodes=listed, pressures=pressures)]
    findings = judge_nodes(views, ["kube.node01", "kube.node02"])
    assert [(f.host, f.check, f.status, f.detail) for f in findings] == [
        ("kube.node01", "node-ready", "OK", "Ready"),
        ("kube.node02", "node-ready", "OK", "Ready"),
        (
            "kube.node02",
            "node-pressure",
            "WARNING",
            "under DiskPressure, PIDPressure: its kubelet evicts pods and none schedule there",
        ),
    ]
    assert gated(findings) == []  # a restore or drill does not wait for the disk to be freed


def test_every_node_notready_or_missing_is_critical() -> None:
    listed = ready_nodes({"items": [node("kube.node01", "False"), node("kube.node02", "False")]})
    views = [ControllerView("kube.controller01", nodes=listed)]
    findings = judge_nodes(views, ["kube.node01", "kube.node02", "kube.node03"])
    assert [(f.host, f.status, f.detail) for f in findings] == [
        ("kube.node01", "CRITICAL", "NotReady (no node is Ready)"),
        ("kube.node02", "CRITICAL", "NotReady (no node is Ready)"),
        ("kube.node03", "CRITICAL", "not registered (no node is Ready)"),
    ]
    [alone] = judge_nodes(views, ["kube.node01"])  # a one-node cluster with its node down
    assert alone.status == "CRITICAL"


def test_nodes_are_unknown_when_no_apiserver_could_list_them() -> None:
    views = [ControllerView("kube.controller01", api_error="connection refused")]
    [finding] = judge_nodes(views, ["kube.node01"])
    assert finding.status == "UNKNOWN" and "kube.controller01: connection refused" in finding.detail


def test_no_apiserver_healthy_anywhere_is_critical() -> None:
    cluster = load_cluster(REPO_ROOT / "lab/inventory")
    views = [
        ControllerView(h, findings=[Finding("kube-apiserver", h, "WARNING", "not active")])
        for h in sorted(CONTROLLERS)
    ]
    findings = judge_control_plane(cluster, views)
    critical = {(f.check, f.host) for f in findings if f.status == "CRITICAL"}
    assert ("kube-apiserver", "cluster") in critical
    # Without an apiserver no lease could be read: the leaders are unknown, not missing.
    leaders = [f for f in findings if f.host == "leader"]
    assert leaders and {f.status for f in leaders} == {"UNKNOWN"}
