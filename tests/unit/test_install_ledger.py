"""The install ledger: an install records what it added (packages, users, groups); a reset
removes exactly that, purging only when data goes, and never a package kubenorn did not install."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import Fleet, Reply, run_on
from nornir.core import Nornir

from tasks.facts import FACTS_KEY, Facts
from tasks.install_ledger import (
    APT,
    CENSUS,
    LEDGER,
    MARK_REMOVED,
    RECORD,
    apt_removals,
    ensure_installed_removed,
)
from tasks.packages import ensure_packages

APT_HOST = Facts("debian", "13", (), "apt", "systemd", "6.1", "h1", ("192.0.2.1",))
CENSUS_LINE = re.compile(r"sh -c .*/etc/group.*", re.DOTALL)
APT_LINE = "env DEBIAN_FRONTEND=noninteractive apt-get"
INSTALL = re.compile(r"env DEBIAN_FRONTEND=noninteractive apt-get (update|install) .*")


def censuses(*answers: str) -> Callable[[str, bytes], Reply]:
    """A census that answers each of `answers` in turn (the host before, then after)."""
    left = list(answers)

    def answer(line: str, stdin: bytes) -> Reply:
        return 0, left.pop(0) if len(left) > 1 else left[0], ""

    return answer


def apt_nr(make_nr: Callable[..., Nornir]) -> Nornir:
    nr = make_nr()
    nr.inventory.hosts["h1"].data[FACTS_KEY] = APT_HOST
    return nr


@pytest.mark.parametrize("install_rc", [0, 100], ids=["installed", "failed half way"])
def test_an_install_records_what_it_added_even_when_it_fails_half_way(
    make_nr: Callable[..., Nornir], fleet: Fleet, install_rc: int
) -> None:
    host = fleet["h1"]
    before = "package curl\nuser root\ngroup root\n"
    after = before + "package etcd-server\npackage libfoo1\nuser etcd\ngroup etcd\n"
    host.script.update(
        {
            re.compile(r"dpkg-query -W -f .*", re.DOTALL): (1, "", ""),
            INSTALL: lambda line, stdin: (install_rc if " install " in line else 0, "", ""),
            CENSUS_LINE: censuses(before, after),
            shlex.join(["sudo", "-n", "--", "sh", "-c", RECORD, "sh", LEDGER]): (0, "", ""),
            shlex.join(["sh", "-c", RECORD, "sh", LEDGER]): (0, "", ""),
        }
    )
    result = run_on(apt_nr(make_nr), "h1", ensure_packages, packages=["etcd-server"])
    assert result.failed == bool(install_rc)
    recorded = [stdin for line, stdin in host.commands if RECORD in shlex.split(line)]
    assert recorded == [b"group etcd\npackage etcd-server\npackage libfoo1\nuser etcd\n"]


def test_nothing_installed_asks_for_no_census(make_nr: Callable[..., Nornir], fleet: Fleet) -> None:
    host = fleet["h1"]
    installed = "etcd-server\t3.5.16-4\tii \n"
    host.script[re.compile(r"dpkg-query -W -f .*", re.DOTALL)] = (0, installed, "")
    result = run_on(apt_nr(make_nr), "h1", ensure_packages, packages=["etcd-server"])
    assert not result.failed and not result[0].changed
    assert [line for line in host.lines() if "/etc/group" in line] == []


LEDGER_TEXT = "package etcd-server\npackage libfoo1\npackage curl\nuser etcd\ngroup etcd\n"
NOW = "package etcd-server\nconfig libfoo1\nuser etcd\ngroup etcd\nuser root\n"
# purge? -> (the packages removed, the command, the accounts deleted)
REMOVALS: dict[str, dict[str, Any]] = {
    "remove keeps configuration and accounts": {
        "purge": False,
        "packages": ["etcd-server"],
        "after": [MARK_REMOVED],  # no longer installed: a reinstall is not kubenorn's
    },
    "purge takes configuration and accounts": {
        "purge": True,
        "packages": ["etcd-server", "libfoo1"],  # libfoo1: removed before, its config left
        "after": [["userdel", "etcd"], ["groupdel", "etcd"]],
    },
}


def ledger_host(fleet: Fleet, ledger: str, now: str, simulation: str = "") -> None:
    host = fleet["h1"]
    read = re.compile(r"sh -c 'if \[ -f .*", re.DOTALL)
    listed = "".join(f"ledger {line}\n" for line in ledger.splitlines())
    host.script.update(
        {
            read: (0, listed + now, ""),
            re.compile(rf"{APT_LINE} -s .*"): (0, simulation, ""),
            re.compile(rf"{APT_LINE} (remove|purge) .*"): (0, "", ""),
            re.compile(r"(userdel|groupdel) .*"): (6, "", "gone already\n"),
            shlex.join(MARK_REMOVED): (0, "", ""),
        }
    )


@pytest.mark.parametrize("case", REMOVALS.values(), ids=REMOVALS.keys())
def test_a_reset_removes_only_what_the_ledger_lists_and_the_host_still_has(
    make_nr: Callable[..., Nornir], fleet: Fleet, case: dict[str, Any]
) -> None:
    """curl is in the ledger but no longer installed; root was never kubenorn's."""
    ledger_host(fleet, LEDGER_TEXT, NOW)
    purge = case["purge"]
    result = run_on(apt_nr(make_nr), "h1", ensure_installed_removed, purge=purge)
    assert not result.failed, result[0].exception
    verb = "purge" if purge else "remove"
    changes = [
        shlex.split(line) for line in fleet["h1"].lines() if not re.search(r"sh -c|-s ", line)
    ]
    assert changes == [[*APT, verb, "-y", "-q", *case["packages"]], *case["after"]]
    assert result[0].changed
    assert all(f"{verb} package {name}" in (result[0].diff or "") for name in case["packages"])


def test_a_package_installed_since_that_needs_one_of_kubenorns_stops_the_removal(
    make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    simulation = "Remv etcd-server [3.5.16-4]\nRemv my-monitoring [1.0]\n"
    ledger_host(fleet, LEDGER_TEXT, NOW, simulation)
    result = run_on(apt_nr(make_nr), "h1", ensure_installed_removed, purge=False)
    assert result.failed
    assert "would also remove my-monitoring" in str(result[0].exception)
    removals = [line for line in fleet["h1"].lines() if re.search(r"apt-get (remove|purge)", line)]
    assert removals == []


def test_nothing_left_of_the_ledger_changes_nothing(
    make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    ledger_host(fleet, LEDGER_TEXT, "user root\n")
    result = run_on(apt_nr(make_nr), "h1", ensure_installed_removed, purge=True)
    assert not result.failed and not result[0].changed
    assert len(fleet["h1"].lines()) == 1  # the ledger and census, read in one round trip


def test_a_dry_run_says_what_would_go_and_removes_nothing(
    make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    ledger_host(fleet, LEDGER_TEXT, NOW)
    nr = apt_nr(make_nr)
    result = run_on(nr, "h1", ensure_installed_removed, purge=True, dry_run=True)
    assert result[0].changed
    assert "would purge package etcd-server" in (result[0].diff or "")
    assert "would remove user etcd" in (result[0].diff or "")
    assert [line for line in fleet["h1"].lines() if re.search(r"del |apt-get purge", line)] == []


def test_apt_removals_reads_the_simulation() -> None:
    out = "NOTE: This is only a simulation!\nRemv a [1]\nPurg b [2]\nConf c\n"
    assert apt_removals(out) == ["a", "b"]


# --- the census script itself, run by sh with a fake dpkg-query and rpm ------------------
DPKG_STATES = (
    "ii  curl\nrc  libfoo1\nhi  kubelet\niU  openssh-server\nrH  cut\npc  gone\nun  never\n"
)
RPM_NAMES = "package bash\npackage gpg-pubkey\npackage gpg-pubkey\npackage etcd\n"
CENSUSES = {
    # A held or half-upgraded package is on the host (another apt run, or ours cut short);
    # `rc`/`pc` leave only configuration; `un` was never installed.
    "apt": (
        f"printf '{DPKG_STATES}'",
        [
            "config gone",
            "config libfoo1",
            "package curl",
            "package cut",
            "package kubelet",
            "package openssh-server",
        ],
    ),
    "dnf": (f"printf '{RPM_NAMES}'", ["package bash", "package etcd"]),  # no signing keys
}


@pytest.mark.parametrize("manager", CENSUSES)
def test_the_census_reads_every_state_a_package_can_be_in(tmp_path: Path, manager: str) -> None:
    fake, expected = CENSUSES[manager]
    for tool in ("dpkg-query", "rpm"):
        (tmp_path / tool).write_text(f"#!/bin/sh\n{fake}\n")
        (tmp_path / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", "-c", CENSUS[manager]], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line for line in lines if line.startswith(("package ", "config "))) == expected
    assert "user root" in lines and "group root" in lines


@pytest.mark.parametrize("manager", CENSUSES)
def test_a_census_whose_package_query_fails_fails(tmp_path: Path, manager: str) -> None:
    for tool in ("dpkg-query", "rpm"):
        (tmp_path / tool).write_text("#!/bin/sh\necho 'database locked' >&2\nexit 2\n")
        (tmp_path / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", "-c", CENSUS[manager]], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "package" not in out.stdout


@pytest.mark.parametrize("purge", [False, True], ids=["remove", "purge"])
def test_a_package_a_reset_removed_is_not_kubenorns_once_reinstalled(
    make_nr: Callable[..., Nornir], fleet: Fleet, purge: bool
) -> None:
    """haproxy: removed by a reset, then installed again by the admin; etcd-server: removed,
    its configuration left (a purge takes that)."""
    ledger_host(
        fleet, "removed haproxy\nremoved etcd-server\n", "package haproxy\nconfig etcd-server\n"
    )
    result = run_on(apt_nr(make_nr), "h1", ensure_installed_removed, purge=purge)
    assert not result.failed, result[0].exception
    apt = re.compile(r"apt-get (purge|remove) ")
    removals = [shlex.split(line) for line in fleet["h1"].lines() if apt.search(line)]
    assert removals == ([[*APT, "purge", "-y", "-q", "etcd-server"]] if purge else [])
    assert result[0].changed is purge
