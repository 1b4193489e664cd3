# ruff: noqa: E501  (captured command outputs keep their long lines)
"""tasks.facts: the parser on captured outputs, and gathering once per run on the fake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import Fleet, run_on
from nornir.core import Nornir

from runbooks import facts as facts_runbook
from tasks.facts import FACTS_KEY, FACTS_SCRIPT, Facts, facts_of, gather_facts, parse_facts
from tasks.ssh import command_line

FACTS_LINE = command_line(["sh", "-c", FACTS_SCRIPT])

# Captured from a Debian 12 VM whose PID 1 is not systemd, on the legacy cgroup hierarchy.
DEBIAN_12 = r"""== os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
== kernel
6.18.44-fc-v669
== hostname
vm
== init
process_api
== managers
/usr/bin/apt-get
== addresses
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
76: kn-br0    inet 10.240.0.1/24 scope global kn-br0\       valid_lft forever preferred_lft forever
== cgroup
tmpfs
"""

CENTOS_7 = r"""== os-release
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
BUG_REPORT_URL="https://bugs.centos.org/"

CENTOS_MANTISBT_PROJECT="CentOS-7"
CENTOS_MANTISBT_PROJECT_VERSION="7"
REDHAT_SUPPORT_PRODUCT="centos"
REDHAT_SUPPORT_PRODUCT_VERSION="7"

== kernel
3.10.0-1160.el7.x86_64
== hostname
kube-node-01.example.com
== init
systemd
== managers
/usr/bin/yum
== addresses
2: eth0    inet 10.240.0.21/24 brd 10.240.0.255 scope global noprefixroute eth0\       valid_lft forever preferred_lft forever
== cgroup
tmpfs
"""

ROCKY_9 = r"""== os-release
NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
== kernel
5.14.0-362.8.1.el9_3.x86_64
== hostname
etcd-2
== init
systemd
== managers
/usr/bin/dnf
/usr/bin/yum
== addresses
2: ens18    inet 10.0.0.12/24 brd 10.0.0.255 scope global noprefixroute ens18\       valid_lft forever preferred_lft forever
== cgroup
cgroup2fs
"""

UBUNTU_22_04 = r"""== os-release
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
== kernel
5.15.0-105-generic
== hostname
worker-3
== init
systemd
== managers
/usr/bin/apt-get
== addresses
2: ens3    inet 10.1.0.5/24 metric 100 brd 10.1.0.255 scope global dynamic ens3\       valid_lft 3405sec preferred_lft 3405sec
3: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\       valid_lft forever preferred_lft forever
== cgroup
cgroup2fs
"""

# A minimal image: no os-release, no package manager, no global address.
BARE = "== os-release\n== kernel\n6.1.0\n== hostname\nx\n== init\nsh\n== managers\n== addresses\n== cgroup\n"


@pytest.mark.parametrize(
    ("output", "facts"),
    [
        (
            DEBIAN_12,
            Facts(
                os_id="debian",
                os_version="12",
                os_like=(),
                package_manager="apt",
                init_system="other",
                kernel="6.18.44-fc-v669",
                hostname="vm",
                addresses=("192.0.2.2", "10.240.0.1"),
                interfaces=(("192.0.2.2", "eth0"), ("10.240.0.1", "kn-br0")),
                cgroup_version=1,
            ),
        ),
        (
            CENTOS_7,
            Facts(
                os_id="centos",
                os_version="7",
                os_like=("rhel", "fedora"),
                package_manager="yum",
                init_system="systemd",
                kernel="3.10.0-1160.el7.x86_64",
                hostname="kube-node-01.example.com",
                addresses=("10.240.0.21",),
                interfaces=(("10.240.0.21", "eth0"),),
                cgroup_version=1,
            ),
        ),
        (
            ROCKY_9,
            Facts(
                os_id="rocky",
                os_version="9.3",
                os_like=("rhel", "centos", "fedora"),
                package_manager="dnf",
                init_system="systemd",
                kernel="5.14.0-362.8.1.el9_3.x86_64",
                hostname="etcd-2",
                addresses=("10.0.0.12",),
                interfaces=(("10.0.0.12", "ens18"),),
                cgroup_version=2,
            ),
        ),
        (
            UBUNTU_22_04,
            Facts(
                os_id="ubuntu",
                os_version="22.04",
                os_like=("debian",),
                package_manager="apt",
                init_system="systemd",
                kernel="5.15.0-105-generic",
                hostname="worker-3",
                addresses=("10.1.0.5", "172.17.0.1"),
                interfaces=(("10.1.0.5", "ens3"), ("172.17.0.1", "docker0")),
                cgroup_version=2,
            ),
        ),
        (
            BARE,
            Facts(
                os_id="unknown",
                os_version="",
                os_like=(),
                package_manager="unknown",
                init_system="other",
                kernel="6.1.0",
                hostname="x",
                addresses=(),
                cgroup_version=1,
            ),
        ),
    ],
    ids=["debian-12", "centos-7", "rocky-9", "ubuntu-22.04", "bare"],
)
def test_parse_facts(output: str, facts: Facts) -> None:
    assert parse_facts(output) == facts


def test_gather_facts_runs_once_per_run_and_again_on_refresh(nr: Nornir, fleet: Fleet) -> None:
    host = fleet["h1"]
    host.script[FACTS_LINE] = (0, CENTOS_7, "")
    first = run_on(nr, "h1", gather_facts)[0]
    assert first.result == parse_facts(CENTOS_7)
    assert getattr(first, "record_data", None) == parse_facts(CENTOS_7).as_dict()
    assert nr.inventory.hosts["h1"].data[FACTS_KEY] == first.result
    assert run_on(nr, "h1", gather_facts)[0].result == first.result
    assert run_on(nr, "h1", lambda task: facts_of(task))[0].result == first.result
    assert host.lines() == [FACTS_LINE]
    host.script[FACTS_LINE] = (0, ROCKY_9, "")  # the host was reinstalled meanwhile
    refreshed = run_on(nr, "h1", gather_facts, refresh=True)[0].result
    assert refreshed.os_id == "rocky"
    assert host.lines() == [FACTS_LINE, FACTS_LINE]
    assert nr.inventory.hosts["h1"].data[FACTS_KEY] == refreshed
    assert fleet["h2"].lines() == []


def test_facts_of_gathers_on_first_use(nr: Nornir, fleet: Fleet) -> None:
    fleet["h2"].script[FACTS_LINE] = (0, UBUNTU_22_04, "")
    assert run_on(nr, "h2", lambda task: facts_of(task))[0].result.package_manager == "apt"
    assert fleet["h2"].lines() == [FACTS_LINE]


def test_a_host_that_cannot_run_the_script_fails_and_caches_nothing(
    nr: Nornir, fleet: Fleet
) -> None:
    fleet["h1"].script[FACTS_LINE] = (127, "", "sh: not found\n")
    result = run_on(nr, "h1", gather_facts)
    assert result.failed and "exited 127: sh: not found" in str(result[0].exception)
    assert FACTS_KEY not in nr.inventory.hosts["h1"].data


@pytest.fixture
def answering(fleet: Fleet) -> Fleet:
    """h1 runs CentOS 7, h2 Rocky 9, deployer Ubuntu 22.04."""
    outputs = {"h1": CENTOS_7, "h2": ROCKY_9, "deployer": UBUNTU_22_04}
    for name, output in outputs.items():
        fleet[name].script[FACTS_LINE] = (0, output, "")
    return fleet


def table_rows(out: str) -> dict[str, list[str]]:
    """host -> cells, from the rows of the printed facts table (not the summary's)."""
    rows = [line.split("│")[1:-1] for line in out.splitlines() if line.startswith("│")]
    facts_rows = [[cell.strip() for cell in cells] for cells in rows if len(cells) == 8]
    return {cells[0]: cells[1:] for cells in facts_rows}


def test_the_facts_runbook_prints_and_records_every_host(
    answering: Fleet, inventory_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "facts.json"
    code = facts_runbook.main(["-i", str(inventory_dir), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    rows = table_rows(out)
    assert rows["h1"][:3] == ["centos", "7", "yum"]
    assert rows["h2"][:3] == ["rocky", "9.3", "dnf"]
    assert rows["deployer"][:3] == ["ubuntu", "22.04", "apt"]
    assert rows["deployer"][3:] == [
        "systemd",
        "5.15.0-105-generic",
        "worker-3",
        "10.1.0.5 172.17.0.1",
    ]
    assert set(rows) == {"h1", "h2", "deployer"}
    assert "FAILED" not in out
    document = json.loads(report.read_text())
    assert (document["run"]["runbook"], document["run"]["exit_code"]) == ("facts", 0)
    records = {r["host"]: r for r in document["records"]}
    assert {host: (r["task"], r["status"]) for host, r in records.items()} == {
        host: ("facts", "ok") for host in ("h1", "h2", "deployer")
    }
    assert records["h2"]["data"] == json.loads(json.dumps(parse_facts(ROCKY_9).as_dict()))
    assert all(host.open_connections == 0 for host in answering.hosts.values())


def test_a_host_that_fails_makes_exit_1_and_is_reported(
    answering: Fleet, inventory_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answering["h2"].script[FACTS_LINE] = (1, "", "sh: 1: cannot create /tmp/x: Read-only\n")
    report = tmp_path / "facts.json"
    code = facts_runbook.main(["-i", str(inventory_dir), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED h2 facts: CommandError: h2: `sh -c" in out
    assert out.count("sh: 1: cannot create /tmp/x: Read-only") == 1
    assert "Traceback" not in out
    assert out.splitlines()[-1] == "3 hosts, 0 changed steps, 1 failed hosts: h2"
    statuses = {r["host"]: r["status"] for r in json.loads(report.read_text())["records"]}
    assert statuses == {"h1": "ok", "h2": "failed", "deployer": "ok"}


def test_quiet_prints_nothing_when_all_is_well(
    answering: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert facts_runbook.main(["-i", str(inventory_dir), "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_limit_runs_on_the_named_hosts_only(
    answering: Fleet, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert facts_runbook.main(["-i", str(inventory_dir), "--limit", "nodes"]) == 0
    assert set(table_rows(capsys.readouterr().out)) == {"deployer"}
    assert answering["h1"].lines() == [] and answering["h2"].lines() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--limit", "nope"],
            "error: --limit nope: no host or group of that name in the inventory",
        ),
        (["-i", "/nonexistent"], "error: /nonexistent/hosts.yaml: inventory file is missing"),
    ],
)
def test_bad_input_is_exit_3_with_a_message_and_no_connection(
    fleet: Fleet,
    inventory_dir: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert facts_runbook.main(["-i", str(inventory_dir), *argv]) == 3
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""
    assert all(host.opened == [] for host in fleet.hosts.values())
