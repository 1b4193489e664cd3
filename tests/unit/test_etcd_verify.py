"""etcd verification: etcdctl's JSON parsed, and the cluster judged with quorum severities."""

from __future__ import annotations

import json

import pytest

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import exit_code
from kubenorn.nornir_setup import REPO_ROOT
from tasks.etcd_verify import MemberView, judge_etcd, member_severity
from tasks.etcdctl import (
    ClientTls,
    EndpointStatus,
    Member,
    add_member,
    parse_df,
    parse_health,
    parse_members,
    parse_status,
)
from tasks.ssh import CommandResult

IDS = {"kube.controller01": 0x11, "kube.controller02": 0x12, "kube.controller03": 0x13}

HEALTH = (
    '[{"endpoint":"https://10.240.0.11:2379","health":true,"took":"5.1ms"},'
    '{"endpoint":"https://10.240.0.12:2379","health":false,"took":"5s",'
    '"error":"context deadline exceeded"}]'
)
STATUS = json.dumps(
    [
        {
            "Endpoint": "https://10.240.0.11:2379",
            "Status": {
                "header": {"cluster_id": 1, "member_id": 17, "revision": 9, "raft_term": 4},
                "version": "3.4.23",
                "dbSize": 20480,
                "leader": 18,
                "raftIndex": 42,
                "raftTerm": 4,
            },
        }
    ]
)
MEMBERS = json.dumps(
    {
        "header": {},
        "members": [
            {
                "ID": 17,
                "name": "kube.controller01",
                "peerURLs": ["https://10.240.0.11:2380"],
                "clientURLs": ["https://10.240.0.11:2379"],
            },
        ],
    }
)


# etcdctl 3.1 to 3.3.13 (etcdctl/ctlv3/command/ep_command.go): text whatever -w says.
HEALTH_TEXT = (
    "https://10.240.0.11:2379 is healthy: successfully committed proposal: took = 2.1ms\n"
    "https://10.240.0.12:2379 is unhealthy: failed to connect: grpc: timed out when dialing\n"
    "https://10.240.0.13:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n"
)


def test_an_older_etcdctls_health_text_reads_as_its_json_would() -> None:
    assert [(h.endpoint, h.healthy, h.error) for h in parse_health(HEALTH_TEXT)] == [
        ("https://10.240.0.11:2379", True, ""),
        ("https://10.240.0.12:2379", False, "failed to connect: grpc: timed out when dialing"),
        ("https://10.240.0.13:2379", False, "failed to commit proposal: context deadline exceeded"),
    ]


@pytest.mark.parametrize("answer", ["members", "the new member alone"])
def test_member_add_gives_the_membership_whatever_etcd_answers(
    monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """etcd 3.2+ answers `member add` with the membership; 3.1 with the new member alone."""
    alone = json.dumps({"header": {}, "member": {"ID": 18, "name": "", "peerURLs": ["https://x"]}})
    asked: list[list[str]] = []

    def run(task: object, argv: list[str], **_: object) -> CommandResult:
        asked.append(argv)
        first = len(asked) == 1 and answer != "members"
        return CommandResult(" ".join(argv), 0, alone if first else MEMBERS, "", 0.1)

    monkeypatch.setattr("tasks.etcdctl.run", run)
    tls = ClientTls("ca.crt", "client.crt", "client.key")
    added = add_member(None, tls, ["https://10.240.0.11:2379"], "c4", "https://x", learner=False)  # type: ignore[arg-type]
    assert [m.name for m in added] == ["kube.controller01"]
    assert [argv[-1] for argv in asked] == (
        ["--peer-urls=https://x"] if answer == "members" else ["--peer-urls=https://x", "list"]
    )


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return load_cluster(REPO_ROOT / "lab" / "inventory")


def test_etcdctl_json_is_parsed() -> None:
    health = parse_health(HEALTH)
    assert [(h.healthy, h.error) for h in health] == [
        (True, ""),
        (False, "context deadline exceeded"),
    ]
    status = parse_status(STATUS)[0]
    assert (status.member_id, status.leader_id, status.raft_index, status.db_size) == (
        17,
        18,
        42,
        20480,
    )
    assert parse_members(MEMBERS)[0].name == "kube.controller01"


def healthy_views(cluster: Cluster, leader: int = 0x11) -> dict[str, MemberView]:
    members = [
        Member(IDS[m.host.name], m.name, (m.peer_url,), (m.client_url,))
        for m in cluster.etcd.members
    ]
    return {
        name: MemberView(
            name,
            True,
            True,
            True,
            "",
            EndpointStatus("", member_id, leader, 4, 42, 20480, "3.4.23"),
            members,
        )
        for name, member_id in IDS.items()
    }


def down(view: MemberView) -> MemberView:
    return MemberView(view.host, True, False, False, "connection refused")


def test_a_healthy_cluster_is_all_ok(cluster: Cluster) -> None:
    findings = judge_etcd(cluster, healthy_views(cluster))
    assert {f.status for f in findings} == {"OK"}
    assert exit_code(findings) == 0
    leader = next(f for f in findings if f.check == "etcd.leader")
    assert "kube.controller01" in leader.detail


def test_one_member_down_keeps_quorum_and_warns(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    views["kube.controller03"] = down(views["kube.controller03"])
    findings = judge_etcd(cluster, views)
    assert exit_code(findings) == 1
    bad = {(f.check, f.host) for f in findings if f.status != "OK"}
    assert ("etcd.health", "kube.controller03") in bad
    assert ("etcd.quorum", "cluster") in bad


def test_two_members_down_lose_quorum(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    for name in ("kube.controller02", "kube.controller03"):
        views[name] = down(views[name])
    findings = judge_etcd(cluster, views)
    assert exit_code(findings) == 2
    assert next(f for f in findings if f.check == "etcd.quorum").status == "CRITICAL"


def test_an_unreachable_host_counts_as_a_member_down(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    views["kube.controller02"] = MemberView("kube.controller02", reachable=False, error="timeout")
    findings = judge_etcd(cluster, views)
    assert exit_code(findings) == 1
    assert any("unreachable" in f.detail for f in findings if f.host == "kube.controller02")


def test_members_that_disagree_on_the_leader_are_critical(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    views["kube.controller02"].status = EndpointStatus("", 0x12, 0x12, 5, 43, 1, "3.4.23")
    findings = judge_etcd(cluster, views)
    assert next(f for f in findings if f.check == "etcd.leader").status == "CRITICAL"


def test_a_member_list_unlike_the_inventory_is_critical(cluster: Cluster) -> None:
    views = healthy_views(cluster)
    for view in views.values():
        view.members = [Member(0x99, "app02", ("https://10.240.0.11:2380",), ())]
    finding = next(f for f in judge_etcd(cluster, views) if f.check == "etcd.members")
    assert finding.status == "CRITICAL"
    assert "app02" in finding.detail


@pytest.mark.parametrize(
    ("healthy", "total", "status"),
    [
        (3, 3, "WARNING"),
        (2, 3, "WARNING"),
        (1, 3, "CRITICAL"),
        (3, 5, "WARNING"),
        (2, 5, "CRITICAL"),
    ],
)
def test_member_severity_follows_quorum(healthy: int, total: int, status: str) -> None:
    assert member_severity(healthy, total) == status


MIB = 2**20
DF = (
    "Filesystem     1B-blocks      Used Available Capacity Mounted on\n"
    "tmpfs          {size} {used} {available}      99% /var/lib/etcd/kubenorn\n"
)
# available MiB of a 10000 MiB filesystem -> the etcd.disk status (lab: warn under 5% free)
DISK_CASES = {
    "plenty free": (5000, "OK"),
    "just above the warning": (510, "OK"),
    "nearly full": (490, "WARNING"),
    "less than a WAL segment (64 MB)": (60, "CRITICAL"),
    "full": (0, "CRITICAL"),
}


@pytest.mark.parametrize("case", DISK_CASES.values(), ids=DISK_CASES.keys())
def test_a_members_data_disk_is_judged_on_its_free_space(
    cluster: Cluster, case: tuple[int, str]
) -> None:
    available, status = case
    size = 10000 * MIB
    output = DF.format(size=size, used=size - available * MIB, available=available * MIB)
    disk = parse_df(output, "/var/lib/etcd/kubenorn")
    assert disk is not None and disk.available == available * MIB
    views = healthy_views(cluster)
    views["kube.controller02"].disk = disk
    [finding] = [f for f in judge_etcd(cluster, views) if f.check == "etcd.disk"]
    assert (finding.host, finding.status) == ("kube.controller02", status)
    assert finding.detail.startswith(f"/var/lib/etcd/kubenorn: {available} MiB free of 10000 MiB")


def test_a_df_that_said_nothing_usable_gives_no_disk_finding(cluster: Cluster) -> None:
    assert parse_df("df: /var/lib/etcd/kubenorn: No such file or directory\n", "/x") is None
    assert parse_df("", "/x") is None
    assert not [f for f in judge_etcd(cluster, healthy_views(cluster)) if f.check == "etcd.disk"]
