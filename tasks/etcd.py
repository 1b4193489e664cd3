"""etcd members: configuration, unit drop-in, data directory, and quorum-safe restarts."""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster, EtcdMember, Host, url
from kubenorn.pki.placement import placements
from kubenorn.pki.plan import ETCD_CA
from tasks import etcdctl, host_state
from tasks.etcdctl import ClientTls
from tasks.files import ensure_directory, ensure_file
from tasks.ssh import RemoteError, run
from tasks.systemd import (
    ConfigFile,
    ensure_service,
    ensure_unit_config,
    owed_marker,
    restart_owed,
)
from tasks.templates import render

UNIT = "etcd.service"
HEALTH_WAIT = 90.0


class QuorumRefused(RemoteError):
    """A restart was refused because the cluster was not healthy before it."""


@dataclass(frozen=True)
class EtcdRollout:
    """What restarting one member safely needs: the TLS files, endpoints and snapshot place."""

    tls: ClientTls
    endpoints: tuple[str, ...]
    snapshot_dir: str
    version: str
    force: bool = False


def ensure_etcd_config(
    task: Task,
    *,
    config: dict[str, Any],
    restart: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Ensure etcd's data directory, environment files and drop-in; owe a restart on a change
    etcd reads at every start (or when `restart`: its certificates changed)."""
    data_dir = task.run(
        task=ensure_directory,
        path=config["data_dir"],
        mode="0700",
        owner=config["user"],
        dry_run=dry_run,
    )
    # Root's alone, as the unit's drop-in (CIS 1.1.7, 1.1.8): systemd reads both as root.
    files = [
        ConfigFile(config["config_file"], render(task, "etcd/etcd.conf.j2", etcd=config), "0600"),
        ConfigFile(
            config["initial_file"],
            render(task, "etcd/etcd-initial.conf.j2", etcd=config),
            "0600",
            restarts=False,
        ),
    ]
    environment_files = [config["config_file"], config["initial_file"]]
    dropin = render(task, "systemd/env-dropin.conf.j2", environment_files=environment_files)
    unit = task.run(
        task=ensure_unit_config,
        unit=UNIT,
        files=files,
        dropin=dropin,
        unit_mode="0600",
        restart=restart,
        dry_run=dry_run,
    )
    return Result(
        host=task.host,
        changed=data_dir.changed or unit.changed,
        diff=(data_dir[0].diff or "") + (unit[0].diff or ""),
    )


def start_unformed(task: Task, *, dry_run: bool | None = None) -> Result:
    """Start (or restart into the new configuration) a member of a cluster not yet formed."""
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would start {UNIT} (first start)\n")
    start_without_waiting(task)
    return Result(host=task.host, changed=True, diff=f"start {UNIT} (first start)\n")


def start_without_waiting(task: Task) -> None:
    """Enable and (re)start etcd without waiting for it to report ready, which a founding
    member does only once a quorum has started, and a joining one once it has caught up."""
    host_state.forget_unit(task, UNIT)
    run(task, ["systemctl", "enable", UNIT], sudo=True)
    run(task, ["systemctl", "restart", "--no-block", UNIT], sudo=True)
    run(task, ["rm", "-f", owed_marker(UNIT)], sudo=True)
    host_state.gone(task, owed_marker(UNIT))


def rollout_of(task: Task, cluster: Cluster, *, force: bool = False) -> EtcdRollout:
    """What restarting this host's member needs, from the inventory."""
    return EtcdRollout(
        tls=client_tls(cluster, cluster.host(task.host.name)),
        endpoints=cluster.etcd.client_urls,
        snapshot_dir=task.host["etcd"]["snapshot_dir"],
        version=cluster.etcd.version,
        force=force,
    )


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
    handed_over = hand_over_leadership(task, rollout)
    task.run(task=ensure_service, unit=UNIT, restart=True)
    wait_healthy(task, rollout)
    note = f"; leadership moved to {handed_over}" if handed_over else ""
    return Result(
        host=task.host,
        changed=True,
        diff=f"restart {UNIT} (snapshot {snapshot or 'skipped: forced'}{note})\n",
    )


def hand_over_leadership(task: Task, rollout: EtcdRollout) -> str:
    """If this member leads, move leadership to a healthy peer first (etcd 3.3+); its name.

    Restarting a leader makes the others wait an election timeout with no leader; a
    transfer first keeps the cluster serving writes throughout the rolling restart.
    """
    own = own_endpoint(task, rollout)
    mine = etcdctl.status(task, rollout.tls, [own])
    if not mine or mine[0].leader_id != mine[0].member_id:
        return ""
    healthy = {
        e.endpoint
        for e in etcdctl.health(task, rollout.tls, rollout.endpoints)
        if e.healthy and e.endpoint != own
    }
    peers = [
        m
        for m in etcdctl.members(task, rollout.tls, [own])
        if m.member_id != mine[0].member_id and healthy & set(m.client_urls)
    ]
    if not peers or version_tuple(rollout.version) < (3, 3):
        return ""
    command = etcdctl.etcdctl_command(
        rollout.tls, [own], "move-leader", f"{peers[0].member_id:x}", json_output=False
    )
    run(task, command, sudo=True)
    return peers[0].name


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


def is_member(cluster: Cluster, host: str) -> bool:
    return any(member.host.name == host for member in cluster.etcd.members)


def member_of(cluster: Cluster, host: str) -> EtcdMember:
    """The etcd member on inventory host `host`."""
    for member in cluster.etcd.members:
        if member.host.name == host:
            return member
    raise RemoteError(f"{host} is not an etcd member in the inventory")


def placed(cluster: Cluster, host: Host, kind: str, source: str) -> str:
    """Where the PKI plan puts `kind` of `source` on `host` (one source of truth for paths)."""
    for placement in placements(cluster, host):
        if placement.kind == kind and placement.source == source:
            return placement.path
    raise ValueError(f"{host.name}: the PKI plan places no {kind} of {source}")


def client_tls(cluster: Cluster, host: Host) -> ClientTls:
    """The files etcdctl uses on an etcd member: the etcd CA and the health-check client."""
    return ClientTls(
        ca=placed(cluster, host, "cert", ETCD_CA),
        cert=placed(cluster, host, "cert", "etcd-healthcheck-client"),
        key=placed(cluster, host, "key", "etcd-healthcheck-client"),
    )


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def etcd_config(
    cluster: Cluster, member: EtcdMember, settings: dict[str, Any], *, formed: bool
) -> dict[str, Any]:
    """The data etcd's templates render for `member` (`formed`: the cluster runs already, so a
    member starting without data joins it): every decision made here, in Python."""
    host, etcd = member.host, cluster.etcd
    return {
        "version": etcd.version,
        "name": member.name,
        "user": etcd.user,
        "config_file": settings["config_file"],
        "initial_file": settings["initial_file"],
        "data_dir": settings["data_dir"],
        "listen_peer_urls": [member.peer_url],
        "listen_client_urls": [member.client_url, url(ip_address("127.0.0.1"), etcd.client_port)],
        "peer_url": member.peer_url,
        "client_url": member.client_url,
        "initial_cluster": etcd.initial_cluster,
        "initial_cluster_state": "existing" if formed else "new",
        "initial_cluster_token": f"{cluster.name}-etcd",
        "cert_file": placed(cluster, host, "cert", f"etcd-server-{host.name}"),
        "key_file": placed(cluster, host, "key", f"etcd-server-{host.name}"),
        "peer_cert_file": placed(cluster, host, "cert", f"etcd-peer-{host.name}"),
        "peer_key_file": placed(cluster, host, "key", f"etcd-peer-{host.name}"),
        "trusted_ca_file": placed(cluster, host, "cert", ETCD_CA),
        "heartbeat_interval_ms": int(settings["heartbeat_interval_ms"]),
        "election_timeout_ms": int(settings["election_timeout_ms"]),
        "log_level": settings["log_level"],
        # etcd 3.4 brought the zap logger; 3.1-3.3 take per-package log levels.
        "has_structured_logger": version_tuple(etcd.version) >= (3, 4),
    }


# systemd applies drop-ins in file-name order, later ones winning: "zz-" sorts after kubenorn's
# own "kubenorn.conf" (Restart=on-failure), which "kubenorn-drill.conf" did not ('-' < '.'),
# so the killed leader came back 2 s later and could win the election again.
DRILL_DROPIN = "/run/systemd/system/etcd.service.d/zz-kubenorn-drill.conf"


def kill_member(task: Task) -> Result:
    """SIGKILL this member's etcd and keep systemd from restarting it until revived."""
    # A runtime drop-in (gone at reboot): without it Restart=on-abnormal revives etcd at once.
    task.run(task=ensure_directory, path=posixpath.dirname(DRILL_DROPIN))
    # 0600 like every unit file kubenorn writes (CIS 1.1.7): verify may run during a drill.
    task.run(task=ensure_file, path=DRILL_DROPIN, content="[Service]\nRestart=no\n", mode="0600")
    run(task, ["systemctl", "daemon-reload"], sudo=True)
    run(task, ["systemctl", "kill", "--signal=SIGKILL", "--kill-who=main", UNIT], sudo=True)
    return Result(host=task.host, changed=True, diff=f"killed {UNIT} (SIGKILL)\n")


def revive_member(task: Task) -> Result:
    """Undo kill_member: drop the runtime drop-in and start etcd again."""
    run(task, ["rm", "-f", DRILL_DROPIN], sudo=True)
    run(task, ["systemctl", "daemon-reload"], sudo=True)
    run(task, ["systemctl", "start", "--no-block", UNIT], sudo=True)
    return Result(host=task.host, changed=True, diff=f"started {UNIT}\n")
