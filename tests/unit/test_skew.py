"""The version-skew policy: versions per host x target -> allowed, or why not."""

from __future__ import annotations

import pytest

from kubenorn.skew import (
    package_name,
    parse_version,
    pin_problems,
    refusals,
    rollout,
    state_problems,
)

CONTROLLERS = ["c1", "c2"]
NODES = ["n1", "n2"]
STEPS = rollout(CONTROLLERS, NODES)


def v(text: str) -> tuple[int, int, int]:
    version = parse_version(text)
    assert version is not None
    return version


def cluster(
    apiservers: tuple[str, str] = ("1.36.3", "1.36.3"),
    elected: str = "1.36.3",
    kubelets: tuple[str, str] = ("1.36.3", "1.36.3"),
) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Two controllers and two nodes running the given versions."""
    versions: dict[str, dict[str, tuple[int, int, int]]] = {}
    for host, apiserver in zip(CONTROLLERS, apiservers, strict=True):
        versions[host] = {
            "kube-apiserver": v(apiserver),
            "kube-scheduler": v(elected),
            "kube-controller-manager": v(elected),
        }
    for host, kubelet in zip(NODES, kubelets, strict=True):
        versions[host] = {"kubelet": v(kubelet), "kube-proxy": v(kubelet)}
    return versions


CASES = [
    # (versions, target, the refusal's text, or "" when allowed)
    (cluster(), "1.37.2", ""),
    (cluster(), "1.36.5", ""),  # a patch release
    (cluster(), "1.36.3", ""),  # nothing to do: allowed, every step a no-op
    (cluster(("1.37.2", "1.36.3")), "1.37.2", ""),  # an interrupted upgrade, finished
    (cluster(("1.37.2", "1.37.2")), "1.37.2", ""),  # kubelets still behind
    (cluster(("1.37.2", "1.37.2"), "1.37.2", ("1.37.2", "1.36.3")), "1.37.2", ""),
    (cluster(kubelets=("1.33.0", "1.36.3")), "1.36.4", ""),  # 3 minors behind: allowed
    (cluster(), "1.36.1", "c1 kube-apiserver runs 1.36.3, newer than the target 1.36.1"),
    (cluster(), "1.35.4", "kubenorn does not downgrade"),
    (
        cluster(("1.35.4", "1.35.4"), "1.35.4", ("1.35.4", "1.35.4")),
        "1.37.2",
        "c1 kube-apiserver 1.35.4 -> 1.37.2 skips a minor release",
    ),
    (cluster(), "1.38.0", "Kubernetes 1.38.0 has no profile"),
    (cluster(), "1.37", "target '1.37' is not a Kubernetes release (x.y.z)"),
    (
        cluster(("1.37.2", "1.35.4"), "1.35.4", ("1.35.4", "1.35.4")),
        "1.37.2",
        "already outside the skew policy: kube-apiserver instances more than one minor "
        "release apart: c1 1.37.2, c2 1.35.4",
    ),
    (
        cluster(kubelets=("1.37.2", "1.36.3")),
        "1.37.2",
        "already outside the skew policy: n1 kubelet 1.37.2 is newer than kube-apiserver "
        "1.36.3 on c1",
    ),
    (
        cluster(elected="1.37.2"),
        "1.37.2",
        "c1 kube-scheduler 1.37.2 is newer than kube-apiserver 1.36.3",
    ),
    (
        cluster(elected="1.35.4"),
        "1.37.2",
        "c1 kube-scheduler 1.35.4 -> 1.37.2 skips a minor release",
    ),
    (
        cluster(kubelets=("1.33.0", "1.36.3")),
        "1.37.2",
        "after upgrading c1 kube-apiserver: n1 kubelet 1.33.0 is more than 3 minor releases "
        "older than kube-apiserver 1.37.2 on c1",
    ),
    (
        {"n1": {"kubelet": v("1.36.3")}},
        "1.37.2",
        "no kube-apiserver is running",
    ),
]


@pytest.mark.parametrize(("versions", "target", "refusal"), CASES)
def test_the_policy(
    versions: dict[str, dict[str, tuple[int, int, int]]], target: str, refusal: str
) -> None:
    found = refusals(versions, target, STEPS)
    if not refusal:
        assert found == []
    else:
        assert any(refusal in line for line in found), found


def test_a_limit_that_upgrades_kubelets_before_the_apiservers_is_refused() -> None:
    found = refusals(cluster(), "1.37.2", rollout([], NODES))
    assert found == [
        "after upgrading n1 kubelet, n1 kube-proxy: n1 kubelet 1.37.2 is newer than "
        "kube-apiserver 1.36.3 on c1",
        "after upgrading n1 kubelet, n1 kube-proxy: n1 kube-proxy 1.37.2 is newer than "
        "kube-apiserver 1.36.3 on c1",
    ]


def test_a_limit_to_the_controllers_is_allowed_and_one_controller_is_not() -> None:
    assert refusals(cluster(), "1.37.2", rollout(CONTROLLERS, [])) == []
    # c1's scheduler at 1.37 while c2's apiserver is still 1.36: newer than an apiserver.
    found = refusals(cluster(), "1.37.2", rollout(["c1"], []))
    assert found[0].startswith("after upgrading c1 kube-scheduler: c1 kube-scheduler 1.37.2")


def test_components_not_running_are_left_out_of_the_judgement() -> None:
    versions = cluster()
    del versions["n2"]["kube-proxy"]
    assert state_problems(versions) == []
    assert refusals(versions, "1.37.2", STEPS) == []


def test_the_rollout_order_is_apiservers_then_elected_then_nodes() -> None:
    assert rollout(["c1", "c2"], ["n1"]) == [
        [("c1", "kube-apiserver")],
        [("c2", "kube-apiserver")],
        [("c1", "kube-scheduler")],
        [("c1", "kube-controller-manager")],
        [("c2", "kube-scheduler")],
        [("c2", "kube-controller-manager")],
        [("n1", "kubelet"), ("n1", "kube-proxy")],
    ]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("Kubernetes v1.36.3", (1, 36, 3)),
        ("Kubernetes v1.37.0-rc.1", (1, 37, 0)),
        ("1.35.4", (1, 35, 4)),
        ("Python 3.13", None),
        ("", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("kube-apiserver=1.37.2-*", "kube-apiserver"),
        ("kube-apiserver", "kube-apiserver"),
        ("kubelet-1.37.2-0.x86_64", "kubelet"),
        ("containernetworking-plugins", "containernetworking-plugins"),
    ],
)
def test_package_name(spec: str, name: str) -> None:
    assert package_name(spec) == name


PINS = {  # spec -> why it cannot upgrade to 1.37.2 ("" : it can)
    "kubelet=1.37.2-*": "",
    "kubelet=1.37.2-1": "",
    "kubelet-1.37.2-0.x86_64": "",  # rpm
    "curl": "",  # not a component
    "kube-apiserver=1.36.3-*": "cannot install exactly that release",
    "kube-apiserver=1.37.*": "cannot install exactly that release",  # 1.37.4 matches too
    "kube-apiserver=1.37.2*": "cannot install exactly that release",  # and 1.37.20
    "kube-proxy": "has no version pin",  # the installed one stays
}


@pytest.mark.parametrize(("spec", "why"), PINS.items(), ids=PINS.keys())
def test_only_a_pin_to_exactly_the_target_release_can_upgrade(spec: str, why: str) -> None:
    names = ["kube-apiserver", "kubelet", "kubectl", "kube-proxy"]
    problems = pin_problems([spec], "1.37.2", names)
    expected = f"package {spec} {why} of Kubernetes 1.37.2 (apt: {package_name(spec)}=1.37.2-*)"
    assert problems == ([expected] if why else [])
