"""Version profiles: which profile a version gets, and the flags each profile's templates pass."""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlsplit

import pytest
import yaml

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.profiles import CONTROL_PLANE, WORKER, ProfileError, profile_for
from tasks.kube_units import template_context
from tasks.templates import ENVIRONMENT

# The flag tables the lab's simulators enforce, compiled from each release's reference docs.
FLAG_TABLES = json.loads((REPO_ROOT / "lab/sim/flags.json").read_text())
INVENTORIES = {"1.6.0": "lab/inventory-1.6", "1.30.0": "lab/inventory"}


@pytest.mark.parametrize(
    ("version", "profile"),
    [("1.6.0", "1.6"), ("1.6.13", "1.6"), ("1.24.0", "current"), ("1.30.2", "current")],
)
def test_a_version_gets_the_profile_whose_range_holds_it(version: str, profile: str) -> None:
    assert profile_for(version).name == profile


@pytest.mark.parametrize("version", ["1.7.0", "1.23.9", "1.31.0", "2.0.0", "latest"])
def test_a_version_outside_every_range_is_refused_with_the_ranges(version: str) -> None:
    with pytest.raises(ProfileError, match=r"has no profile; profiles: 1\.6 \(>= 1\.6, < 1\.7\)"):
        profile_for(version)


def rendered_flags(version: str, component: str, host: str) -> dict[str, str]:
    inventory = REPO_ROOT / INVENTORIES[version]
    cluster = load_cluster(inventory)
    data = yaml.safe_load((inventory / "defaults.yaml").read_text())["data"]
    runtime = {"runtime_socket": "/run/containerd/containerd.sock", "cgroup_driver": "systemd"}
    context = template_context(cluster, host, data["kubernetes"], runtime)
    template = cluster.kubernetes.profile.template(f"{component}.env")
    text = ENVIRONMENT.get_template(template).render(**context)
    # As systemd reads an EnvironmentFile: a backslash ends a continued line, quotes group.
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    assignments = dict(word.split("=", 1) for word in words if "=" in word)
    flags = {}
    for word in assignments["KUBE_ARGS"].split():
        name, _, value = word.removeprefix("--").partition("=")
        flags[name] = value
    return flags


@pytest.mark.parametrize("version", INVENTORIES)
@pytest.mark.parametrize("component", CONTROL_PLANE + WORKER)
def test_every_flag_a_template_passes_exists_in_that_release(version: str, component: str) -> None:
    host = "kube.controller01" if component in CONTROL_PLANE else "kube.node01"
    flags = rendered_flags(version, component, host)
    unknown = sorted(set(flags) - set(FLAG_TABLES[version][component]))
    assert unknown == []
    assert all(value for value in flags.values()), flags


def test_the_reference_profile_keeps_the_insecure_port_on_loopback() -> None:
    flags = rendered_flags("1.6.0", "kube-apiserver", "kube.controller01")
    assert flags["insecure-bind-address"] == "127.0.0.1"
    assert flags["authorization-mode"] == "ABAC"
    assert flags["etcd-servers"].startswith("https://10.240.0.11:2379,")
    scheduler = rendered_flags("1.6.0", "kube-scheduler", "kube.controller01")
    assert scheduler["master"] == "http://127.0.0.1:8080"
    assert scheduler["leader-elect-lease-duration"] == "4s"


def test_the_current_profile_has_no_insecure_port_and_uses_node_rbac() -> None:
    flags = rendered_flags("1.30.0", "kube-apiserver", "kube.controller02")
    assert "insecure-port" not in flags and "insecure-bind-address" not in flags
    assert flags["authorization-mode"] == "Node,RBAC"
    assert flags["advertise-address"] == "10.240.0.12"
    kubelet = rendered_flags("1.30.0", "kubelet", "kube.node03")
    assert kubelet["hostname-override"] == "kube.node03"
    assert kubelet["container-runtime-endpoint"] == "unix:///run/containerd/containerd.sock"
    assert "api-servers" not in kubelet


def test_the_reference_inventory_keeps_the_designs_leader_election_settings() -> None:
    data = yaml.safe_load((REPO_ROOT / "inventory/defaults.yaml").read_text())["data"]
    election = data["kubernetes"]["leader_election"]
    assert election == {"lease_duration": "150s", "renew_deadline": "100s", "retry_period": "20s"}


# The flags through which a component is told where to serve its health endpoint.
SERVING_FLAGS = ("port", "secure-port", "healthz-port", "healthz-bind-address")


@pytest.mark.parametrize("version", INVENTORIES)
def test_each_health_url_is_where_the_templates_make_the_component_listen(version: str) -> None:
    # profiles.yaml says where verify looks; the templates say where the component listens.
    for component, url in profile_for(version).health.items():
        host = "kube.controller01" if component in CONTROL_PLANE else "kube.node01"
        flags = rendered_flags(version, component, host)
        served = {flags[f].rsplit(":", 1)[-1] for f in SERVING_FLAGS if f in flags}
        assert str(urlsplit(url).port) in served, (component, url, served)
