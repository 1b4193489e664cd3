"""Which Kubernetes version each component on a host runs: asked of the running process.

`/proc/PID/exe --version` runs the very binary the unit's main process was started from,
even when a package has since replaced the file on disk, so it is the version that runs, not
the one installed. One command per host, all its components at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from kubenorn.profiles import CONTROL_PLANE, WORKER, unit_of
from tasks.ssh import run

# $@: units. Per unit a line "== kubenorn-version UNIT PID", then its binary's --version.
VERSIONS = r"""
for unit; do
  pid=$(systemctl show --property=MainPID --value "$unit" 2>/dev/null)
  printf '== kubenorn-version %s %s\n' "$unit" "${pid:-0}"
  case ${pid:-0} in 0) ;; *) /proc/"$pid"/exe --version 2>&1 | head -n 1 ;; esac
done
"""


def components_of(task: Task) -> tuple[str, ...]:
    """The Kubernetes components this host's roles run."""
    roles = {group.name for group in task.host.groups}
    return (CONTROL_PLANE if "controllers" in roles else ()) + (WORKER if "nodes" in roles else ())


def parse_versions(output: str) -> dict[str, str | None]:
    """component -> what its running binary's `--version` said (None: not running)."""
    found: dict[str, str | None] = {}
    for section in output.split("== kubenorn-version ")[1:]:
        header, _, said = section.partition("\n")
        unit, _, pid = header.strip().partition(" ")
        component = unit.removesuffix(".service")
        found[component] = None if pid.strip() in ("", "0") else said.strip()
    return found


def running_versions(task: Task, components: Sequence[str]) -> dict[str, str | None]:
    """`parse_versions` of `components` on this host, in one command."""
    if not components:
        return {}
    units = [unit_of(component) for component in components]
    output = run(task, ["sh", "-c", VERSIONS, "sh", *units], sudo=True, timeout=60)
    return parse_versions(output.stdout)


def gather_versions(task: Task) -> Result:
    """The version each Kubernetes component of this host's roles runs. (Reads only.)"""
    versions = running_versions(task, components_of(task))
    return Result(host=task.host, result=versions, record_data={"versions": versions})
