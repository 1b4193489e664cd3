"""The load balancer in front of the apiservers: haproxy, health-checking every controller."""

from __future__ import annotations

from nornir.core.inventory import Host
from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from tasks.compose import combined
from tasks.packages import ensure_packages
from tasks.ssh import run
from tasks.systemd import ConfigFile, ensure_service, ensure_unit_config, unit_state
from tasks.templates import render

UNIT = "haproxy.service"


def load_balanced(host: Host) -> bool:
    """Nodes run the load balancer; controllers too where the inventory asks."""
    groups = {group.name for group in host.groups}
    on_controllers = "controllers" in groups and host["load_balancer"]["on_controllers"]
    return "nodes" in groups or on_controllers


def haproxy_config(task: Task, cluster: Cluster) -> ConfigFile:
    """haproxy.cfg: the apiserver endpoint's address and port, every controller behind it."""
    settings = task.host["load_balancer"]
    servers = [
        {"name": c.name, "address": str(c.address), "port": cluster.apiserver.port}
        for c in cluster.controllers
    ]
    content = render(
        task,
        "haproxy/haproxy.cfg.j2",
        servers=servers,
        bind_address=str(cluster.apiserver.address or "127.0.0.1"),
        port=cluster.apiserver.port,
        health_check=settings["health_check"],
        check=health_check(task.host),
    )
    return ConfigFile(settings["config_file"], content)


def health_check(host: Host) -> dict[str, int]:
    """How often haproxy asks each apiserver, and after how many answers it takes it out or
    puts it back (the inventory's load_balancer settings)."""
    settings = host["load_balancer"]
    return {
        "interval_ms": int(settings["check_interval_ms"]),
        "fall": int(settings["check_fall"]),
        "rise": int(settings["check_rise"]),
    }


def drain_seconds(host: Host) -> float:
    """How long after an apiserver stops being ready every haproxy has taken it out: its
    checks failing `fall` times, one interval apart, from a check that may have just passed."""
    check = health_check(host)
    return check["interval_ms"] * (check["fall"] + 1) / 1000


def ensure_load_balancer(task: Task, *, cluster: Cluster, dry_run: bool | None = None) -> Result:
    """Ensure haproxy sends the apiserver endpoint to every healthy apiserver."""
    settings = task.host["load_balancer"]
    steps = [
        task.run(task=ensure_packages, packages=settings["packages"], dry_run=dry_run),
        task.run(
            task=ensure_unit_config,
            unit=UNIT,
            files=[haproxy_config(task, cluster)],
            dry_run=dry_run,
        ),
        task.run(task=ensure_service, unit=UNIT, dry_run=dry_run),
    ]
    return combined(task, steps)


def check_load_balancer(task: Task) -> Result:
    """A finding: is haproxy active with a configuration it accepts? (Reads only.)"""
    config = task.host["load_balancer"]["config_file"]
    _, active = unit_state(task, UNIT)
    # sudo for its PATH: haproxy is in /usr/sbin, outside an ordinary user's PATH.
    valid = run(task, ["haproxy", "-c", "-q", "-f", config], sudo=True, ok_codes=range(256))
    problems = ([] if active else [f"{UNIT} is not active"]) + (
        [] if valid.rc == 0 else [f"{config} invalid: {valid.stderr.strip()[-300:]}"]
    )
    finding = Finding(
        "load-balancer",
        task.host.name,
        "WARNING" if problems else "OK",
        "; ".join(problems) or "haproxy active, configuration valid",
    )
    return Result(host=task.host, result=[finding], record_data=[finding.as_dict()])
