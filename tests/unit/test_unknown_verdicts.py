"""A check that could not run is UNKNOWN with its cause: never CRITICAL, never an empty detail.

Every judge is fed what verify hands it when nothing could be observed (every host unreachable,
no apiserver answering, no view at all); each finding must say something.
"""

from __future__ import annotations

import pytest
from nornir.core.task import MultiResult, Result

from kubenorn.cluster import load_cluster
from kubenorn.findings import Finding
from kubenorn.nornir_setup import REPO_ROOT
from runbooks.verify import failure_cause
from tasks.etcd_verify import MemberView, judge_etcd
from tasks.kube_verify import ControllerView, judge_control_plane, judge_leader, judge_nodes

CLUSTER = load_cluster(REPO_ROOT / "lab" / "inventory")
CONTROLLERS = [h.name for h in CLUSTER.controllers]
MEMBERS = [m.host.name for m in CLUSTER.etcd.members]
NODES = [h.name for h in CLUSTER.nodes]


def unreachable(error: str) -> dict[str, MemberView]:
    return {name: MemberView(name, reachable=False, error=error) for name in MEMBERS}


def says_something(finding: Finding) -> bool:
    detail = finding.detail.strip()
    return bool(detail) and not detail.endswith(":") and "::" not in detail


NOTHING_OBSERVED = {
    "etcd, no views": judge_etcd(CLUSTER, {}),
    "etcd, every host unreachable without a cause": judge_etcd(CLUSTER, unreachable("")),
    "etcd, every host unreachable": judge_etcd(CLUSTER, unreachable("timed out")),
    "control plane, no views": judge_control_plane(CLUSTER, []),
    "control plane, no apiserver answered": judge_control_plane(
        CLUSTER, [ControllerView(h, api_error="connection refused") for h in CONTROLLERS]
    ),
    "control plane, views without an error": judge_control_plane(
        CLUSTER, [ControllerView(h) for h in CONTROLLERS]
    ),
    "nodes, no views": judge_nodes([], NODES),
    "leader, no views": [judge_leader("kube-scheduler", [], set(CONTROLLERS))],
}


@pytest.mark.parametrize("findings", NOTHING_OBSERVED.values(), ids=NOTHING_OBSERVED.keys())
def test_nothing_observed_is_unknown_and_says_why(findings: list[Finding]) -> None:
    assert findings
    assert [f for f in findings if not says_something(f)] == []
    assert [f for f in findings if f.status == "CRITICAL"] == []
    cluster_wide = [f for f in findings if f.host in ("cluster", "leader")]
    assert cluster_wide and {f.status for f in cluster_wide} == {"UNKNOWN"}


def test_the_cause_is_named() -> None:
    etcd = judge_etcd(CLUSTER, unreachable("timed out after 10s"))
    quorum = next(f for f in etcd if f.check == "etcd.quorum")
    assert "kube.controller01: timed out after 10s" in quorum.detail
    kube = judge_control_plane(
        CLUSTER, [ControllerView(h, api_error="connection refused") for h in CONTROLLERS]
    )
    leader = next(f for f in kube if f.check == "kube-scheduler")
    assert "kube.controller02: connection refused" in leader.detail
    [nodes] = judge_nodes([], NODES)
    assert nodes.detail == "no apiserver listed nodes: no controller could be checked"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RuntimeError("no route to host\ntraceback..."), "no route to host"),
        (RuntimeError(""), "RuntimeError"),
        (None, "failed without a cause"),
    ],
)
def test_a_failed_hosts_cause_is_never_empty(error: Exception | None, said: str) -> None:
    result = MultiResult("observe")
    result.append(Result(host=None, exception=error, failed=True))
    assert failure_cause(result) == said
