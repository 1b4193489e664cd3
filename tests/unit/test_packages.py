"""Package commands: given what is installed, expect exactly the commands still needed."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fakes import Fleet, run_on
from nornir.core import Nornir

from tasks.facts import FACTS_KEY, Facts
from tasks.packages import (
    apt_held,
    apt_missing,
    apt_query_command,
    ensure_packages,
    install_commands,
    rpm_missing,
    rpm_query_command,
)

DPKG_OUTPUT = (
    "etcd-server\t3.4.23-4+b4\tii \netcd-client\t3.4.23-4+b4\trc \nhaproxy\t2.6.12-1+deb12u1\tii \n"
    "kubelet\t1.37.2-1\thi \ncontainerd\t1.7.24-1\tiF \n"
)
RPM_OUTPUT = (
    "addops-etcd-3.1.0-1.el7.x86_64\npackage addops-kubernetes-1.6.0-1.el7 is not installed\n"
)
APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
APT_HOST = Facts("debian", "13", (), "apt", "systemd", "6.1", "h1", ("192.0.2.1",))


@pytest.mark.parametrize(
    ("wanted", "missing"),
    [
        (["etcd-server", "haproxy"], []),  # no-op: everything installed
        (["etcd-server", "etcd-client"], ["etcd-client"]),  # removed, config left: not installed
        (["haproxy=2.6.12-1+deb12u1"], []),  # pinned and matching
        (["etcd-server=3.5.0-1"], ["etcd-server=3.5.0-1"]),  # pinned to another version
        (["runc"], ["runc"]),  # unknown to dpkg
        (["kubelet=1.37.2-*"], []),  # held by the admin (`hi`): installed all the same
        (["containerd"], ["containerd"]),  # half-configured (`iF`): apt-get install finishes it
        (["etcd-server=3.4.23-*"], []),  # a glob pin that the installed version matches
        (["etcd-server=3.4.2-*"], ["etcd-server=3.4.2-*"]),  # a glob pin it does not match
    ],
)
def test_apt_missing(wanted: list[str], missing: list[str]) -> None:
    assert apt_missing(wanted, DPKG_OUTPUT) == missing


@pytest.mark.parametrize(
    ("wanted", "held"),
    [
        (["kubelet=1.37.2-*"], []),  # held at the pinned version: nothing to change
        (["kubelet=1.38.0-*", "haproxy=2.8.0-1"], ["kubelet=1.38.0-*"]),  # held, another pin
        (["etcd-server=3.5.0-1"], []),  # another version, not held: apt changes it
    ],
)
def test_apt_held(wanted: list[str], held: list[str]) -> None:
    assert apt_held(wanted, DPKG_OUTPUT) == held


def test_apt_query_asks_dpkg_for_names_without_pins() -> None:
    command = apt_query_command(["etcd-server=3.4.23-4+b4", "haproxy"])
    assert command[:2] == ["dpkg-query", "-W"]
    assert command[-2:] == ["etcd-server", "haproxy"]


@pytest.mark.parametrize(
    ("wanted", "missing"),
    [
        (["addops-etcd-3.1.0-1.el7.x86_64"], []),
        (
            ["addops-etcd-3.1.0-1.el7.x86_64", "addops-kubernetes-1.6.0-1.el7"],
            ["addops-kubernetes-1.6.0-1.el7"],
        ),
    ],
)
def test_rpm_missing(wanted: list[str], missing: list[str]) -> None:
    assert rpm_missing(wanted, RPM_OUTPUT) == missing
    assert rpm_query_command(wanted) == ["rpm", "-q", *wanted]


@pytest.mark.parametrize(
    ("manager", "missing", "commands"),
    [
        ("apt", [], []),
        ("yum", [], []),
        (
            "apt",
            ["etcd-server=3.4.23-4+b4"],
            [
                [*APT, "update", "-q"],
                [
                    *APT,
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "--no-remove",
                    "--allow-downgrades",
                    "etcd-server=3.4.23-4+b4",
                ],
            ],
        ),
        (
            "yum",
            ["addops-etcd-3.1.0-1.el7"],
            [["yum", "install", "-y", "-q", "addops-etcd-3.1.0-1.el7"]],
        ),
        ("dnf", ["etcd", "haproxy"], [["dnf", "install", "-y", "-q", "etcd", "haproxy"]]),
    ],
)
def test_install_commands(manager: str, missing: list[str], commands: list[list[str]]) -> None:
    assert install_commands(manager, missing) == commands


def test_an_unknown_package_manager_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="zypper"):
        install_commands("zypper", ["etcd"])


INSTALLED = "kube-apiserver\t1.36.3-0kubenorn1\tii \nhaproxy\t3.0.1-1\tii \n"
# wanted -> (whether apt-get install runs, the units owed a restart first)
RESTART_CASES = {
    "a component's package replaced": (["kube-apiserver=1.37.2-*"], True, ["kube-apiserver"]),
    "a component's package as wanted": (["kube-apiserver=1.36.3-*"], False, []),
    "another package installed": (["haproxy", "curl"], True, []),
}


@pytest.mark.parametrize("case", RESTART_CASES.values(), ids=RESTART_CASES.keys())
def test_a_components_new_package_owes_its_unit_a_restart_before_it_is_installed(
    make_nr: Callable[..., Nornir], fleet: Fleet, case: tuple[list[str], bool, list[str]]
) -> None:
    wanted, installs, owed = case
    host = fleet["h1"]
    host.script.update(
        {
            re.compile(r"dpkg-query -W .*", re.DOTALL): (0, INSTALLED, ""),
            "mkdir -p /var/lib/kubenorn/restart-owed": (0, "", ""),
            re.compile(r"touch .*"): (0, "", ""),
            re.compile(r"env DEBIAN_FRONTEND=noninteractive apt-get .*"): (0, "", ""),
            re.compile(r"sh -c .*/etc/group.*", re.DOTALL): (0, "package haproxy\n", ""),
        }
    )
    nr = make_nr()
    nr.inventory.hosts["h1"].data[FACTS_KEY] = APT_HOST
    restarts = {"kube-apiserver": "kube-apiserver.service"}
    result = run_on(nr, "h1", ensure_packages, packages=wanted, restarts=restarts)
    assert not result.failed, result[0].exception
    lines = host.lines()
    touched = [n for n, line in enumerate(lines) if line.startswith("touch ")]
    installed = [n for n, line in enumerate(lines) if " install " in line]
    assert bool(installed) is installs
    assert [line.split()[1] for line in lines if line.startswith("touch ")] == [
        f"/var/lib/kubenorn/restart-owed/{unit}.service" for unit in owed
    ]
    if owed:
        assert touched[0] < installed[0], "the restart is owed before the package changes"
        assert "restart kube-apiserver.service" in (result[0].diff or "")
