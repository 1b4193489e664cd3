"""Kubernetes' version-skew policy, as kubenorn's upgrade enforces it: pure, no host.

Upstream (https://kubernetes.io/releases/version-skew-policy/): kube-apiserver instances within
one minor release of each other; kube-scheduler and kube-controller-manager not newer than the
oldest kube-apiserver and at most one minor older than the newest; kubelet and kube-proxy not
newer than the oldest kube-apiserver and at most three minors older than the newest. Upgrade
order: the apiservers, then the schedulers and controller-managers, then the nodes.

kubenorn also refuses a downgrade, a control-plane component skipping a minor release, and a
target no version profile holds. Every state the rollout passes through, one step at a time,
must be one the policy allows (so --limit cannot leave kubelets newer than an apiserver).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kubenorn.profiles import CONTROL_PLANE, WORKER, ProfileError, profile_for

Version = tuple[int, int, int]
# host -> component -> the version it runs (components not running are left out)
Versions = Mapping[str, Mapping[str, Version]]
Step = list[tuple[str, str]]  # the (host, component) pairs one rollout step upgrades

APISERVER = "kube-apiserver"
ELECTED = ("kube-scheduler", "kube-controller-manager")
# How many minors a component may lag the newest apiserver.
MAY_LAG = {**dict.fromkeys(ELECTED, 1), **dict.fromkeys(WORKER, 3)}
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_PACKAGE_NAME = re.compile(r"^(?P<name>.+?)(?:=(?P<apt>.+)|-(?P<rpm>\d.*))?$")


def parse_version(text: str) -> Version | None:
    """(1, 36, 3) from `--version`'s "Kubernetes v1.36.3" or "1.36.3"; None otherwise."""
    found = _VERSION.search(text)
    return None if found is None else (int(found[1]), int(found[2]), int(found[3]))


def show(version: Version) -> str:
    return ".".join(map(str, version))


def rollout(controllers: Sequence[str], nodes: Sequence[str]) -> list[Step]:
    """The upgrade's steps in order: each apiserver, then each controller's scheduler and
    controller-manager, then each node's kubelet and kube-proxy together."""
    steps: list[Step] = [[(host, APISERVER)] for host in controllers]
    steps += [[(host, component)] for host in controllers for component in ELECTED]
    steps += [[(host, component) for component in WORKER] for host in nodes]
    return steps


def state_problems(versions: Versions) -> list[str]:
    """What in `versions` the skew policy forbids (empty when it allows all of it)."""
    apiservers = {h: c[APISERVER] for h, c in sorted(versions.items()) if APISERVER in c}
    if not apiservers:
        return []
    oldest = min(apiservers, key=lambda h: apiservers[h][:2])
    newest = max(apiservers, key=lambda h: apiservers[h][:2])
    problems = []
    if apiservers[newest][1] - apiservers[oldest][1] > 1:
        listed = ", ".join(f"{h} {show(v)}" for h, v in apiservers.items())
        problems.append(f"kube-apiserver instances more than one minor release apart: {listed}")
    for host, components in sorted(versions.items()):
        for component, lag in MAY_LAG.items():
            version = components.get(component)
            if version is None:
                continue
            if version[:2] > apiservers[oldest][:2]:
                problems.append(
                    f"{host} {component} {show(version)} is newer than kube-apiserver "
                    f"{show(apiservers[oldest])} on {oldest}"
                )
            elif apiservers[newest][1] - version[1] > lag:
                problems.append(
                    f"{host} {component} {show(version)} is more than {lag} minor release"
                    f"{'s' if lag > 1 else ''} older than kube-apiserver "
                    f"{show(apiservers[newest])} on {newest}"
                )
    return problems


def target_problems(versions: Versions, target: Version, steps: Sequence[Step]) -> list[str]:
    """Downgrades, and control-plane components that would skip a minor release."""
    problems = []
    for host, component in (pair for step in steps for pair in step):
        version = versions.get(host, {}).get(component)
        if version is None:
            continue
        if version > target:
            problems.append(
                f"{host} {component} runs {show(version)}, newer than the target "
                f"{show(target)}: kubenorn does not downgrade"
            )
        elif component in CONTROL_PLANE and target[1] - version[1] > 1:
            problems.append(
                f"{host} {component} {show(version)} -> {show(target)} skips a minor release: "
                "upgrade one minor release at a time"
            )
    return problems


def rollout_problems(versions: Versions, target: Version, steps: Sequence[Step]) -> list[str]:
    """What the policy forbids in the first state of the rollout where it forbids anything."""
    state = {host: dict(components) for host, components in versions.items()}
    for step in steps:
        for host, component in step:
            state.setdefault(host, {})[component] = target
        if problems := state_problems(state):
            what = ", ".join(f"{host} {component}" for host, component in step)
            return [f"after upgrading {what}: {problem}" for problem in problems]
    return []


def refusals(versions: Versions, target: str, steps: Sequence[Step]) -> list[str]:
    """Why the upgrade to `target` must not start (empty when the policy allows it)."""
    try:
        profile_for(target)
    except ProfileError as error:
        return [str(error)]
    wanted = parse_version(target)
    if wanted is None or show(wanted) != target:
        return [f"target {target!r} is not a Kubernetes release (x.y.z)"]
    if not any(APISERVER in components for components in versions.values()):
        return ["no kube-apiserver is running: deploy the cluster, then upgrade it"]
    if current := state_problems(versions):
        return [f"already outside the skew policy: {problem}" for problem in current]
    return target_problems(versions, wanted, steps) or rollout_problems(versions, wanted, steps)


def package_name(spec: str) -> str:
    """The package a pinned spec names: apt's `name=version`, rpm's `name-version-release`."""
    found = _PACKAGE_NAME.match(spec)
    return spec if found is None else found["name"]


def pin_problems(specs: Sequence[str], target: str, names: Sequence[str]) -> list[str]:
    """The packages named in `names` whose pin may install another release than `target`: none
    (what is installed stays), or one a newer patch matches too (`1.37.*` installs 1.37.4, which
    a re-run then refuses as a downgrade)."""
    problems = []
    for spec in specs:
        found = _PACKAGE_NAME.match(spec)
        if found is None or found["name"] not in names:
            continue
        version = found["apt"] or found["rpm"]
        if version == target or (version or "").startswith(f"{target}-"):
            continue
        pin = f"{found['name']}={target}-*"
        why = "has no version pin" if not version else "cannot install exactly that release"
        problems.append(f"package {spec} {why} of Kubernetes {target} (apt: {pin})")
    return list(dict.fromkeys(problems))
