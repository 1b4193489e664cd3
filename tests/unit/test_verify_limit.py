"""verify --limit judges only what it observed: members and controllers left out are not down."""

from __future__ import annotations

import pytest
from test_etcd_verify import healthy_views
from test_kube_verify import NOW

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import exit_code
from kubenorn.nornir_setup import REPO_ROOT
from tasks.etcd_verify import MemberView, judge_etcd
from tasks.kube_verify import ELECTED, ControllerView, LeaderRecord, judge_control_plane

NODE = "kube.node01"


@pytest.fixture
def cluster() -> Cluster:
    return load_cluster(REPO_ROOT / "lab" / "inventory")


def test_limit_to_a_node_judges_no_etcd_member_and_notes_the_skipped_cluster_checks(
    cluster: Cluster,
) -> None:
    findings = judge_etcd(cluster, {}, {NODE})
    assert exit_code(findings) == 0
    assert not [f for f in findings if f.host != "cluster"], "no member judged"
    assert {f.check for f in findings} == {"etcd.quorum", "etcd.leader", "etcd.members"}
    assert all("skipped: --limit leaves out" in f.detail for f in findings)


def test_limit_to_one_member_judges_it_alone(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    one = "kube.controller01"
    findings = judge_etcd(cluster, {one: views[one]}, {one})
    assert exit_code(findings) == 0
    assert {f.host for f in findings} == {one, "cluster"}
    down = MemberView(one, True, False, False, "connection refused")
    findings = judge_etcd(cluster, {one: down}, {one})
    assert exit_code(findings) == 1  # one of three down: WARNING, whatever the others are
    assert [f.host for f in findings if f.status != "OK"] == [one, one]


def test_without_a_limit_a_missing_member_is_still_judged(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    del views["kube.controller03"]
    assert exit_code(judge_etcd(cluster, views)) == 1


def test_limit_to_a_node_skips_leaders_and_nodes_with_a_note(cluster: Cluster) -> None:
    findings = judge_control_plane(cluster, [], {NODE})
    assert exit_code(findings) == 0
    assert len(findings) == len(ELECTED) + 1
    assert all(f.detail.startswith("skipped: --limit keeps no controller") for f in findings)


def test_a_leader_outside_the_limit_is_not_called_dead(cluster: Cluster) -> None:
    record = LeaderRecord("kube.controller02_5b1f", NOW, 4.0)
    seen_from_01 = ControllerView(
        "kube.controller01",
        active=dict.fromkeys(ELECTED, True),
        leaders=dict.fromkeys(ELECTED, record),
        nodes={node.name: True for node in cluster.nodes},
        clock=NOW,
    )
    findings = judge_control_plane(cluster, [seen_from_01], {"kube.controller01"})
    assert exit_code(findings) == 0, findings
    assert {f.host for f in findings if f.check == "node-ready"} == set(), "nodes not in --limit"
    leaders = [f for f in findings if f.host == "leader"]
    assert all("led by kube.controller02" in f.detail for f in leaders)
