"""The container runtime of a node: containerd or docker, configured from inventory data."""

from __future__ import annotations

from typing import Any

from nornir.core.task import Result, Task

from kubenorn.findings import Finding
from tasks.compose import combined
from tasks.facts import facts_of
from tasks.packages import ensure_packages
from tasks.ssh import RemoteError, run
from tasks.systemd import ConfigFile, ensure_service, ensure_unit_config
from tasks.templates import render

UNITS = {"containerd": "containerd.service", "docker": "docker.service"}


def runtime_settings(task: Task) -> tuple[str, dict[str, Any]]:
    """The runtime kind (containerd or docker) and its settings, from the inventory."""
    settings = task.host["runtime"]
    kind = settings["kind"]
    if kind not in UNITS:
        raise RemoteError(f"{task.host.name}: runtime.kind {kind!r}: use containerd or docker")
    return kind, settings


def runtime_config(task: Task, kind: str, settings: dict[str, Any]) -> ConfigFile:
    """The runtime's configuration file, rendered from inventory data and facts."""
    if kind == "containerd":
        containerd = settings["containerd"]
        systemd_cgroup = facts_of(task).cgroup_version == 2
        content = render(
            task,
            "containerd/config.toml.j2",
            socket=containerd["socket"],
            systemd_cgroup=systemd_cgroup,
        )
        return ConfigFile(containerd["config_file"], content)
    docker = settings["docker"]
    if docker.get("tcp"):
        # The reference design's tcp://0.0.0.0:2375 gave root to anyone who could reach it.
        raise RemoteError(
            f"{task.host.name}: runtime.docker.tcp: docker's API on TCP needs "
            "TLS client certificates, which kubenorn does not issue yet; leave it null"
        )
    return ConfigFile(
        docker["config_file"], render(task, "docker/daemon.json.j2", daemon=docker["daemon"])
    )


def ensure_runtime(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure the inventory's container runtime is installed, configured and running."""
    kind, settings = runtime_settings(task)
    unit = UNITS[kind]
    steps = [
        task.run(task=ensure_packages, packages=settings["packages"][kind], dry_run=dry_run),
        task.run(
            task=ensure_unit_config,
            unit=unit,
            files=[runtime_config(task, kind, settings)],
            dry_run=dry_run,
        ),
        task.run(task=ensure_service, unit=unit, dry_run=dry_run),
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
    result = run(task, argv, ok_codes=range(256), timeout=20)
    said = (result.stdout if result.rc == 0 else result.stderr).strip().splitlines()
    return result.rc == 0, (said[-1] if said else f"exit {result.rc}")


def check_runtime(task: Task) -> Result:
    """A finding: does this node's runtime answer on its socket? (Reads only.)"""
    kind, _ = runtime_settings(task)
    answers, said = runtime_answers(task)
    finding = Finding(
        "runtime",
        task.host.name,
        "OK" if answers else "WARNING",
        f"{kind} answers: {said}" if answers else f"{kind} does not answer: {said}",
    )
    return Result(host=task.host, result=[finding], record_data=[finding.as_dict()])
