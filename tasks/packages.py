"""Packages: install the pinned ones that are missing, with apt, yum or dnf by the host's facts.

A wanted package is written the way its manager pins it: `name`, `name=version` or a glob
such as `name=1.30.0-*` for apt (apt-get takes the newest match, downgrading if it must),
`name` or a full `name-version-release[.arch]` for yum and dnf (rpm -q accepts either).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from nornir.core.task import Result, Task

from kubenorn.skew import package_name
from tasks import host_state
from tasks.facts import facts_of
from tasks.install_ledger import APT, census, record_added
from tasks.ssh import run
from tasks.systemd import owe_restarts

INSTALL_TIMEOUT = 900.0
APT_INSTALL = [
    *("install", "-y", "-q", "--no-install-recommends"),
    "--no-remove",  # one that would remove a package (a conflict) stops: the host's stay
    "--allow-downgrades",  # a pin below the installed version is what the inventory asks
]


def apt_query_command(wanted: Sequence[str]) -> list[str]:
    names = [spec.split("=", 1)[0] for spec in wanted]
    return ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *names]


def dpkg_status(query_output: str) -> dict[str, tuple[str, str]]:
    """package -> (version, status abbreviation such as `ii` or `hi`), from apt_query_command."""
    status = {}
    for line in query_output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3:
            status[fields[0]] = (fields[1], fields[2])
    return status


def apt_missing(wanted: Sequence[str], query_output: str) -> list[str]:
    """The apt specs in `wanted` that dpkg does not have installed at the pinned version."""
    installed = {
        name: version
        for name, (version, status) in dpkg_status(query_output).items()
        if status[1:2] == "i"  # installed; held (`hi`) too
    }
    missing = []
    for spec in wanted:
        name, _, version = spec.partition("=")
        if name not in installed or (version and not fnmatchcase(installed[name], version)):
            missing.append(spec)
    return missing


def apt_held(wanted: Sequence[str], query_output: str) -> list[str]:
    """The apt specs in `wanted` that need a change (`apt_missing`) to a package dpkg holds
    (`apt-mark hold`, status `h`): apt refuses to change it."""
    held = {name for name, (_, status) in dpkg_status(query_output).items() if status[:1] == "h"}
    missing = apt_missing(wanted, query_output)
    return [spec for spec in missing if spec.partition("=")[0] in held]


def held_packages(task: Task, wanted: Sequence[str]) -> list[str]:
    """Ask the host which of `wanted` (apt specs) need a change to a held package."""
    query = run(task, apt_query_command(wanted), ok_codes=(0, 1))
    return apt_held(wanted, query.stdout)


def rpm_query_command(wanted: Sequence[str]) -> list[str]:
    return ["rpm", "-q", *wanted]


def rpm_missing(wanted: Sequence[str], query_output: str) -> list[str]:
    """The rpm specs that `rpm -q` reported as not installed (it answers in order, one a line)."""
    not_installed = {
        line.split()[1] for line in query_output.splitlines() if line.endswith("is not installed")
    }
    return [spec for spec in wanted if spec in not_installed]


def install_commands(manager: str, missing: Sequence[str]) -> list[list[str]]:
    """The commands that install `missing` with `manager`; none when nothing is missing."""
    if not missing:
        return []
    if manager == "apt":
        return [
            [*APT, "update", "-q"],
            [*APT, *APT_INSTALL, *missing],
        ]
    if manager in ("yum", "dnf"):
        return [[manager, "install", "-y", "-q", *missing]]
    raise ValueError(f"no package manager support for {manager!r}")


def missing_packages(task: Task, manager: str, wanted: Sequence[str]) -> list[str]:
    """Ask the host which of `wanted` are not installed."""
    if manager == "apt":
        query = run(task, apt_query_command(wanted), ok_codes=(0, 1))
        return apt_missing(wanted, query.stdout)
    query = run(task, rpm_query_command(wanted), ok_codes=range(0, 256))
    return rpm_missing(wanted, query.stdout)


def ensure_packages(
    task: Task,
    *,
    packages: Sequence[str],
    restarts: Mapping[str, str] | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `packages` are installed, installing only the missing ones. `restarts`: package
    name -> the unit that runs its binary, owed a restart before the package is installed or
    replaced (otherwise the old binary runs on, and an interrupted run would forget it)."""
    if not packages:
        return Result(host=task.host, changed=False)
    manager = facts_of(task).package_manager
    missing = missing_packages(task, manager, packages)
    commands = install_commands(manager, missing)
    if not commands:
        return Result(host=task.host, changed=False)
    diff = "".join(f"+ package {spec}\n" for spec in missing)
    units = [unit for name, unit in (restarts or {}).items() if name in map(package_name, missing)]
    if units:
        task.run(task=owe_restarts, units=units, dry_run=dry_run)
        diff += "".join(
            f"{'would ' if task.is_dry_run(dry_run) else ''}restart {u}\n" for u in units
        )
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=diff)
    host_state.forget(task)  # a package writes where it likes: survey again when next asked
    before = census(task, manager)
    try:
        for command in commands:
            run(task, command, sudo=True, timeout=INSTALL_TIMEOUT)
    finally:  # what got in, even half way, is kubenorn's to take away on reset
        record_added(task, before, census(task, manager))
    return Result(host=task.host, changed=True, diff=diff)
