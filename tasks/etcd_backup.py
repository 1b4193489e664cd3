"""etcd snapshots: save on a member and fetch to the control machine; restore every member."""

from __future__ import annotations

import posixpath
import time
from pathlib import Path

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.private_files import fetch_private
from tasks import etcdctl
from tasks.etcd import UNIT, client_tls, member_of
from tasks.files import sftp
from tasks.ssh import run

REMOTE_DIR = "/var/lib/kubenorn"


def backup_path(run_id: str) -> str:
    """The snapshot's remote path for run `run_id`: two backups never share a file."""
    return posixpath.join(REMOTE_DIR, f"backup-{run_id}.db")


def fetch_snapshot(task: Task, *, cluster: Cluster, destination: Path, run_id: str) -> Result:
    """Save a snapshot on this member and copy it to `destination` on the control machine."""
    member = member_of(cluster, task.host.name)
    remote = backup_path(run_id)
    run(task, ["mkdir", "-p", "-m", "0700", REMOTE_DIR], sudo=True)
    command = etcdctl.etcdctl_command(
        client_tls(cluster, member.host),
        [member.client_url],
        "snapshot",
        "save",
        remote,
        json_output=False,
    )
    run(task, command, sudo=True, timeout=300)
    try:
        fetch_private(sftp(task), remote, destination)
    finally:
        run(task, ["rm", "-f", remote], sudo=True)
    return Result(host=task.host, changed=False, result=str(destination))


def restore_command(cluster: Cluster, name: str, snapshot: str, data_dir: str) -> list[str]:
    """The restore of `snapshot` into `data_dir` for member `name`, with the cluster's peers."""
    member = next(m for m in cluster.etcd.members if m.name == name)
    return [
        "env",
        "ETCDCTL_API=3",
        "etcdctl",
        "snapshot",
        "restore",
        snapshot,
        f"--name={member.name}",
        f"--initial-cluster={cluster.etcd.initial_cluster}",
        f"--initial-cluster-token={cluster.name}-etcd",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--data-dir={data_dir}",
    ]


def upload_snapshot(task: Task, *, snapshot: Path) -> Result:
    """Copy the snapshot from the control machine to this member."""
    remote = posixpath.join(REMOTE_DIR, "restore-snapshot.db")
    run(task, ["mkdir", "-p", "-m", "0700", REMOTE_DIR], sudo=True)
    sftp(task).put(str(snapshot), remote)
    return Result(host=task.host, result=remote)


def stop_etcd(task: Task) -> Result:
    """Stop this member's etcd."""
    run(task, ["systemctl", "stop", UNIT], sudo=True, timeout=120)
    return Result(host=task.host, changed=True)


def restore_member(task: Task, *, cluster: Cluster) -> Result:
    """Replace this member's data directory with the uploaded snapshot, keeping the old aside."""
    member = member_of(cluster, task.host.name)
    data_dir = task.host["etcd"]["data_dir"]
    snapshot = posixpath.join(REMOTE_DIR, "restore-snapshot.db")
    aside = f"{data_dir}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
    staged = f"{data_dir}.restoring"
    run(task, ["rm", "-rf", "--", staged], sudo=True)
    # Restore beside the data directory first: a failed restore leaves the old one in place.
    run(task, restore_command(cluster, member.name, snapshot, staged), sudo=True, timeout=300)
    run(task, ["chown", "-R", f"{cluster.etcd.user}:{cluster.etcd.user}", staged], sudo=True)
    run(task, ["chmod", "0700", staged], sudo=True)
    exists = run(task, ["test", "-e", data_dir], ok_codes=(0, 1)).rc == 0
    if exists:
        run(task, ["mv", "-T", "--", data_dir, aside], sudo=True)
    run(task, ["mv", "-T", "--", staged, data_dir], sudo=True)
    run(task, ["rm", "-f", snapshot], sudo=True)
    return Result(
        host=task.host, changed=True, diff=f"{data_dir}: restored (previous data kept in {aside})\n"
    )


def start_etcd(task: Task) -> Result:
    """Start this member without waiting: a restored cluster needs a quorum to report ready."""
    run(task, ["systemctl", "start", "--no-block", UNIT], sudo=True)
    return Result(host=task.host, changed=True)
