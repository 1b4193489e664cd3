"""runbooks.upgrade on a fake cluster (tests/unit/fake_cluster.py) running 1.36.3, with the
inventory at 1.37.2: the order of operations, the gates, the dry run and the refusals.

Each fake host runs what its packages held when each unit last (re)started; its packages
change with apt-get; kubectl on the first controller cordons, drains and annotates nodes in
one shared API. Every mutating action of every host lands in one log, in order.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_cluster import ANYTHING, HealthyHost, forget, healthy_fleet, serving, write_inventory
from fakes import FakeHost, Fleet, Reply

import tasks.kube_units
import tasks.kube_verify
from kubenorn import api as kubenorn_api
from kubenorn.cluster import load_cluster
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.snapshots import SnapshotStatus
from runbooks import deploy, upgrade
from tasks.drain import MARK

OLD, NEW = "1.36.3", "1.37.2"
COMPONENTS = (
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
HEALTH_PORTS = {
    "6443": "kube-apiserver",
    "10259": "kube-scheduler",
    "10257": "kube-controller-manager",
    "10248": "kubelet",
    "10256": "kube-proxy",
}
WRITING_COMMANDS = {"install", "mv", "rm", "touch", "mkdir", "cp", "chmod", "chown", "env"}
WRITING_ACTIONS = {"restart", "start", "stop", "enable", "daemon-reload", "cordon", "uncordon"}
WRITING_ACTIONS |= {"drain", "annotate", "apply", "delete"}


def mutating(line: str) -> bool:
    """Whether a command line changes something (surveys through `sh -c` only read)."""
    argv = shlex.split(line)
    argv = argv[3:] if argv[:3] == ["sudo", "-n", "--"] else argv
    if argv[0] in WRITING_COMMANDS:
        return argv[0] != "env" or "apt-get" in argv
    if argv[0] == "systemctl":
        return argv[1] in WRITING_ACTIONS
    return argv[0] == "kubectl" and bool(WRITING_ACTIONS & set(argv[3:5]))


class Api:
    """The cluster's node objects, shared by every host's kubectl, and the one action log."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes: dict[str, dict[str, Any]] = {n: {"cordoned": False, "marks": {}} for n in nodes}
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.fail_drain: set[str] = set()
        self.kubelets: dict[str, str] = {}  # node -> the version its kubelet reports

    def record(self, host: str, action: str) -> None:
        with self.lock:
            self.log.append((host, action))

    def node(self, name: str) -> dict[str, Any]:
        state = self.nodes[name]
        return {
            "metadata": {"name": name, "annotations": dict(state["marks"])},
            "spec": {"unschedulable": True} if state["cordoned"] else {},
        }


class UpgradingHost(HealthyHost):
    """A healthy host whose components run the version their package had at their start."""

    def __init__(self, host: FakeHost, cluster: Any, api: Api, version: str) -> None:
        super().__init__(host, cluster)
        self.api_state = api
        self.installed = dict.fromkeys(COMPONENTS, version)
        self.running = dict.fromkeys(COMPONENTS, version)
        self.broken: set[str] = set()  # components unhealthy once they run NEW
        self.reports_status = True  # False: its kubelet runs but never posts the Node's status
        self.held: set[str] = set()  # packages apt-mark holds: apt-get install refuses them
        api.kubelets[host.name] = version

    def api(self, path: str) -> dict[str, Any]:
        """The nodes as the kubelets last reported them: Ready, and their version."""
        listed = super().api(path)
        for item in listed["items"] if path == "/api/v1/nodes" else []:
            reported = self.api_state.kubelets.get(item["metadata"]["name"])
            item["status"]["nodeInfo"] = {"kubeletVersion": f"v{reported}"}
        return listed

    def unhealthy(self, url: str) -> bool:
        port = url.split(":")[-1].split("/")[0]
        component = HEALTH_PORTS.get(port)
        return component in self.broken and self.running.get(component) == NEW

    def do_sh(self, argv: list[str], stdin: bytes) -> Reply:
        script = argv[2]
        if "kubenorn-version" in script:
            out = ""
            for unit in argv[4:]:
                version = self.running[unit.removesuffix(".service")]  # "": not running
                out += f"== kubenorn-version {unit} {4242 if version else 0}\n"
                out += f"Kubernetes v{version}\n" if version else ""
            return 0, out, ""
        if "%{http_code}" in script:
            urls = argv[5::2]
            answers = [
                f"== 0 {u}\nfail\n500\n" if self.unhealthy(u) else f"== 0 {u}\nok\n200\n"
                for u in urls
            ]
            return 0, "".join(answers), ""
        return super().do_sh(argv, stdin)

    def do_curl(self, argv: list[str], stdin: bytes) -> Reply:
        if self.unhealthy(argv[-1]):
            return 0, "fail\n500", ""
        return 0, ("200" if "-o" in argv else "ok\n200"), ""

    def do_dpkg_query(self, argv: list[str], stdin: bytes) -> Reply:
        names = argv[4:]
        lines = [
            f"{n}\t{self.installed.get(n, NEW)}-1\t{'h' if n in self.held else 'i'}i \n"
            for n in names
        ]
        return 0, "".join(lines), ""

    def packages(self) -> list[str]:
        return list(self.installed)

    def do_env(self, argv: list[str], stdin: bytes) -> Reply:
        if argv[2] != "apt-get":
            return super().do_env(argv, stdin)
        if argv[3] == "install":
            specs = [a for a in argv[4:] if not a.startswith("-")]
            if self.held & {spec.partition("=")[0] for spec in specs}:
                return 100, "", "E: Held packages were changed and -y was used without ...\n"
            for spec in specs:
                name, _, version = spec.partition("=")
                self.installed[name] = version.removesuffix("-*")
            self.api_state.record(self.host.name, "install " + " ".join(sorted(specs)))
        return 0, "", ""

    def do_systemctl(self, argv: list[str], stdin: bytes) -> Reply:
        if argv[1] in ("restart", "start", "stop"):
            component = argv[2].removesuffix(".service")
            if component in self.running:
                self.running[component] = self.installed[component]
            if component == "kubelet" and self.reports_status:
                self.api_state.kubelets[self.host.name] = self.running[component]
            self.api_state.record(self.host.name, f"{argv[1]} {component}")
        return super().do_systemctl(argv, stdin)

    def do_kubectl(self, argv: list[str], stdin: bytes) -> Reply:
        args, api = argv[3:], self.api_state
        if args[:2] == ["get", "node"]:
            return 0, json.dumps(api.node(args[2])), ""
        if args[:2] == ["get", "nodes"]:
            return 0, json.dumps({"items": [api.node(n) for n in api.nodes]}), ""
        if args[0] in ("cordon", "uncordon"):
            api.nodes[args[1]]["cordoned"] = args[0] == "cordon"
            api.record(self.host.name, f"{args[0]} {args[1]}")
            return 0, "", ""
        if args[0] == "drain":
            api.record(self.host.name, f"drain {args[1]}")
            if args[1] in api.fail_drain:
                return (
                    1,
                    "",
                    "error: cannot evict pod as it would violate the pod's disruption budget\n",
                )
            drained = f"node/{args[1]} cordoned\nnode/{args[1]} drained\n"
            return 0, drained, "evicting pod default/web-1\n"
        if args[0] == "annotate":
            node, mark = args[-2], args[-1]
            if mark.endswith("-"):
                api.nodes[node]["marks"].pop(mark[:-1], None)
            else:
                key, _, value = mark.partition("=")
                api.nodes[node]["marks"][key] = value
            api.record(self.host.name, f"annotate {node} {mark}")
            return 0, "", ""
        return super().do_kubectl(argv, stdin)


# The inventory, the fleet, the shared API and each host's answers.
Upgrading = tuple[Path, Fleet, Api, dict[str, UpgradingHost]]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Fleet]]:
    """Six fake hosts after one deploy at 1.37.2: every file in place."""
    inventory = write_inventory(tmp_path_factory.mktemp("upgrade") / "inventory", nodes=3)
    fleet = healthy_fleet(inventory)
    with serving(fleet):
        assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    yield inventory, fleet


@pytest.fixture
def cluster_at(
    deployed: tuple[Path, Fleet], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Upgrading]:
    """The deployed fleet, every component running and installed at OLD; the snapshot faked."""
    inventory, fleet = deployed
    cluster = load_cluster(inventory)
    api = Api([h.name for h in cluster.nodes])
    hosts = {}
    for name, fake in fleet.hosts.items():
        hosts[name] = fake.script[ANYTHING] = UpgradingHost(fake, cluster, api, OLD)
    forget(fleet)

    def snapshot(run: Any, cluster: Any, destination: Path) -> tuple[Path, str, SnapshotStatus]:
        api.record("control", "etcd snapshot")
        return destination / "etcd.db", "kube.controller01", SnapshotStatus(1, 7, 9)

    monkeypatch.setattr(upgrade, "take_snapshot", snapshot)
    monkeypatch.setattr(tasks.kube_units, "HEALTH_TIMEOUT", 0.3)
    monkeypatch.setattr(tasks.kube_units, "HEALTH_POLL", 0.05)
    with serving(fleet):
        yield inventory, fleet, api, hosts
    for fake in fleet.hosts.values():
        assert not fake.unscripted, fake.unscripted
        fake.script[ANYTHING] = HealthyHost(fake, cluster)


def run_upgrade(inventory: Path, tmp_path: Path, *extra: str) -> int:
    argv = ["-i", str(inventory), "--dest", str(tmp_path), "--probe-interval", "0", *extra]
    return upgrade.main(argv)


def mutations(fleet: Fleet) -> list[str]:
    found = [f"{h.name}: {line}" for h in fleet.hosts.values() for line in h.lines()]
    found = [line for line in found if mutating(line.split(": ", 1)[1])]
    return found + [f"{h.name}: {op}" for h in fleet.hosts.values() for op in h.writes()]


def index(log: list[tuple[str, str]], host: str, action: str) -> int:
    return log.index((host, action))


def test_the_order_apiservers_then_elected_then_node_by_node(
    cluster_at: Upgrading, tmp_path: Path
) -> None:
    inventory, fleet, api, hosts = cluster_at
    assert run_upgrade(inventory, tmp_path, "--yes", "--quiet") == 0
    assert mutations(fleet), "the detector of the dry-run test sees a real run's changes"
    log = api.log
    assert log[0] == ("control", "etcd snapshot")
    controllers = [f"kube.controller0{i}" for i in (1, 2, 3)]
    nodes = [f"kube.node0{i}" for i in (1, 2, 3)]
    apiservers = [index(log, c, "restart kube-apiserver") for c in controllers]
    elected = [index(log, c, f"restart {x}") for c in controllers for x in upgrade.PHASES[1][1]]
    assert apiservers == sorted(apiservers) and max(apiservers) < min(elected)
    # the package of a controller's apiserver is installed only after the one before is healthy
    installs = [i for i, (h, a) in enumerate(log) if a.startswith("install kube-apiserver")]
    assert installs == sorted(installs) and installs[1] > apiservers[0]
    previous_uncordon = max(elected)
    for node in nodes:
        steps = [
            index(log, "kube.controller01", f"annotate {node} {MARK}=upgrade"),
            index(log, "kube.controller01", f"cordon {node}"),
            index(log, "kube.controller01", f"drain {node}"),
            index(log, node, "restart kubelet"),
            index(log, node, "restart kube-proxy"),
            index(log, "kube.controller01", f"uncordon {node}"),
            index(log, "kube.controller01", f"annotate {node} {MARK}-"),
        ]
        assert steps == sorted(steps) and steps[0] > previous_uncordon, (node, steps)
        previous_uncordon = steps[-2]
    for host in hosts.values():
        wanted = {c: NEW for c in host.running if c in upgrade_components_of(host)}
        assert {c: host.running[c] for c in wanted} == wanted, host.host.name
    assert not any(state["cordoned"] or state["marks"] for state in api.nodes.values())

    # A second run finds everything done: nothing restarts, no node is drained.
    forget(fleet)
    api.log.clear()
    assert run_upgrade(inventory, tmp_path, "--yes", "--quiet") == 0
    assert api.log == [("control", "etcd snapshot")]


def upgrade_components_of(host: UpgradingHost) -> set[str]:
    return {
        *(CONTROL_PLANE if host.me.has_role("controllers") else ()),
        *(WORKER if host.me.has_role("nodes") else ()),
    }


def test_a_failing_gate_stops_the_rollout_and_a_rerun_finishes_it(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    hosts["kube.controller02"].broken.add("kube-apiserver")
    assert run_upgrade(inventory, tmp_path, "--yes") == 1
    out = capsys.readouterr().out
    assert "upgrade stopped: a gate failed in apiservers at kube.controller02" in out
    assert "kube-apiserver not healthy" in out
    touched = {host for host, _ in api.log}
    assert touched == {"control", "kube.controller01", "kube.controller02"}, api.log
    assert not [a for _, a in api.log if "scheduler" in a or "controller-manager" in a]
    assert fleet["kube.controller03"].writes() == []

    hosts["kube.controller02"].broken.clear()
    api.log.clear()
    assert run_upgrade(inventory, tmp_path, "--yes", "--quiet") == 0
    assert ("kube.controller01", "restart kube-apiserver") not in api.log  # done already
    assert ("kube.controller03", "restart kube-apiserver") in api.log
    assert ("kube.node03", "restart kubelet") in api.log


def test_a_failed_drain_stops_at_that_node_and_leaves_it_cordoned_for_the_rerun(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    api.fail_drain.add("kube.node02")
    assert run_upgrade(inventory, tmp_path, "--yes") == 1
    out = capsys.readouterr().out
    assert "node kube.node02 (later nodes untouched: kube.node03)" in out
    assert "disruption budget" in out
    assert api.nodes["kube.node02"]["cordoned"] and MARK in api.nodes["kube.node02"]["marks"]
    assert not [entry for entry in api.log if "kube.node03" in " ".join(entry)]
    assert hosts["kube.node03"].running["kubelet"] == OLD

    api.fail_drain.clear()
    api.log.clear()
    assert run_upgrade(inventory, tmp_path, "--yes", "--quiet") == 0
    assert ("kube.node01", "restart kubelet") not in api.log
    assert ("kube.controller01", "uncordon kube.node02") in api.log
    assert not api.nodes["kube.node02"]["cordoned"] and not api.nodes["kube.node02"]["marks"]


def test_a_node_is_uncordoned_only_once_its_new_kubelet_reported_ready(
    cluster_at: Upgrading,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Just after its restart the Node still shows the old kubelet's Ready: not enough."""
    inventory, fleet, api, hosts = cluster_at
    monkeypatch.setattr(tasks.kube_verify, "NODES_READY_TIMEOUT", 0.3)
    monkeypatch.setattr(tasks.kube_verify.time, "sleep", lambda seconds: None)
    hosts["kube.node02"].reports_status = False
    assert run_upgrade(inventory, tmp_path, "--yes") == 1
    out = capsys.readouterr().out
    assert f"kube.node02 Ready as kubelet v{OLD}, not v{NEW} yet" in out
    assert api.nodes["kube.node02"]["cordoned"]
    assert not [entry for entry in api.log if "kube.node03" in " ".join(entry)]


def test_a_node_left_cordoned_by_an_interrupted_run_is_uncordoned_and_others_stay(
    cluster_at: Upgrading, tmp_path: Path
) -> None:
    inventory, fleet, api, hosts = cluster_at
    for host in hosts.values():
        host.installed = dict.fromkeys(COMPONENTS, NEW)
    set_running(hosts, NEW)
    api.nodes["kube.node01"] = {"cordoned": True, "marks": {MARK: "upgrade"}}
    api.nodes["kube.node03"] = {"cordoned": True, "marks": {}}  # someone's maintenance
    removing = {"cordoned": True, "marks": {MARK: "removal"}}  # a node remove stopped half way
    api.nodes["kube.node02"] = dict(removing)
    assert run_upgrade(inventory, tmp_path, "--yes", "--quiet") == 0
    assert not api.nodes["kube.node01"]["cordoned"] and not api.nodes["kube.node01"]["marks"]
    assert api.nodes["kube.node03"]["cordoned"]
    assert api.nodes["kube.node02"] == removing
    assert not [a for h, a in api.log if "restart" in a]
    assert not [a for h, a in api.log if "drain kube.node02" in a or "node03" in a]


def test_the_dry_run_prints_the_plan_and_changes_nothing(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    assert run_upgrade(inventory, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert mutations(fleet) == []
    assert api.log == []
    assert "1. apiservers: kube.controller01 kube-apiserver 1.36.3 -> 1.37.2" in out
    assert "4. schedulers: kube.controller01 kube-scheduler 1.36.3, " in out
    assert "7. node kube.node01: cordon, drain, kubelet 1.36.3, kube-proxy 1.36.3 -> 1.37.2" in out
    assert "would restart kube-apiserver: 1.37.2" in out
    assert "would drain kube.node03" in out
    assert "+ package kube-apiserver=1.37.2-*" in out


def set_running(hosts: dict[str, UpgradingHost], version: str, *names: str) -> None:
    for name in names or hosts:
        hosts[name].running = dict.fromkeys(COMPONENTS, version)
        hosts[name].api_state.kubelets[name] = version  # as its kubelet reported since


@pytest.mark.parametrize(
    ("versions", "refusal"),
    [
        ({"*": "1.37.5"}, "kube.controller01 kube-apiserver runs 1.37.5, newer than the target"),
        ({"*": "1.35.4"}, "kube.controller01 kube-apiserver 1.35.4 -> 1.37.2 skips a minor"),
        (
            {"*": OLD, "kube.node01": NEW},
            "already outside the skew policy: kube.node01 kubelet 1.37.2 is newer than "
            "kube-apiserver 1.36.3 on kube.controller01",
        ),
    ],
)
def test_refusals_exit_3_naming_hosts_and_versions_and_change_nothing(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    versions: dict[str, str],
    refusal: str,
) -> None:
    inventory, fleet, api, hosts = cluster_at
    set_running(hosts, versions.pop("*"))
    for name, version in versions.items():
        set_running(hosts, version, name)
    assert run_upgrade(inventory, tmp_path, "--yes") == 3
    err = capsys.readouterr().err
    assert err.startswith("error: upgrade to 1.37.2 refused:\n"), err
    assert refusal in err
    assert mutations(fleet) == [] and api.log == []


def test_a_held_package_the_rollout_would_change_is_refused_before_any_drain(
    cluster_at: Upgrading, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kubeadm's install guide holds kubelet; apt would refuse it after the node was drained."""
    inventory, fleet, api, hosts = cluster_at
    hosts["kube.node02"].held = {"kubelet"}
    hosts["kube.node03"].held = {"kubelet"}
    hosts["kube.node03"].installed["kubelet"] = NEW  # held at the target already: no change
    assert run_upgrade(inventory, tmp_path, "--yes") == 3
    err = capsys.readouterr().err
    assert (
        "kube.node02: package kubelet is held (apt-mark hold) at another version than "
        "kubelet=1.37.2-*: run `apt-mark unhold kubelet` there first" in err
    )
    assert "kube.node03" not in err
    assert mutations(fleet) == [] and api.log == []


def test_a_node_the_api_does_not_know_is_refused_before_anything_changes(
    cluster_at: Upgrading, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`node remove` deletes the Node and tells the user to take the host out of the inventory;
    left in, its cordon would fail once the control plane was upgraded."""
    inventory, fleet, api, hosts = cluster_at
    del api.nodes["kube.node02"]
    hosts["kube.node02"].running.update({"kubelet": "", "kube-proxy": ""})  # reset by the removal
    assert run_upgrade(inventory, tmp_path, "--yes") == 3
    err = capsys.readouterr().err
    assert (
        "kube.node02 is not a registered node: deploy it first (deploy --limit kube.node02), or "
        "delete it from the inventory if `node remove` took it away" in err
    )
    assert "kube.node01" not in err and "kube.node03" not in err
    assert mutations(fleet) == [] and api.log == []


def test_a_limit_to_the_nodes_before_the_apiservers_is_refused(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    assert run_upgrade(inventory, tmp_path, "--yes", "--limit", "nodes") == 3
    assert "kube.node01 kubelet 1.37.2 is newer than kube-apiserver" in capsys.readouterr().err
    assert mutations(fleet) == []


def test_without_yes_it_refuses_before_touching_anything(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    assert run_upgrade(inventory, tmp_path) == 3
    assert capsys.readouterr().err == "error: upgrade restarts every component: add --yes\n"
    assert all(not host.commands for host in fleet.hosts.values())


def test_a_target_without_a_profile_or_pins_for_it_is_refused(
    deployed: tuple[Path, Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, fleet = deployed
    copy = tmp_path / "inventory"
    copy.mkdir()
    for path in inventory.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    (copy / ".pki").symlink_to(inventory / ".pki")
    defaults = yaml.safe_load((copy / "defaults.yaml").read_text())
    defaults["data"]["cluster"]["kubernetes_version"] = "1.38.0"
    (copy / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    cluster = load_cluster(copy)
    api = Api([h.name for h in cluster.nodes])
    for fake in fleet.hosts.values():
        fake.script[ANYTHING] = UpgradingHost(fake, cluster, api, NEW)
    forget(fleet)
    with serving(fleet):
        assert run_upgrade(copy, tmp_path, "--yes") == 3
    err = capsys.readouterr().err
    assert "Kubernetes 1.38.0 has no profile" in err
    assert (
        "package kube-apiserver=1.37.2-* cannot install exactly that release of Kubernetes 1.38.0"
        " (apt: kube-apiserver=1.38.0-*)" in err
    )
    assert mutations(fleet) == []
    for fake in fleet.hosts.values():
        fake.script[ANYTHING] = HealthyHost(fake, load_cluster(inventory))


def test_the_prober_reports_each_nodes_load_balancer(
    cluster_at: Upgrading,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory, fleet, api, hosts = cluster_at
    argv = ["-i", str(inventory), "--dest", str(tmp_path), "--yes", "--probe-interval", "0.01"]
    assert upgrade.main(argv) == 0
    out = capsys.readouterr().out
    assert "availability of the apiserver endpoint during the upgrade:" in out
    for node in ("kube.node01", "kube.node02", "kube.node03"):
        line = next(
            x for x in out.splitlines() if x.strip().startswith(f"{node} -> kube.apiserver")
        )
        assert "0 failed, 100.00% available, longest outage 0.0s" in line
    probes = [line for line in fleet["kube.node01"].lines() if line.startswith("curl -sS -o")]
    assert probes and shlex.split(probes[0])[-1] == "https://kube.apiserver:6443/version"


def test_the_python_api_gives_the_plan_and_the_records(cluster_at: Upgrading) -> None:
    inventory, fleet, api, hosts = cluster_at
    result = kubenorn_api.open(inventory).upgrade()  # a dry run
    assert result.ok and result.runbook == "upgrade"
    assert "7. node kube.node01: cordon, drain" in result.output
    drains = result.records[result.records.task == "drain"]
    assert list(drains["diff"]) == [f"would drain kube.node0{i}\n" for i in (1, 2, 3)]
    assert mutations(fleet) == []
