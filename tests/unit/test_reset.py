"""runbooks.reset on fake hosts a real deploy set up (tests/unit/fake_reset.py).

The deploy writes what it writes; the reset must take exactly that away again (data only with
--purge-data), stop every unit before removing anything, change nothing on a second run or a
dry run, refuse without --yes or with a --limit that splits etcd, and name a host it could
not reach.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from fake_reset import (
    BEFORE_DEPLOY,
    HOSTS_BEFORE,
    Deployed,
    ResettableHost,
    deployed_fleet,
    mutating,
    served,
)
from fakes import FakeFile, Fleet, run_on
from nornir.core import Nornir

from kubenorn.cluster import load_cluster
from kubenorn.history import records_of, runs
from kubenorn.nornir_setup import init_nornir
from runbooks import reset
from tasks.hosts_file import BEGIN, END, remove_block
from tasks.install_ledger import LEDGER
from tasks.reset import (
    NETFILTER_LEFTOVERS,
    PRESENT,
    REMOVE,
    RUNTIME_LEFTOVERS,
    ensure_paths_absent,
    ensure_units_stopped,
    reset_plan,
)
from tasks.runtime import CONTAINERD_ROOT

CONTROLLER, NODE = "kube.controller01", "kube.node01"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deployed_fleet(tmp_path_factory.mktemp("reset"))


@pytest.fixture
def site(deployed: Deployed) -> Iterator[Deployed]:
    with served(deployed):
        yield deployed


def main(deployed: Deployed, *args: str) -> int:
    return reset.main(["-i", str(deployed.inventory), *args])


def last_records() -> list[dict[str, object]]:
    return records_of(runs(limit=1)[0]["run_id"])


# --- the plan: what a host's roles bring, from the modules a deploy writes with -------------

PLANS = {
    "controller": {
        "host": CONTROLLER,
        "units": (
            "kube-controller-manager.service",
            "kube-scheduler.service",
            "kube-apiserver.service",
            "etcd.service",
            "kubenorn-routes.service",
        ),
        "files": [
            "/etc/kubernetes/kube-apiserver.env",
            "/etc/kubernetes/encryption-config.yaml",
            "/etc/kubernetes/audit-policy.yaml",
            "/etc/kubernetes/admin.kubeconfig",
            "/etc/kubernetes/ssl/sa.key",
            "/etc/systemd/system/kube-apiserver.service",
            "/etc/systemd/system/etcd.service.d/kubenorn.conf",
            "/etc/etcd/etcd.conf",
            "/etc/etcd/ssl/server.key",
        ],
        "data": ("/var/log/kubernetes/audit", "/var/lib/etcd/kubenorn"),
        "not_files": ["/etc/haproxy/haproxy.cfg", "/etc/containerd/config.toml"],
    },
    "node": {
        "host": NODE,
        "units": (
            "kubelet.service",
            "kubepods.slice",
            "kube-proxy.service",
            "haproxy.service",
            "containerd.service",
            "kubenorn-routes.service",
        ),
        "files": [
            "/etc/kubernetes/kubelet.env",
            "/etc/kubernetes/kubelet-config.yaml",
            "/etc/kubernetes/kubelet.kubeconfig",
            "/etc/kubernetes/ssl/kubelet.key",
            "/etc/containerd/config.toml",
            "/etc/cni/net.d/10-kubenorn.conflist",
            "/etc/haproxy/haproxy.cfg",
            "/etc/systemd/system/kubelet.service",
        ],
        "data": ("/var/lib/kubelet", "/var/lib/containerd"),
        "not_files": ["/etc/etcd/etcd.conf", "/etc/kubernetes/admin.kubeconfig"],
    },
}


@pytest.mark.parametrize("case", PLANS.values(), ids=PLANS.keys())
def test_the_plan_follows_the_roles(deployed: Deployed, case: dict[str, object]) -> None:
    cluster = load_cluster(deployed.inventory)
    nr = init_nornir(deployed.inventory)
    plan = reset_plan(cluster, nr.inventory.hosts[str(case["host"])])
    assert plan.units == case["units"]
    assert set(case["files"]) <= set(plan.files)  # type: ignore[call-overload]
    assert not set(case["not_files"]) & set(plan.files)  # type: ignore[call-overload]
    assert set(case["data"]) <= set(plan.data)  # type: ignore[call-overload]
    assert "/var/lib/kubenorn/restart-owed" in plan.files
    assert not set(plan.data) & set(plan.files)
    assert set(plan.packages) >= {"curl"}


# --- what the reset leaves ------------------------------------------------------------------

RESETS = {
    "keeps data": {"args": [], "data_left": True},
    "purges data": {"args": ["--purge-data"], "data_left": False},
}


@pytest.mark.parametrize("case", RESETS.values(), ids=RESETS.keys())
def test_a_reset_takes_away_what_the_deploy_wrote(site: Deployed, case: dict[str, object]) -> None:
    cluster = load_cluster(site.inventory)
    nr = init_nornir(site.inventory)
    assert main(site, "--yes", *case["args"]) == 0  # type: ignore[misc]
    for name, fake in site.fakes.items():
        plan = reset_plan(cluster, nr.inventory.hosts[name])
        left = {path for path in fake.host.files if path not in BEFORE_DEPLOY}
        in_data = {p for p in left if any(p == d or p.startswith(d + "/") for d in plan.data)}
        assert left == in_data, f"{name}: left outside its data: {sorted(left - in_data)}"
        assert bool(left) == case["data_left"], f"{name}: data {sorted(left)}"
        assert fake.host.files["/etc/hosts"].data == HOSTS_BEFORE
        running = [unit for unit, (enabled, active) in fake.units.items() if enabled or active]
        assert running == [], f"{name}: still enabled or running: {running}"
        assert bool(fake.unmounted) == (not case["data_left"])


STOP_ORDERS = {
    "controller": (
        CONTROLLER,
        [
            "systemctl stop kube-controller-manager.service",
            "systemctl disable kube-controller-manager.service",
            "systemctl stop kube-scheduler.service",
            "systemctl disable kube-scheduler.service",
            "systemctl stop kube-apiserver.service",
            "systemctl disable kube-apiserver.service",
            "systemctl stop etcd.service",
            "systemctl disable etcd.service",
            "systemctl stop kubenorn-routes.service",
            "systemctl disable kubenorn-routes.service",
        ],
    ),
    "node": (
        NODE,
        [
            "systemctl stop kubelet.service",
            "systemctl disable kubelet.service",
            "systemctl stop kubepods.slice",  # a slice is never enabled
            "systemctl stop kube-proxy.service",
            "systemctl disable kube-proxy.service",
            "systemctl stop haproxy.service",
            "systemctl disable haproxy.service",
            "systemctl stop containerd.service",
            "systemctl disable containerd.service",
            "systemctl stop kubenorn-routes.service",
            "systemctl disable kubenorn-routes.service",
        ],
    ),
}


@pytest.mark.parametrize("case", STOP_ORDERS.values(), ids=STOP_ORDERS.keys())
def test_every_unit_stops_in_order_before_anything_is_removed(
    site: Deployed, case: tuple[str, list[str]]
) -> None:
    host, expected = case
    assert main(site, "--yes") == 0
    changes = mutating(site.lines(host))
    assert changes[: len(expected)] == expected
    removals = changes[len(expected) :]
    assert removals[0].startswith(shlex.join(["sh", "-c", REMOVE]))
    assert not [line for line in removals if line.startswith("systemctl")]
    assert "systemctl daemon-reload" in site.lines(host)


def test_a_second_reset_changes_nothing(site: Deployed) -> None:
    assert main(site, "--yes", "--purge-data") == 0
    for host in site.fleet.hosts.values():
        host.commands.clear()
    assert main(site, "--yes", "--purge-data") == 0
    assert [r for r in last_records() if r["changed"]] == []
    for name in site.fakes:
        assert mutating(site.lines(name)) == [], name


def test_an_interrupted_reset_is_finished_by_a_rerun(site: Deployed) -> None:
    """Half done: some units stopped, some files gone; the re-run does only the rest."""
    fake = site.fakes[NODE]
    fake.units["kubelet.service"] = [False, False]
    del fake.host.files["/etc/kubernetes/kubelet.env"]
    assert main(site, "--yes") == 0
    changes = mutating(site.lines(NODE))
    assert "systemctl stop kubelet.service" not in changes
    assert "/etc/kubernetes/kubelet.env" not in " ".join(changes)
    assert "systemctl stop kube-proxy.service" in changes


@pytest.mark.parametrize("purge", [[], ["--purge-data"]], ids=["keep", "purge"])
def test_a_dry_run_prints_the_plan_and_changes_nothing(
    site: Deployed, purge: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    installed_by_kubenorn(site.fakes[NODE], "containerd")
    before = {name: dict(fake.host.files) for name, fake in site.fakes.items()}
    assert main(site, "--dry-run", *purge) == 0
    out = capsys.readouterr().out
    for name, fake in site.fakes.items():
        assert mutating(site.lines(name)) == [], name
        assert fake.host.writes() == [], name
        assert fake.host.files.keys() == before[name].keys()
    assert "would stop kubelet.service" in out
    assert "would remove /etc/kubernetes/ssl/apiserver.key" in out
    assert ("would remove /var/lib/etcd/kubenorn" in out) == bool(purge)
    assert "PRIVATE KEY" not in out  # a removal names a key, never shows it
    assert f"would {'purge' if purge else 'remove'} package containerd" in out


def test_a_volume_that_will_not_unmount_keeps_its_data(
    site: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    site.fakes[NODE].busy = "umount: /var/lib/kubelet/pods/uid/volumes/nfs: target is busy\n"
    assert main(site, "--yes", "--purge-data") == 1
    assert "target is busy" in capsys.readouterr().out
    assert "/var/lib/kubelet/pods/uid/volumes/token" in site.fakes[NODE].host.files
    assert not [line for line in mutating(site.lines(NODE)) if "/var/lib/kubelet" in line]


def installed_by_kubenorn(fake: ResettableHost, *packages: str) -> None:
    """The host has `packages`, and its ledger says a deploy installed them."""
    fake.installed = list(packages)
    fake.host.files[LEDGER] = FakeFile("".join(f"package {p}\n" for p in packages).encode())


KEEPS = {
    "removed": {"args": [], "left": [], "verb": "remove"},
    "purged with data": {"args": ["--purge-data"], "left": [], "verb": "purge"},
    "kept": {"args": ["--keep-packages"], "left": ["containerd", "runc"], "verb": None},
}


@pytest.mark.parametrize("case", KEEPS.values(), ids=KEEPS.keys())
def test_the_packages_kubenorn_installed_go_unless_kept(
    site: Deployed, case: dict[str, Any]
) -> None:
    fake = site.fakes[NODE]
    installed_by_kubenorn(fake, "containerd", "runc")
    assert main(site, "--yes", *case["args"]) == 0
    assert fake.installed == case["left"]
    apt = "env DEBIAN_FRONTEND=noninteractive apt-get "
    removals = [line for line in site.lines(NODE) if line.startswith(apt) and " -s " not in line]
    verb = case["verb"]
    assert removals == ([f"{apt}{verb} -y -q containerd runc"] if verb else [])


def test_a_package_installed_since_that_needs_kubenorns_stops_the_reset_before_anything(
    site: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = site.fakes[NODE]
    installed_by_kubenorn(fake, "containerd", "runc")
    fake.dependents = ["my-monitoring"]
    assert main(site, "--yes") == 1
    assert "would also remove my-monitoring" in capsys.readouterr().out
    changes = [line for line in site.lines(NODE) if re.search(r"systemctl (stop|kill)|rm ", line)]
    assert changes == [] and fake.installed == ["containerd", "runc"]


CLEANUPS = {
    "runtime": (RUNTIME_LEFTOVERS, "kill what containerd.service left running"),
    "netfilter": (NETFILTER_LEFTOVERS, "remove Kubernetes' iptables chains and rules"),
}


@pytest.mark.parametrize("case", CLEANUPS.values(), ids=CLEANUPS.keys())
@pytest.mark.parametrize("dry_run", [False, True], ids=["clean", "dry run"])
def test_what_the_runtime_and_the_proxy_leave_goes_once_the_units_are_stopped(
    site: Deployed, case: tuple[str, str], dry_run: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    script, says = case
    site.fakes[NODE].leftovers[script] = [says]
    assert main(site, "--dry-run" if dry_run else "--yes") == 0
    lines = site.lines(NODE)
    runs = [n for n, line in enumerate(lines) if line.startswith(shlex.join(["sh", "-c", script]))]
    assert len(runs) == 1
    assert shlex.split(lines[runs[0]])[4] == ("list" if dry_run else "clean")
    assert not [line for line in site.lines(CONTROLLER) if script in shlex.split(line)]
    if dry_run:  # nothing stopped: the plan says what would go
        assert f"would {says}" in capsys.readouterr().out
        return
    stops = [n for n, line in enumerate(lines) if line.startswith("systemctl stop")]
    assert stops and max(stops) < runs[0]


def test_a_data_directory_that_is_a_mount_point_is_emptied_and_kept(
    site: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own volume (the lab bind-mounts it): `rm` cannot take the mount point, only what is
    in it; a second reset finds nothing left to do."""
    fake = site.fakes[NODE]
    fake.mount_points = {CONTAINERD_ROOT}
    assert main(site, "--dry-run", "--purge-data") == 0
    assert f"would empty {CONTAINERD_ROOT} (a mount point: it stays)" in capsys.readouterr().out
    assert main(site, "--yes", "--purge-data") == 0
    assert CONTAINERD_ROOT in fake.host.files
    assert fake.below(CONTAINERD_ROOT) == []
    fake.host.commands.clear()
    assert main(site, "--yes", "--purge-data") == 0
    assert mutating(site.lines(NODE)) == []


def test_a_directory_with_something_else_in_it_stays(site: Deployed) -> None:
    site.fakes[NODE].host.files["/etc/kubernetes/mine.conf"] = FakeFile(b"not kubenorn's\n")
    assert main(site, "--yes") == 0
    left = site.fakes[NODE].host.files
    assert "/etc/kubernetes/mine.conf" in left and "/etc/kubernetes" in left
    assert "/etc/kubernetes/ssl" not in left


def test_hosts_file_keeps_everything_but_the_block() -> None:
    cases = {
        "": "",
        "127.0.0.1 localhost\n": "127.0.0.1 localhost\n",
        f"a\n{BEGIN}\n10.0.0.1 x\n{END}\nb\n": "a\nb\n",
        f"{BEGIN}\n{END}\n": "",
    }
    assert {text: remove_block(text) for text in cases} == cases


# --- refusals --------------------------------------------------------------------------------

REFUSALS = {
    "no --yes": {"args": [], "says": "add --yes"},
    "some etcd members": {
        "args": ["--yes", "--limit", CONTROLLER],
        "says": "--partial-etcd",
    },
    "two of three members": {
        "args": ["--yes", "--limit", CONTROLLER, "kube.controller02"],
        "says": "but not kube.controller03",
    },
    "no such host": {"args": ["--yes", "--limit", "kube.nobody"], "says": "kube.nobody"},
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_exit_3_and_touch_no_host(
    site: Deployed, case: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(site, *case["args"]) == 3  # type: ignore[misc]
    assert str(case["says"]) in capsys.readouterr().err
    assert all(host.commands == [] for host in site.fleet.hosts.values())


ALLOWED = {
    "every etcd member": ["--limit", "etcd"],
    "no etcd member": ["--limit", "nodes"],
    "some, by choice": ["--limit", CONTROLLER, "--partial-etcd"],
}


@pytest.mark.parametrize("limit", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_limit_that_keeps_etcd_whole_or_says_so_resets_only_those_hosts(
    site: Deployed, limit: list[str]
) -> None:
    assert main(site, "--yes", *limit) == 0
    touched = {name for name, host in site.fleet.hosts.items() if host.commands}
    nr = init_nornir(site.inventory)
    wanted = set(reset.cli.limit(nr, limit[1:2]).inventory.hosts)
    assert touched == wanted


def test_an_unreachable_host_is_named_with_what_it_may_still_hold(
    site: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    site.fleet["kube.node02"].connect_error = ConnectionRefusedError(111, "Connection refused")
    assert main(site, "--yes") == 1
    out = capsys.readouterr().out
    assert "kube.node02: NOT cleaned" in out
    assert "units stopped and disabled: kubelet.service" in out
    assert site.fakes[NODE].host.files.keys() == set(BEFORE_DEPLOY) | {
        p for p in site.fakes[NODE].host.files if p.startswith("/var/lib/")
    }


def test_reset_is_a_kubenorn_command() -> None:
    from runbooks.__main__ import COMMANDS

    assert COMMANDS["reset"] == "reset" and COMMANDS["node"] == "node"


# --- the tasks alone: given what the host says, these commands (pyinfra's tables) -------------

SHOW = "systemctl show --property=UnitFileState,ActiveState -- a.service b.slice"
UNIT_CASES = {
    "running and enabled": {
        "states": [("enabled", "active"), ("", "active")],
        "commands": [
            "systemctl stop a.service",
            "systemctl disable a.service",
            "systemctl stop b.slice",
        ],
    },
    "stopped but enabled": {
        "states": [("enabled", "inactive"), ("", "inactive")],
        "commands": ["systemctl disable a.service"],
    },
    "waiting out its RestartSec": {
        "states": [("enabled", "activating"), ("", "inactive")],
        "commands": ["systemctl stop a.service", "systemctl disable a.service"],
    },
    "failed, disabled": {"states": [("disabled", "failed"), ("", "inactive")], "commands": []},
    "unknown to systemd": {"states": [("", "inactive"), ("", "inactive")], "commands": []},
}


@pytest.mark.parametrize("case", UNIT_CASES.values(), ids=UNIT_CASES.keys())
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_units_stopped_table(
    fleet: Fleet, nr: Nornir, case: dict[str, list[Any]], dry_run: bool
) -> None:
    blocks = [f"UnitFileState={f}\nActiveState={a}\n" for f, a in case["states"]]
    fleet["h1"].script = {SHOW: (0, "\n".join(blocks), "")}
    fleet["h1"].script |= {c: (0, "", "") for c in case["commands"]}
    result = run_on(nr, "h1", ensure_units_stopped, units=["a.service", "b.slice"], dry_run=dry_run)
    assert fleet["h1"].lines()[1:] == ([] if dry_run else case["commands"])
    assert result[0].changed == bool(case["commands"])
    would = "would " if dry_run else ""
    assert result[0].diff == "".join(
        f"{would}{c.removeprefix('systemctl ')}\n" for c in case["commands"]
    )


PATH_CASES = {
    "both there": {"present": ["/etc/x.key", "/etc/systemd/system/y.service"], "reload": True},
    "one there": {"present": ["/etc/x.key"], "reload": False},
    "none there": {"present": [], "reload": False},
}


@pytest.mark.parametrize("case", PATH_CASES.values(), ids=PATH_CASES.keys())
@pytest.mark.parametrize("host", ["h1", "deployer"], ids=["root", "sudo"])
def test_paths_absent_table(fleet: Fleet, nr: Nornir, case: dict[str, Any], host: str) -> None:
    """As root, or as a user whose every look and change goes through sudo (root's files)."""
    sudo = "" if host == "h1" else "sudo -n -- "
    fleet[host].sudo_nopasswd = True
    paths = ["/etc/x.key", "/etc/systemd/system/y.service"]
    listing = sudo + shlex.join(["sh", "-c", PRESENT, "sh", *paths])
    found = case["present"]
    fleet[host].script = {listing: (0, "".join(f"{p}\n" for p in found), "")}
    expected = [shlex.join(["sh", "-c", REMOVE, "sh", *found])] if found else []
    expected += ["systemctl daemon-reload"] if case["reload"] else []
    fleet[host].script |= {sudo + c: (0, "", "") for c in expected}
    result = run_on(nr, host, ensure_paths_absent, paths=paths)
    lines = [line for line in fleet[host].lines() if line != "sudo -n -k true"]
    assert lines == [listing] + [sudo + c for c in expected]
    assert result[0].changed == bool(found)
    assert result[0].diff == "".join(f"remove {p}\n" for p in found)
