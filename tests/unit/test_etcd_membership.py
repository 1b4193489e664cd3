"""etcd membership on day two, on fake hosts a real deploy set up (tests/unit/fake_cluster.py):
a member whose data is gone is removed and added back (as a learner, then promoted) by the
next deploy, quorum-gated; a member leaves through `node remove`.

The members share one `Membership`: the member list etcdctl sees, which members answer, and
the member commands issued, in order.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_cluster import ANYTHING
from fake_reset import Deployed, ResettableHost, deployed_fleet, served
from fakes import FakeHost, Reply

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import init_nornir
from runbooks import deploy, node
from tasks.etcd import etcd_config
from tasks.templates import ENVIRONMENT

FIRST, SECOND, THIRD = "kube.controller01", "kube.controller02", "kube.controller03"
INITIAL = "/etc/etcd/etcd-initial.conf"


class Membership:
    """etcd's member list as every fake member sees it."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.listed: dict[int, dict[str, Any]] = {
            i + 1: {
                "ID": i + 1,
                "name": m.name,
                "peerURLs": [m.peer_url],
                "clientURLs": [m.client_url],
            }
            for i, m in enumerate(cluster.etcd.members)
        }
        self.down: set[str] = set()  # inventory names whose etcd does not answer
        self.without_data: set[str] = set()
        self.changes: list[str] = []
        self.refuse_promotions = 1  # the learner is not in sync at the first attempt

    def answering(self) -> set[str]:
        return {m.client_url for m in self.cluster.etcd.members if m.name not in self.down}

    def member_command(self, args: list[str]) -> Reply:
        action = args[1]
        if action == "list":
            return 0, json.dumps({"members": list(self.listed.values())}), ""
        self.changes.append(shlex.join(args))
        if action == "remove":
            del self.listed[int(args[2], 16)]
            return 0, "", ""
        if action == "promote":
            if self.refuse_promotions:
                self.refuse_promotions -= 1
                return (
                    1,
                    "",
                    "Error: etcdserver: can only promote a learner member which is in sync",
                )
            self.listed[int(args[2], 16)]["isLearner"] = False
            return 0, "", ""
        new_id = max(self.listed) + 100
        peer = args[3].split("=", 1)[1]
        self.listed[new_id] = {"ID": new_id, "peerURLs": [peer], "isLearner": "--learner" in args}
        return 0, json.dumps({"members": list(self.listed.values())}), ""

    def started(self, name: str) -> None:
        """The member on `name` started: it answers, and etcd lists it by its name."""
        self.down.discard(name)
        member = next(m for m in self.cluster.etcd.members if m.name == name)
        for entry in self.listed.values():
            if member.peer_url in entry["peerURLs"]:
                entry["name"] = name
                entry["clientURLs"] = [member.client_url]


class MemberHost(ResettableHost):
    """A deployed host whose etcdctl answers from the shared Membership."""

    def __init__(self, host: FakeHost, cluster: Any, membership: Membership) -> None:
        super().__init__(host, cluster)
        self.membership = membership

    def do_env(self, argv: list[str], stdin: bytes) -> Reply:
        if "member" in argv:
            return self.membership.member_command(argv[argv.index("member") :])
        if argv[-2:] == ["endpoint", "health"]:
            urls = next(a for a in argv if a.startswith("--endpoints=")).split("=", 1)[1]
            health = [
                {"endpoint": u, "health": u in self.membership.answering()} for u in urls.split(",")
            ]
            return (0 if all(h["health"] for h in health) else 1), json.dumps(health), ""
        return super().do_env(argv, stdin)

    def do_test(self, argv: list[str], stdin: bytes) -> Reply:
        if argv[-1].endswith("/member"):
            return (1 if self.host.name in self.membership.without_data else 0), "", ""
        return super().do_test(argv, stdin)

    def do_sh(self, argv: list[str], stdin: bytes) -> Reply:
        if ".before-join-" in argv[-2]:  # the old data directory set aside
            return 0, "", ""
        return super().do_sh(argv, stdin)

    def do_systemctl(self, argv: list[str], stdin: bytes) -> Reply:
        if argv[1:3] == ["restart", "--no-block"] and argv[-1] == "etcd.service":
            self.membership.started(self.host.name)
        return super().do_systemctl(argv, stdin)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """A deploy on fake hosts, its etcd members then answering from a Membership."""
    done = deployed_fleet(tmp_path_factory.mktemp("membership"))
    cluster = load_cluster(done.inventory)
    for member in cluster.etcd.members:
        fake = done.fleet[member.name]
        done.fakes[member.name] = MemberHost(fake, cluster, Membership(cluster))
        fake.script[ANYTHING] = done.fakes[member.name]
    done.save()
    return done


@pytest.fixture
def fleet(deployed: Deployed) -> Iterator[tuple[Path, Deployed, Membership]]:
    """The deployed fleet, its members sharing a Membership of three healthy members."""
    membership = Membership(load_cluster(deployed.inventory))
    for fake in deployed.fakes.values():
        if isinstance(fake, MemberHost):
            fake.membership = membership
    with served(deployed):
        yield deployed.inventory, deployed, membership


def disk_lost(membership: Membership, *names: str) -> None:
    membership.down.update(names)
    membership.without_data.update(names)


def restarts_of_etcd(deployed: Deployed, name: str) -> list[str]:
    return [line for line in deployed.lines(name) if line.startswith("systemctl restart etcd")]


def test_a_member_whose_data_is_gone_is_removed_added_as_a_learner_and_promoted(
    fleet: tuple[Path, Deployed, Membership],
) -> None:
    inventory, hosts, membership = fleet
    disk_lost(membership, FIRST)
    cluster = load_cluster(inventory)
    first = next(m for m in cluster.etcd.members if m.name == FIRST)
    assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    added = next(i for i, e in membership.listed.items() if e["name"] == FIRST)
    assert added != 1
    assert membership.changes == [
        "member remove 1",
        f"member add {FIRST} --peer-urls={first.peer_url} --learner",
        f"member promote {added:x}",
        f"member promote {added:x}",  # refused once: not yet in sync with the leader
    ]
    assert sorted(e["name"] for e in membership.listed.values()) == [FIRST, SECOND, THIRD]
    # etcd lists the new member last; the file reads as deploy renders it (verify: no drift)
    config = etcd_config(cluster, first, load_cluster_host_data(hosts, FIRST), formed=True)
    wanted = ENVIRONMENT.get_template("etcd/etcd-initial.conf.j2").render(etcd=config)
    assert hosts.fleet[FIRST].files[INITIAL].data.decode() == wanted
    assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in wanted
    for other in (SECOND, THIRD):
        assert restarts_of_etcd(hosts, other) == [], f"{other}'s etcd restarted"


def load_cluster_host_data(deployed: Deployed, name: str) -> dict[str, Any]:
    """The etcd settings Nornir resolves for host `name`."""
    nornir = init_nornir(deployed.inventory)
    try:
        return dict(nornir.inventory.hosts[name]["etcd"])
    finally:
        nornir.close_connections()


def test_a_dry_run_says_the_plan_and_changes_no_membership(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _, membership = fleet
    disk_lost(membership, THIRD)
    assert deploy.main(["-i", str(inventory), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove stale member" in out and f"would add {THIRD}" in out
    assert "would promote" in out
    assert membership.changes == []


def test_a_join_that_would_lose_quorum_is_refused_before_any_change(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _, membership = fleet
    disk_lost(membership, THIRD)
    membership.down.add(SECOND)  # a second member down: one of three answers
    assert deploy.main(["-i", str(inventory), "--quiet", "--limit", THIRD]) == 1
    assert membership.changes == []
    assert "refusing to add kube.controller03: 1 of the 2 voting members" in capsys.readouterr().out


def test_a_member_leaves_through_node_remove_and_a_rerun_changes_nothing(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _, membership = fleet
    assert node.main(["remove", THIRD, "-i", str(inventory), "--quiet"]) == 0
    assert membership.changes == ["member remove 3"]
    assert sorted(e["name"] for e in membership.listed.values()) == [FIRST, SECOND]
    assert node.main(["remove", THIRD, "-i", str(inventory), "--quiet"]) == 0  # a re-run
    assert membership.changes == ["member remove 3"]


def test_a_stacked_host_is_not_drained_when_etcd_would_refuse_its_leaving(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    """A controller that is a worker too: the quorum check comes before the cordon and drain."""
    inventory, deployed, membership = fleet
    hosts_file = inventory / "hosts.yaml"
    original = hosts_file.read_text()
    hosts = yaml.safe_load(original)
    hosts[THIRD]["groups"].append("nodes")
    hosts[THIRD].setdefault("data", {})["pod_cidr"] = "10.200.9.0/24"
    hosts_file.write_text(yaml.safe_dump(hosts))
    membership.down.add(SECOND)  # left: FIRST and SECOND, one of them answering
    api = deployed.fakes[FIRST]
    api.api_nodes.add(THIRD)  # registered as a Node, as its kubelet would
    try:
        assert node.main(["remove", THIRD, "-i", str(inventory), "--quiet"]) == 1
    finally:
        hosts_file.write_text(original)
        api.api_nodes.discard(THIRD)
    assert membership.changes == [] and THIRD not in api.cordoned
    assert "refusing to remove kube.controller03" in capsys.readouterr().out
    kubectl = [line for line in deployed.lines(FIRST) if "kubectl" in line]
    assert not [line for line in kubectl if " cordon " in line or " drain " in line]


def test_a_rebuilt_member_that_reaches_no_other_does_not_found_a_cluster_alone(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, deployed, membership = fleet
    disk_lost(membership, THIRD)
    membership.down.update({FIRST, SECOND})  # as THIRD sees them: its network to them is down
    assert deploy.main(["-i", str(inventory), "--quiet", "--limit", THIRD]) == 1
    out = capsys.readouterr().out
    assert "refusing to found a new etcd cluster with part of its members" in out
    assert "kube.controller01, kube.controller02 are not in this run" in out
    assert membership.changes == [] and restarts_of_etcd(deployed, THIRD) == []


def test_a_join_waits_for_another_members_join_to_finish_before_any_change(
    fleet: tuple[Path, Deployed, Membership], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _, membership = fleet
    disk_lost(membership, THIRD)
    membership.listed[2]["isLearner"] = True  # SECOND's join: added, not promoted yet
    assert deploy.main(["-i", str(inventory), "--quiet", "--limit", THIRD]) == 1
    assert membership.changes == []
    out = capsys.readouterr().out
    assert "etcd holds a member still joining (kube.controller02)" in out
