"""etcd members: configuration, unit drop-in, data directory, and quorum-safe restarts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nornir.core.task import Result, Task

from tasks import etcdctl
from tasks.etcdctl import ClientTls
from tasks.files import ensure_directory
from tasks.ssh import RemoteError, run
from tasks.systemd import (
    ensure_dropin,
    ensure_service,
    owe_restart,
    owed_marker,
    restart_owed,
)
from tasks.templates import ensure_rendered, render

UNIT = "etcd"
HEALTH_WAIT = 90.0


class QuorumRefused(RemoteError):
    """A restart was refused because the cluster was not healthy before it."""


@dataclass(frozen=True)
class EtcdRollout:
    """What restarting one member safely needs: the TLS files, endpoints and snapshot place."""

    tls: ClientTls
    endpoints: tuple[str, ...]
    snapshot_dir: str
    force: bool = False


def ensure_etcd_config(
    task: Task, *, config: dict[str, Any], config_file: str, dry_run: bool | None = None
) -> Result:
    """Ensure etcd's data directory, environment file and drop-in; owe a restart on change."""
    user = config["user"]
    steps = [
        task.run(task=ensure_directory, path=config["data_dir"], mode="0700", owner=user,
                 dry_run=dry_run),
        task.run(task=ensure_rendered, template="etcd/etcd.conf.j2", path=config_file,
                 data={"etcd": config}, mode="0644", dry_run=dry_run),
        task.run(task=ensure_dropin, unit=UNIT, name="kubenorn", dry_run=dry_run,
                 content=render(task, "systemd/env-dropin.conf.j2", environment_file=config_file)),
    ]  # fmt: skip
    # Collect every step's outcome (a generator with any() would stop early).
    changed = [step.changed for step in steps]
    if any(changed[1:]):
        task.run(task=owe_restart, unit=UNIT, dry_run=dry_run)
    diff = "".join(step[0].diff or "" for step in steps)
    return Result(host=task.host, changed=any(changed), diff=diff)


def cluster_is_formed(task: Task, rollout: EtcdRollout) -> bool:
    """Whether any configured endpoint answers healthy: if none does, this is a first start."""
    return any(e.healthy for e in etcdctl.health(task, rollout.tls, rollout.endpoints))


def start_unformed(task: Task, *, dry_run: bool | None = None) -> Result:
    """Start (or restart into the new configuration) a member of a cluster not yet formed."""
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would start {UNIT} (first start)\n")
    # --no-block: a member of a new cluster reports ready only once a quorum has started.
    run(task, ["systemctl", "enable", UNIT], sudo=True)
    run(task, ["systemctl", "restart", "--no-block", UNIT], sudo=True)
    run(task, ["rm", "-f", owed_marker(UNIT)], sudo=True)
    return Result(host=task.host, changed=True, diff=f"start {UNIT} (first start)\n")


def restart_member(task: Task, *, rollout: EtcdRollout, dry_run: bool | None = None) -> Result:
    """Restart this member if it owes one: health-gated, with a snapshot first."""
    if not restart_owed(task, UNIT):
        return task.run(task=ensure_service, unit=UNIT, dry_run=dry_run)[0]
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would restart {UNIT}\n")
    unhealthy = [e for e in etcdctl.health(task, rollout.tls, rollout.endpoints) if not e.healthy]
    if unhealthy and not rollout.force:
        names = ", ".join(f"{e.endpoint} ({e.error})" for e in unhealthy)
        raise QuorumRefused(
            f"{task.host.name}: refusing to restart etcd while the cluster is "
            f"unhealthy: {names}; use --force to override"
        )
    snapshot = take_snapshot(task, rollout)
    task.run(task=ensure_service, unit=UNIT, restart=True)
    wait_healthy(task, rollout)
    return Result(
        host=task.host,
        changed=True,
        diff=f"restart {UNIT} (snapshot {snapshot or 'skipped: forced'})\n",
    )


def take_snapshot(task: Task, rollout: EtcdRollout) -> str:
    """Save a snapshot from this member before it restarts; its path on the host."""
    own = own_endpoint(task, rollout)
    if rollout.force and not any(e.healthy for e in etcdctl.health(task, rollout.tls, [own])):
        return ""
    path = f"{rollout.snapshot_dir}/{task.host.name}-{time.strftime('%Y%m%dT%H%M%S')}.db"
    run(task, ["mkdir", "-p", "-m", "0700", rollout.snapshot_dir], sudo=True)
    command = etcdctl.etcdctl_command(
        rollout.tls, [own], "snapshot", "save", path, json_output=False
    )
    run(task, command, sudo=True, timeout=120)
    return path


def own_endpoint(task: Task, rollout: EtcdRollout) -> str:
    """The client URL of this host's member."""
    address = str(task.host.get("address"))
    own = [e for e in rollout.endpoints if f"//{address}:" in e or f"[{address}]" in e]
    if not own:
        raise RemoteError(f"{task.host.name}: no etcd endpoint for address {address}")
    return own[0]


def wait_healthy(task: Task, rollout: EtcdRollout, timeout: float = HEALTH_WAIT) -> None:
    """Wait until this member is healthy and every member agrees on one leader."""
    own = own_endpoint(task, rollout)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        healthy = any(e.healthy for e in etcdctl.health(task, rollout.tls, [own]))
        leaders = {s.leader_id for s in etcdctl.status(task, rollout.tls, rollout.endpoints)}
        if healthy and len(leaders) == 1 and 0 not in leaders:
            return
        last = f"member healthy: {healthy}, leaders seen: {sorted(leaders) or 'none'}"
        time.sleep(0.5)
    raise RemoteError(f"{task.host.name}: etcd not healthy {timeout:.0f}s after restart ({last})")
