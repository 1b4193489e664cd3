"""The container runtime of a node: containerd or docker, configured from inventory data, and
the node's CNI configuration (the pod network the runtime sets up for each pod)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster, Host, IPAddress
from kubenorn.docker_api import DockerTls, docker_version
from kubenorn.findings import Finding
from kubenorn.https_probe import PROBE_ERRORS, TIMEOUT, cause, refused_for_no_certificate
from kubenorn.pki.placement import content as pki_content
from kubenorn.pki.placement import docker_tls
from kubenorn.pki.plan import DOCKER_CA, DOCKER_CLIENT
from kubenorn.pki.store import Store
from tasks.compose import combined
from tasks.facts import facts_of
from tasks.files import ensure_absent, ensure_directory, ensure_file
from tasks.packages import ensure_packages
from tasks.pki import cluster_of
from tasks.ssh import RemoteError, run
from tasks.systemd import ConfigFile, ensure_service, ensure_unit_config
from tasks.templates import render

UNITS = {"containerd": "containerd.service", "docker": "docker.service"}
# daemon.json keys kubenorn derives from runtime.docker.tcp; the inventory must not set them.
DOCKER_TLS_KEYS = ("hosts", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey")
# Where containerd's CRI (conf_dir in its config.toml) reads the pod network; the first file
# in name order is the one used. The plugins are Debian's containernetworking-plugins.
CNI_DIR = "/etc/cni/net.d"
CNI_CONFIG = f"{CNI_DIR}/10-kubenorn.conflist"
CNI_BRIDGE = "cni0"
# Where the runtime's shims mount containers' root file systems and shm, and where CNI
# bind-mounts pods' network namespaces (a prefix of their names).
RUNTIME_MOUNTS = ("/run/containerd/", "/run/netns/cni-")
# config.toml sets no `root`: containerd keeps images, snapshots and containers in its default.
CONTAINERD_ROOT = "/var/lib/containerd"
DOCKER_ROOT = "/var/lib/docker"  # dockerd's default data-root


def runtime_state_dir(kind: str, settings: dict[str, Any]) -> str:
    """Where the runtime keeps its images and containers (docker: daemon.json's data-root)."""
    if kind == "docker":
        return str(settings["docker"]["daemon"].get("data-root", DOCKER_ROOT))
    return CONTAINERD_ROOT


def runtime_settings(task: Task) -> tuple[str, dict[str, Any]]:
    """The runtime kind (containerd or docker) and its settings, from the inventory."""
    settings = task.host["runtime"]
    kind = settings["kind"]
    if kind not in UNITS:
        raise RemoteError(f"{task.host.name}: runtime.kind {kind!r}: use containerd or docker")
    return kind, settings


@dataclass(frozen=True)
class RuntimeUnit:
    """What the runtime's unit reads: its files and kubenorn's drop-in (None: none wanted)."""

    unit: str
    files: list[ConfigFile]
    dropin: str | None = None


def runtime_unit(task: Task) -> RuntimeUnit:
    """The runtime's unit, files and drop-in for this node, rendered from inventory and facts."""
    kind, settings = runtime_settings(task)
    if kind == "containerd":
        return RuntimeUnit(UNITS[kind], [containerd_config(task, settings["containerd"])])
    cluster = cluster_of(task)
    host = cluster.host(task.host.name)
    docker = settings["docker"]
    tls = docker_tls(host)
    daemon = docker_daemon(task.host.name, docker["daemon"], [f.path for f in tls])
    daemon_json = render(task, "docker/daemon.json.j2", daemon=daemon)
    files = [ConfigFile(docker["config_file"], daemon_json)]
    if host.docker_tcp is None:
        return RuntimeUnit(UNITS[kind], files)
    store = Store(cluster.pki.dir)
    files += [
        ConfigFile(f.path, pki_content(store, f), f.mode, f.owner, f.group, secret=f.secret)
        for f in tls
    ]
    dropin = render(
        task,
        "docker/tcp.conf.j2",
        exec_start=docker["exec_start"],
        listen=listen_address(host.address, host.docker_tcp.port),
    )
    return RuntimeUnit(UNITS[kind], files, dropin)


def containerd_context(
    containerd: dict[str, Any], cgroup_version: int, pause_image: str | None
) -> dict[str, Any]:
    """What containerd's config.toml holds: its socket, the systemd cgroup driver on cgroup v2,
    the pod sandbox image (kubernetes.pause_image; the kubelet has no flag for it since 1.35),
    or containerd's own default when the inventory names none, whether containers'
    oom_score_adj is kept at or above containerd's own, and its `opt` directory."""
    restrict = containerd.get("restrict_oom_score_adj", False)
    if not isinstance(restrict, bool):
        raise RemoteError(
            f"runtime.containerd.restrict_oom_score_adj: {restrict!r} is not true or false"
        )
    return {
        "socket": containerd["socket"],
        "systemd_cgroup": cgroup_version == 2,
        "sandbox_image": pause_image,
        "restrict_oom_score_adj": restrict,
        "opt_dir": f"{CONTAINERD_ROOT}/opt",  # its `opt` plugin's directory, in its state
    }


def containerd_config(task: Task, containerd: dict[str, Any]) -> ConfigFile:
    """containerd's config.toml for this node, from inventory data and facts."""
    context = containerd_context(
        containerd, facts_of(task).cgroup_version, cluster_of(task).kubernetes.pause_image
    )
    text = render(task, "containerd/config.toml.j2", **context)
    return ConfigFile(containerd["config_file"], text)


def cni_context(cluster: Cluster, host: Host) -> dict[str, Any] | None:
    """The node's pod network for the CNI template: a bridge on its pod_cidr, where the profile
    gives each node its pod range; None where kubenorn writes no CNI configuration."""
    if host.pod_cidr is None or not cluster.kubernetes.profile.node_pod_cidr:
        return None
    default_route = "0.0.0.0/0" if host.pod_cidr.version == 4 else "::/0"
    return {"bridge": CNI_BRIDGE, "pod_cidr": str(host.pod_cidr), "default_route": default_route}


def ensure_cni_config(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure this node's CNI configuration, or its absence where none is wanted.

    The runtime reads the directory on every pod it sets up, so a change restarts nothing.
    containerd also runs the `loopback` plugin for each pod itself, so the list holds only the
    pod's own interface (bridge, with host-local addresses from pod_cidr) and portmap.
    """
    cluster = cluster_of(task)
    context = cni_context(cluster, cluster.host(task.host.name))
    if context is None:
        return task.run(task=ensure_absent, path=CNI_CONFIG, dry_run=dry_run)[0]
    steps = [
        task.run(task=ensure_directory, path=CNI_DIR, dry_run=dry_run),
        task.run(
            task=ensure_file,
            path=CNI_CONFIG,
            content=render(task, "cni/10-kubenorn.conflist.j2", **context),
            mode="0600",  # CIS 1.1.9: the runtime reads it as root
            dry_run=dry_run,
        ),
    ]
    return combined(task, steps)


def docker_daemon(host: str, daemon: dict[str, Any], tls_paths: list[str]) -> dict[str, Any]:
    """daemon.json's settings: the inventory's, plus mutual TLS when the TCP API is on."""
    clashes = [key for key in DOCKER_TLS_KEYS if key in daemon]
    if clashes:
        raise RemoteError(
            f"{host}: runtime.docker.daemon.{clashes[0]}: set by kubenorn from "
            "runtime.docker.tcp (TCP only with TLS client certificates); remove it"
        )
    if not tls_paths:
        return daemon
    ca, cert, key = tls_paths  # docker_tls's order
    tls = {"tls": True, "tlsverify": True, "tlscacert": ca, "tlscert": cert, "tlskey": key}
    return {**daemon, **tls}


def listen_address(address: IPAddress, port: int) -> str:
    """dockerd's -H value for a TCP listener on `address`:`port` (IPv6 in brackets)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"tcp://{host}:{port}"


def ensure_runtime(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure the inventory's container runtime is installed, configured and running, and the
    node's CNI configuration."""
    kind, settings = runtime_settings(task)
    wanted = runtime_unit(task)
    steps = [
        task.run(task=ensure_packages, packages=settings["packages"][kind], dry_run=dry_run),
        task.run(
            task=ensure_unit_config,
            unit=wanted.unit,
            files=wanted.files,
            dropin=wanted.dropin,
            dry_run=dry_run,
        ),
        task.run(task=ensure_service, unit=wanted.unit, dry_run=dry_run),
        task.run(task=ensure_cni_config, dry_run=dry_run),
    ]
    return combined(task, steps)


def runtime_answers(task: Task) -> tuple[bool, str]:
    """Whether the runtime answers a real API call on its socket, and what it said."""
    kind, settings = runtime_settings(task)
    socket = settings[kind]["socket"]
    if kind == "containerd":
        argv = ["ctr", "--address", socket, "--timeout", "5s", "version"]
    else:
        argv = [
            "docker",
            "--host",
            f"unix://{socket}",
            "version",
            "--format",
            "{{.Server.Version}}",
        ]
    # The runtime's socket is root's (containerd 0660 root:root; docker's group is root's
    # equivalent, never given to the SSH user): through sudo.
    result = run(task, argv, sudo=True, ok_codes=range(256), timeout=20)
    output = result.stdout if result.rc == 0 else result.stderr
    return result.rc == 0, summary_line(output) or f"exit {result.rc}"


def summary_line(output: str) -> str:
    """The line of a runtime's answer worth reporting: the (server's) version, else the last."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    # `ctr version` ends with the server's Version, Revision and UUID.
    versions = [line for line in lines if line.startswith("Version:")]
    return (versions or lines or [""])[-1]


def docker_tcp_findings(task: Task) -> list[Finding]:
    """From the control machine: docker's TCP API answers kubenorn's client, refuses others."""
    cluster = cluster_of(task)
    host = cluster.host(task.host.name)
    if host.docker_tcp is None:
        return []
    store = Store(cluster.pki.dir)
    ca_file = store.cert_path(DOCKER_CA)
    client = (store.cert_path(DOCKER_CLIENT), store.key_path(DOCKER_CLIENT))
    address, port = str(host.address), host.docker_tcp.port
    where = listen_address(host.address, port)
    try:
        version = docker_version(address, port, DockerTls(ca_file, client))
    except PROBE_ERRORS as error:
        detail = f"docker does not answer kubenorn's client certificate on {where}: {error}"
        return [Finding("runtime.tcp", host.name, "WARNING", detail)]
    try:
        docker_version(address, port, DockerTls(ca_file, None))
    except PROBE_ERRORS as error:
        if refused_for_no_certificate(error):
            detail = f"docker {version} on {where}: a client certificate from the docker CA is"
            detail += " required"
            return [Finding("runtime.tcp", host.name, "OK", detail)]
        detail = (
            f"docker {version} on {where}: could not tell whether it refuses a client without a"
            f" certificate: {cause(error, TIMEOUT)}"
        )
        return [Finding("runtime.tcp", host.name, "UNKNOWN", detail)]
    detail = f"docker's API on {where} answers a client without a certificate: root for anyone"
    return [Finding("runtime.tcp", host.name, "CRITICAL", detail)]


def check_runtime(task: Task) -> Result:
    """Findings: does this node's runtime answer on its socket (and TCP, only with TLS)?"""
    kind, _ = runtime_settings(task)
    answers, said = runtime_answers(task)
    findings = [
        Finding(
            "runtime",
            task.host.name,
            "OK" if answers else "WARNING",
            f"{kind} answers: {said}" if answers else f"{kind} does not answer: {said}",
        )
    ]
    if answers:  # a stopped daemon is one finding, not two
        findings += docker_tcp_findings(task)
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])
