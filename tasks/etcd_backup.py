"""etcd snapshots: save on a member and fetch to the control machine (restore: etcd_restore)."""

from __future__ import annotations

import posixpath
from pathlib import Path

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks import etcdctl
from tasks.etcd import client_tls, member_of
from tasks.ssh import run
from tasks.transfer import fetch_file

REMOTE_DIR = "/var/lib/kubenorn"


def backup_path(run_id: str) -> str:
    """The snapshot's remote path for run `run_id`: two backups never share a file."""
    return posixpath.join(REMOTE_DIR, f"backup-{run_id}.db")


def fetch_snapshot(task: Task, *, cluster: Cluster, destination: Path, run_id: str) -> Result:
    """Save a snapshot on this member and copy it to `destination` on the control machine.

    The snapshot is root's, in a directory only root may enter: etcdctl saves it through sudo,
    and a non-root SSH user fetches it through a private copy (tasks.transfer.fetch_file)."""
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
        fetch_file(task, remote, destination)
    finally:
        run(task, ["rm", "-f", remote], sudo=True)
    return Result(host=task.host, changed=False, result=str(destination))
