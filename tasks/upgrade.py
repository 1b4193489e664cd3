"""Upgrade a host's Kubernetes components in place: deploy's own tasks, gated on the version.

A component whose running version is not the inventory's owes a restart, written on the host
before its package is installed (a run killed in between still restarts it next time); then
its pinned packages, its configuration and the restart with its health wait, as deploy does
them; then the version it runs is asked again, and must be the target.
"""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.profiles import unit_of
from kubenorn.skew import package_name, parse_version
from tasks.components import role_packages
from tasks.compose import combined
from tasks.facts import facts_of
from tasks.kube_units import ensure_components_config, start_components
from tasks.packages import ensure_packages, held_packages
from tasks.ssh import RemoteError
from tasks.systemd import owe_restarts
from tasks.versions import components_of, running_versions

# Packages that go with a component though not named after it: the admin's kubectl talks to
# the apiservers, within one minor release of them (the upgrade drains nodes with it).
COMPANIONS = {"kube-apiserver": ("kubectl",)}


def component_packages(packages: Sequence[str], components: Sequence[str]) -> list[str]:
    """The pinned specs among `packages` that install `components` (and their companions)."""
    names = {*components, *(c for component in components for c in COMPANIONS.get(component, ()))}
    return [spec for spec in packages if package_name(spec) in names]


def gather_held_packages(task: Task) -> Result:
    """The pinned packages of this host's Kubernetes components that apt holds at another
    version: the upgrade would drain the node, then fail to install them. (Reads only; apt.)"""
    specs = component_packages(role_packages(task.host), components_of(task))
    if not specs or facts_of(task).package_manager != "apt":
        return Result(host=task.host, result=[])
    return Result(host=task.host, result=held_packages(task, specs))


def outdated(running: dict[str, str | None], target: str) -> list[str]:
    """The components of `running` whose version is not `target` (not running: not outdated)."""
    wanted = parse_version(target)
    return [c for c, said in running.items() if said is not None and parse_version(said) != wanted]


def ensure_components_upgraded(
    task: Task, *, cluster: Cluster, components: tuple[str, ...], dry_run: bool | None = None
) -> Result:
    """Ensure `components` run the inventory's Kubernetes version here, each healthy."""
    target = cluster.kubernetes.version
    behind = outdated(running_versions(task, components), target)
    steps = []
    if behind:
        steps.append(
            task.run(task=owe_restarts, units=[unit_of(c) for c in behind], dry_run=dry_run)
        )
    packages = component_packages(role_packages(task.host), components)
    steps.append(task.run(task=ensure_packages, packages=packages, dry_run=dry_run))
    steps.append(
        task.run(
            task=ensure_components_config,
            cluster=cluster,
            components=components,
            certificates_changed=frozenset(),
            dry_run=dry_run,
        )
    )
    steps.append(
        task.run(task=start_components, cluster=cluster, components=components, dry_run=dry_run)
    )
    if not task.is_dry_run(dry_run):
        require_target(task, components, target)
    suffix = "".join(f"would restart {c}: {target}\n" for c in behind if task.is_dry_run(dry_run))
    result = combined(task, steps, suffix)
    result.changed = result.changed or bool(behind)
    return result


def require_target(task: Task, components: Sequence[str], target: str) -> None:
    """RemoteError unless every one of `components` runs `target` now."""
    running = running_versions(task, components)
    wrong = [f"{c} runs {running.get(c) or 'nothing'}" for c in components if c not in running]
    wrong += [f"{c} runs {running[c]}" for c in outdated(running, target)]
    wrong += [f"{c} is not running" for c, said in running.items() if said is None]
    if wrong:
        raise RemoteError(
            f"{task.host.name}: {'; '.join(wrong)}, not {target} after its restart "
            "(do the inventory's kubernetes.packages pins install it?)"
        )
