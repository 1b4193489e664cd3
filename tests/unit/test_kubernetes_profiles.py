"""Version profiles: which profile a version gets, and what each profile's templates render,
checked against the flags and configuration fields of the releases themselves.

The supported profile is checked against tables read from each release's published Go modules
(tests/data/kubernetes/reference-vX.json, written by `python -m lab.kube_reference`); the
reference profile against the 1.6 simulators' flag table (lab/sim/flags.json).
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import shlex
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.pki.placement import placements
from kubenorn.profiles import CONTROL_PLANE, WORKER, ProfileError, profile_for
from tasks.kube_units import (
    CGROUP_V1,
    cgroup_warnings,
    component_templates,
    runtime_context,
    template_context,
)
from tasks.load_balancer import drain_seconds
from tasks.templates import ENVIRONMENT

REFERENCES = REPO_ROOT / "tests" / "data" / "kubernetes"
# The releases of the supported profile whose reference tables are kept (one per minor).
RELEASES = ("1.35.4", "1.36.3", "1.37.2")
SIM_FLAGS = json.loads((REPO_ROOT / "lab/sim/flags.json").read_text())
INVENTORIES = {"1.6": REPO_ROOT / "lab/inventory-1.6", "supported": REPO_ROOT / "lab/inventory"}
# The configuration file each component of the supported profile reads, by kind.
CONFIG_FILES = {
    "kubelet": ("kubelet-config.yaml", "KubeletConfiguration"),
    "kube-proxy": ("kube-proxy-config.yaml", "KubeProxyConfiguration"),
    "kube-scheduler": ("kube-scheduler-config.yaml", "KubeSchedulerConfiguration"),
}
CONTROLLER, NODE = "kube.controller01", "kube.node01"


@cache
def reference(release: str) -> dict[str, Any]:
    return json.loads((REFERENCES / f"reference-v{release}.json").read_text())


@pytest.mark.parametrize(
    ("version", "profile"),
    [
        ("1.6.0", "1.6"),
        ("1.6.13", "1.6"),
        ("1.35.0", "supported"),
        ("1.36.3", "supported"),
        ("1.37.2", "supported"),
    ],
)
def test_a_version_gets_the_profile_whose_range_holds_it(version: str, profile: str) -> None:
    assert profile_for(version).name == profile


@pytest.mark.parametrize("version", ["1.7.0", "1.30.0", "1.34.9", "1.38.0", "2.0.0", "latest"])
def test_a_version_outside_every_range_is_refused_with_the_ranges(version: str) -> None:
    ranges = r"profiles: 1\.6 \(>= 1\.6, < 1\.7\), supported \(>= 1\.35, < 1\.38\)"
    with pytest.raises(ProfileError, match=rf"Kubernetes {version} has no profile; {ranges}"):
        profile_for(version)


def cluster_for(profile: str, release: str | None = None) -> Cluster:
    """The lab inventory of `profile`; with `release`, as if it named that release."""
    cluster = load_cluster(INVENTORIES[profile])
    if release is None:
        return cluster
    kubernetes = dataclasses.replace(cluster.kubernetes, version=release)
    return dataclasses.replace(cluster, kubernetes=kubernetes)


def inventory_data(profile: str) -> dict[str, Any]:
    return yaml.safe_load((INVENTORIES[profile] / "defaults.yaml").read_text())["data"]


def host_data(profile: str, host: str) -> dict[str, Any]:
    hosts = yaml.safe_load((INVENTORIES[profile] / "hosts.yaml").read_text())
    return hosts[host]["data"]


def rendered(cluster: Cluster, host: str, *, cgroup_version: int = 2) -> dict[str, str]:
    """Path -> content of every file of the host's components, as the deploy renders them."""
    profile = "1.6" if cluster.kubernetes.profile.name == "1.6" else "supported"
    data = inventory_data(profile)
    node = cluster.host(host).has_role("nodes")
    kind = data["runtime"]["kind"]
    runtime = runtime_context(data["runtime"][kind]["socket"], cgroup_version) if node else {}
    drain = drain_seconds({"load_balancer": data["load_balancer"]})  # type: ignore[arg-type]
    context = template_context(cluster, host, data["kubernetes"], runtime, drain_s=drain)
    return {
        path: ENVIRONMENT.get_template(template).render(**context)
        for component in (WORKER if node else CONTROL_PLANE)
        for path, template in component_templates(cluster, component)
    }


def flags_of(text: str) -> dict[str, str]:
    """The flags of KUBE_ARGS in an environment file, read as systemd reads it."""
    # A backslash ends a continued line, quotes group, # starts a comment line.
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    assignments = dict(word.split("=", 1) for word in words if "=" in word)
    flags = {}
    for word in assignments["KUBE_ARGS"].split():
        assert word.startswith("--"), word
        name, _, value = word.removeprefix("--").partition("=")
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags


def component_flags(cluster: Cluster, component: str, host: str) -> dict[str, str]:
    path = posixpath.join(cluster.kubernetes.config_dir, f"{component}.env")
    return flags_of(rendered(cluster, host)[path])


def config_of(cluster: Cluster, component: str, host: str, **kwargs: Any) -> dict[str, Any]:
    path = posixpath.join(cluster.kubernetes.config_dir, CONFIG_FILES[component][0])
    document = yaml.safe_load(rendered(cluster, host, **kwargs)[path])
    assert isinstance(document, dict)
    return document


def unknown_keys(document: dict[str, Any], fields: set[str], prefix: str = "") -> list[str]:
    """The key paths of `document` that are not configuration fields (see lab/kube_reference:
    "a.*" is any key of map a, "a[]" the elements of a list of structs)."""
    unknown = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        if path not in fields and f"{prefix}*" in fields:
            path = f"{prefix}*"
        if path not in fields:
            unknown.append(f"{prefix}{key}")
        elif isinstance(value, dict):
            unknown += unknown_keys(value, fields, f"{path}.")
        elif isinstance(value, list) and f"{path}[]" in fields:
            for item in value:
                if isinstance(item, dict):
                    unknown += unknown_keys(item, fields, f"{path}[].")
    return unknown


def host_of(component: str) -> str:
    return CONTROLLER if component in CONTROL_PLANE else NODE


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("component", CONTROL_PLANE + WORKER)
def test_every_flag_the_supported_profile_passes_is_a_live_flag_of_that_release(
    release: str, component: str
) -> None:
    flags = component_flags(cluster_for("supported", release), component, host_of(component))
    table = reference(release)
    assert sorted(set(flags) - set(table["flags"][component])) == []
    assert sorted(set(flags) & set(table["deprecated_flags"][component])) == []
    assert all(value for value in flags.values()), flags


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("component", CONFIG_FILES)
def test_every_key_of_a_configuration_file_is_a_field_of_that_release(
    release: str, component: str
) -> None:
    kind = CONFIG_FILES[component][1]
    fields = reference(release)["config"][kind]
    for cgroup_version in (1, 2):
        document = config_of(
            cluster_for("supported", release),
            component,
            host_of(component),
            cgroup_version=cgroup_version,
        )
        assert (document["apiVersion"], document["kind"]) == (fields["apiVersion"], kind)
        assert unknown_keys(document, set(fields["fields"])) == []


@pytest.mark.parametrize("release", RELEASES)
def test_the_checks_catch_a_removed_flag_and_a_misspelt_field(release: str) -> None:
    table = reference(release)
    # Removed in 1.35 (the reference profile's kubelet still passes it): no longer a flag.
    assert "pod-infra-container-image" not in table["flags"]["kubelet"]
    assert "insecure-port" not in table["flags"]["kube-apiserver"]
    # Still flags, but deprecated in favour of the configuration file.
    assert {"cgroup-driver", "tls-cert-file"} <= set(table["deprecated_flags"]["kubelet"])
    fields = set(table["config"]["KubeletConfiguration"]["fields"])
    document = {"authentication": {"anonymous": {"enabled": False}}, "podCidr": "10.0.0.0/24"}
    assert unknown_keys(document, fields) == ["podCidr"]
    assert unknown_keys({"kubeReserved": {"cpu": "1"}, "clusterDNS": ["10.0.0.10"]}, fields) == []


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("kubelet", {"config", "kubeconfig", "hostname-override", "node-ip", "v"}),
        ("kube-proxy", {"config", "v"}),
        (
            "kube-scheduler",
            {
                "config",
                "authentication-kubeconfig",
                "authorization-kubeconfig",
                "bind-address",
                "secure-port",
                "tls-cipher-suites",
                "v",
            },
        ),
    ],
)
def test_components_with_a_configuration_file_take_only_the_flags_it_has_no_field_for(
    component: str, expected: set[str]
) -> None:
    cluster = cluster_for("supported")
    flags = component_flags(cluster, component, host_of(component))
    assert set(flags) == expected
    # --config names the file the deploy writes; every kubeconfig named is placed on the host.
    config_path = posixpath.join(cluster.kubernetes.config_dir, CONFIG_FILES[component][0])
    assert flags["config"] == config_path
    assert config_path in rendered(cluster, host_of(component))
    placed = {p.path for p in placements(cluster, cluster.host(host_of(component)))}
    connection = config_of(cluster, component, host_of(component)).get("clientConnection", {})
    kubeconfigs = [v for k, v in flags.items() if k.endswith("kubeconfig")]
    kubeconfigs += [connection["kubeconfig"]] if "kubeconfig" in connection else []
    assert kubeconfigs and [k for k in kubeconfigs if k not in placed] == []


def test_the_kubelet_serves_its_api_only_to_authenticated_authorized_clients() -> None:
    cluster = cluster_for("supported")
    config = config_of(cluster, "kubelet", "kube.node02")
    assert config["authentication"] == {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": True},
        "x509": {"clientCAFile": "/etc/kubernetes/ssl/ca.crt"},
    }
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["readOnlyPort"] == 0
    # Its serving certificate is the node's own, as the certificates step places it.
    placed = {p.path: p.source for p in placements(cluster, cluster.host("kube.node02"))}
    assert placed[config["tlsCertFile"]] == "kubelet-server-kube.node02"
    assert placed[config["tlsPrivateKeyFile"]] == "kubelet-server-kube.node02"
    assert placed[config["authentication"]["x509"]["clientCAFile"]] == "ca"


def test_the_kubelet_configuration_holds_the_inventory_values() -> None:
    config = config_of(cluster_for("supported"), "kubelet", "kube.node03")
    data = inventory_data("supported")
    assert config["podCIDR"] == host_data("supported", "kube.node03")["pod_cidr"]
    assert config["clusterDNS"] == ["10.32.0.10"]  # the service range's tenth address
    assert config["clusterDomain"] == data["cluster"]["domain"]
    assert config["kubeReserved"] == {"cpu": "100m", "memory": "128Mi"}
    assert data["kubernetes"]["kube_reserved"] == "cpu=100m,memory=128Mi"
    assert config["nodeStatusUpdateFrequency"] == data["kubernetes"]["node_status_update_frequency"]
    assert config["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert (config["healthzBindAddress"], config["healthzPort"]) == ("127.0.0.1", 10248)


@pytest.mark.parametrize(
    ("cgroup_version", "driver", "fail_cgroup_v1"),
    [(2, "systemd", None), (1, "cgroupfs", False)],
)
def test_fail_cgroup_v1_is_set_false_only_on_a_cgroup_v1_host(
    cgroup_version: int, driver: str, fail_cgroup_v1: bool | None
) -> None:
    config = config_of(
        cluster_for("supported"), "kubelet", "kube.node01", cgroup_version=cgroup_version
    )
    assert config["cgroupDriver"] == driver
    assert config.get("failCgroupV1", "absent") == (
        "absent" if fail_cgroup_v1 is None else fail_cgroup_v1
    )


def test_kube_proxy_is_configured_by_its_file() -> None:
    config = config_of(cluster_for("supported"), "kube-proxy", "kube.node02")
    data = inventory_data("supported")
    assert config["clientConnection"] == {"kubeconfig": "/etc/kubernetes/kube-proxy.kubeconfig"}
    assert config["hostnameOverride"] == "kube.node02"
    assert config["mode"] == "iptables"
    assert config["clusterCIDR"] == data["cluster"]["cluster_cidr"]
    assert config["healthzBindAddress"] == "127.0.0.1:10256"
    assert config["metricsBindAddress"] == "127.0.0.1:10249"
    assert config["conntrack"] == {"maxPerCore": data["kubernetes"]["conntrack_max_per_core"]}
    assert config["conntrack"] == {"maxPerCore": 0}


def test_kube_proxy_keeps_its_conntrack_default_when_the_inventory_sets_none() -> None:
    cluster = cluster_for("supported")
    kubernetes = dataclasses.replace(cluster.kubernetes, conntrack_max_per_core=None)
    config = config_of(dataclasses.replace(cluster, kubernetes=kubernetes), "kube-proxy", NODE)
    assert "conntrack" not in config


def test_the_scheduler_elects_its_leader_with_the_inventorys_timings() -> None:
    config = config_of(cluster_for("supported"), "kube-scheduler", "kube.controller02")
    assert config["clientConnection"] == {"kubeconfig": "/etc/kubernetes/kube-scheduler.kubeconfig"}
    assert config["leaderElection"] == {
        "leaderElect": True,
        "leaseDuration": "4s",
        "renewDeadline": "3s",
        "retryPeriod": "1s",
    }


def test_the_supported_control_plane_flags() -> None:
    cluster = cluster_for("supported")
    apiserver = component_flags(cluster, "kube-apiserver", "kube.controller02")
    assert "insecure-port" not in apiserver and "insecure-bind-address" not in apiserver
    assert apiserver["authorization-mode"] == "Node,RBAC"
    assert apiserver["advertise-address"] == "10.240.0.12"
    assert apiserver["kubelet-certificate-authority"] == "/etc/kubernetes/ssl/ca.crt"
    assert apiserver["kubelet-preferred-address-types"] == "InternalIP,Hostname"
    manager = component_flags(cluster, "kube-controller-manager", "kube.controller02")
    assert manager["cluster-cidr"] == inventory_data("supported")["cluster"]["cluster_cidr"]
    assert manager["allocate-node-cidrs"] == "false"
    assert manager["leader-elect-lease-duration"] == "4s"


def test_the_reference_profile_keeps_the_insecure_port_on_loopback() -> None:
    cluster = cluster_for("1.6")
    flags = component_flags(cluster, "kube-apiserver", "kube.controller01")
    assert flags["insecure-bind-address"] == "127.0.0.1"
    assert flags["authorization-mode"] == "ABAC"
    assert flags["etcd-servers"].startswith("https://10.240.0.11:2379,")
    scheduler = component_flags(cluster, "kube-scheduler", "kube.controller01")
    assert scheduler["master"] == "http://127.0.0.1:8080"
    assert scheduler["leader-elect-lease-duration"] == "4s"


@pytest.mark.parametrize("component", CONTROL_PLANE + WORKER)
def test_every_flag_the_reference_profile_passes_exists_in_1_6(component: str) -> None:
    flags = component_flags(cluster_for("1.6"), component, host_of(component))
    assert sorted(set(flags) - set(SIM_FLAGS["1.6.0"][component])) == []
    assert all(value for value in flags.values()), flags


def test_the_reference_inventory_keeps_the_designs_leader_election_settings() -> None:
    data = yaml.safe_load((REPO_ROOT / "inventory/defaults.yaml").read_text())["data"]
    election = data["kubernetes"]["leader_election"]
    assert election == {"lease_duration": "150s", "renew_deadline": "100s", "retry_period": "20s"}


# Where a component is told to serve its health endpoint: flags, or configuration fields.
SERVING_FLAGS = ("port", "secure-port", "healthz-port", "healthz-bind-address")
SERVING_FIELDS = ("healthzPort", "healthzBindAddress")


def served_ports(files: dict[str, str], component: str) -> set[str]:
    ports = set()
    for path, text in files.items():
        name = posixpath.basename(path)
        if name == f"{component}.env":
            flags = flags_of(text)
            ports |= {flags[f].rsplit(":", 1)[-1] for f in SERVING_FLAGS if f in flags}
        elif name == CONFIG_FILES.get(component, ("",))[0]:
            config = yaml.safe_load(text)
            ports |= {str(config[f]).rsplit(":", 1)[-1] for f in SERVING_FIELDS if f in config}
    return ports


@pytest.mark.parametrize("profile", INVENTORIES)
def test_each_health_url_is_where_the_templates_make_the_component_listen(profile: str) -> None:
    # profiles.yaml says where verify looks; the templates say where the component listens.
    cluster = cluster_for(profile)
    for component, url in cluster.kubernetes.profile.health.items():
        files = rendered(cluster, host_of(component))
        served = served_ports(files, component)
        assert str(urlsplit(url).port) in served, (component, url, served)


@pytest.mark.parametrize(
    ("profile", "cgroups", "warned"),
    [
        (
            "supported",
            {"kube.node01": 1, "kube.node02": 2, "kube.controller01": 1},
            ["kube.node01"],
        ),
        ("supported", {"kube.node01": 2, "kube.node02": 2}, []),
        ("1.6", {"kube.node01": 1, "kube.node02": 1}, []),
    ],
)
def test_a_node_on_cgroup_v1_is_a_warning_where_the_kubelet_refuses_it(
    profile: str, cgroups: dict[str, int], warned: list[str]
) -> None:
    findings = cgroup_warnings(cluster_for(profile), cgroups)
    assert [f.host for f in findings] == warned
    reason = "cgroup v1 is deprecated; kubelet 1.35+ refuses it unless failCgroupV1 is false"
    assert reason == CGROUP_V1
    for finding in findings:
        assert (finding.check, finding.status) == ("kubelet.cgroup", "WARNING")
        assert finding.detail.startswith(reason)


@pytest.mark.parametrize("release", RELEASES)
def test_each_reference_table_was_read_from_its_own_releases_modules(release: str) -> None:
    table = reference(release)
    assert table["release"] == f"v{release}"
    assert table["modules"]["k8s.io/kubernetes"] == f"v{release}"
    staging = f"v0.{release.split('.', 1)[1]}"
    assert {v for m, v in table["modules"].items() if m != "k8s.io/kubernetes"} == {staging}
    assert all(len(flags) > 50 for flags in table["flags"].values())


def test_a_stopping_apiserver_serves_until_every_load_balancer_has_taken_it_out() -> None:
    """haproxy asks /readyz every 2000 ms and takes an apiserver out after 2 failures: the
    apiserver fails /readyz but serves on for 3 intervals once it begins to stop."""
    cluster = cluster_for("supported")
    assert inventory_data("supported")["load_balancer"]["health_check"] == "/readyz"
    flags = component_flags(cluster, "kube-apiserver", "kube.controller01")
    assert flags["shutdown-delay-duration"] == "6s"
