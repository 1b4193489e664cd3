"""What kubenorn's installs added to a host, so that a reset takes away exactly that.

Each install is bracketed by a census of the host (installed packages, users, groups); what
the install added, dependencies and the accounts a package's scripts made included, is
appended to the host's ledger. A reset removes the ledger's packages (purged with their
configuration, users and groups when data goes too) and nothing the host had before; a
package something installed since depends on stops it, named, before anything is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nornir.core.task import Result, Task

from tasks.facts import facts_of
from tasks.ssh import run

# A line each: `package NAME`, `user NAME`, `group NAME`; `removed NAME` once a reset removed
# a package and left its configuration (a purge may take that later, not a reinstall of it).
LEDGER = "/var/lib/kubenorn/installed"
# The local accounts only (not getent: a directory service's users are not a package's).
ACCOUNTS = "sed 's/:.*//; s/^/user /' /etc/passwd && sed 's/:.*//; s/^/group /' /etc/group"
# dpkg's status letter (the second of db:Status-Abbrev), not its wanted one: a held (`hi`) or
# half-upgraded (`iU`, `iF`, `rH`: another apt run, or one of ours cut short) package is on the
# host all the same; `c` is a removed one's configuration left (`rc`, `pc`).
APT_PACKAGES = (
    "status=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n') || exit 1; "
    "printf '%s\\n' \"$status\" | awk '{s = substr($1, 2, 1)}"
    ' index("iUFHWt", s) {print "package", $2} s == "c" {print "config", $2}\''
)
# gpg-pubkey: rpm's imported signing keys, not packages anyone installs.
RPM_PACKAGES = (
    "names=$(rpm -qa --qf 'package %{NAME}\\n') || exit 1; "
    "printf '%s\\n' \"$names\" | grep -vx 'package gpg-pubkey'"
)
CENSUS = {
    "apt": f"{APT_PACKAGES} && {ACCOUNTS}",
    "yum": f"{RPM_PACKAGES}; {ACCOUNTS}",
    "dnf": f"{RPM_PACKAGES}; {ACCOUNTS}",
}
# $1: the ledger; stdin: the lines to add.
RECORD = 'mkdir -p -- "${1%/*}" && cat >> "$1"'
# $1: the ledger; prints it, or nothing when there is none; then the census.
READ = 'if [ -f "$1" ]; then sed "s/^/ledger /" "$1"; fi; '
MARK_REMOVED = ["sed", "-i", "s/^package /removed /", LEDGER]
APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]  # installs and removals alike


@dataclass(frozen=True)
class Ledger:
    """What kubenorn's installs added to one host, and which of it is still there."""

    packages: tuple[str, ...]  # installed now, in the order they were recorded
    configured: tuple[str, ...]  # removed, their configuration left (dpkg's `rc`, `pc`)
    users: tuple[str, ...]  # existing now
    groups: tuple[str, ...]  # existing now

    def removable(self, *, purge: bool) -> tuple[str, ...]:
        """The packages a removal takes (a purge: the configuration left by earlier ones too)."""
        return self.packages + self.configured if purge else self.packages


def census(task: Task, manager: str) -> set[str]:
    """The host's packages, users and groups, as `package NAME` lines and the like."""
    return set(run(task, ["sh", "-c", CENSUS[manager]], sudo=True).stdout.splitlines())


def record_added(task: Task, before: set[str], after: set[str]) -> None:
    """Append to the ledger what is in `after` and was not in `before`."""
    added = sorted(after - before)
    if added:
        lines = "".join(f"{line}\n" for line in added).encode()
        run(task, ["sh", "-c", RECORD, "sh", LEDGER], sudo=True, stdin=lines)


def read_ledger(task: Task, manager: str) -> Ledger:
    """The ledger's entries the host still has (one round trip)."""
    out = run(task, ["sh", "-c", READ + CENSUS[manager], "sh", LEDGER], sudo=True).stdout
    lines = out.splitlines()
    now = {line for line in lines if not line.startswith("ledger ")}
    listed = [line.removeprefix("ledger ") for line in lines if line.startswith("ledger ")]
    kinds = [tuple(line.split(" ", 1)) for line in dict.fromkeys(listed) if " " in line]

    def named(listed_as: set[str], now_as: str) -> tuple[str, ...]:
        return tuple(name for k, name in kinds if k in listed_as and f"{now_as} {name}" in now)

    return Ledger(
        named({"package"}, "package"),
        named({"package", "removed"}, "config"),
        named({"user"}, "user"),
        named({"group"}, "group"),
    )


def apt_removals(simulation: str) -> list[str]:
    """The packages an `apt-get -s remove|purge` would take away (its `Remv`/`Purg` lines)."""
    return [line.split()[1] for line in simulation.splitlines() if line[:5] in ("Remv ", "Purg ")]


def removal_command(manager: str, packages: Sequence[str], *, purge: bool) -> list[str]:
    """What removes `packages` (purged: their configuration too); rpm -e is all or nothing
    and refuses when another package needs one."""
    if manager == "apt":
        return [*APT, "purge" if purge else "remove", "-y", "-q", *packages]
    return ["rpm", "-e", "--allmatches", *packages]  # every architecture's copy


def check_nothing_else_goes(task: Task, packages: Sequence[str], *, purge: bool) -> None:
    """Raise, naming them, when apt would also remove packages kubenorn did not install."""
    action = "purge" if purge else "remove"
    simulation = run(task, [*APT, "-s", action, *packages], sudo=True).stdout
    others = sorted(set(apt_removals(simulation)) - set(packages))
    if others:
        raise RuntimeError(
            f"removing what kubenorn installed ({', '.join(packages)}) would also remove "
            f"{', '.join(others)}, installed since and depending on it: remove or keep those "
            "first (or reset with --keep-packages)"
        )


def check_installed_removable(task: Task, *, purge: bool) -> Result:
    """Check, changing nothing, that removing what kubenorn installed takes nothing else."""
    manager = facts_of(task).package_manager
    packages = read_ledger(task, manager).removable(purge=purge)
    if manager == "apt" and packages:
        check_nothing_else_goes(task, packages, purge=purge)
    return Result(host=task.host, changed=False)


def ensure_installed_removed(task: Task, *, purge: bool, dry_run: bool | None = None) -> Result:
    """Ensure the packages kubenorn installed here are gone (`purge`: with their configuration,
    users and groups)."""
    manager = facts_of(task).package_manager
    ledger = read_ledger(task, manager)
    packages = ledger.removable(purge=purge)
    accounts = [("userdel", u) for u in ledger.users] + [("groupdel", g) for g in ledger.groups]
    accounts = accounts if purge else []
    verb = "purge" if purge else "remove"
    would = "would " if task.is_dry_run(dry_run) else ""
    diff = "".join(f"{would}{verb} package {name}\n" for name in packages)
    if not packages and not accounts:
        return Result(host=task.host, changed=False)
    if manager == "apt" and packages:
        check_nothing_else_goes(task, packages, purge=purge)
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=diff + accounts_diff(accounts, would))
    if packages:
        run(task, removal_command(manager, packages, purge=purge), sudo=True, timeout=600)
        if not purge:  # the configuration left is still kubenorn's; the package no longer
            run(task, MARK_REMOVED, sudo=True)
    for tool, name in accounts:  # 6: gone already (a package's purge, a user's own group)
        run(task, [tool, name], sudo=True, ok_codes=(0, 6))
    return Result(host=task.host, changed=True, diff=diff + accounts_diff(accounts, would))


def accounts_diff(accounts: Sequence[tuple[str, str]], would: str) -> str:
    kinds = {"userdel": "user", "groupdel": "group"}
    return "".join(f"{would}remove {kinds[tool]} {name}\n" for tool, name in accounts)
