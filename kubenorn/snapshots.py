"""Snapshots on the control machine: name, verify (status and a trial restore), prune."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class SnapshotInvalid(Exception):
    """A snapshot failed its status check or its trial restore."""


@dataclass(frozen=True)
class SnapshotStatus:
    revision: int
    total_keys: int
    total_size: int


def snapshot_name(cluster_name: str) -> str:
    return f"etcd-{cluster_name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.db"


def _etcdctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["etcdctl", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            check=False,
        )
    except FileNotFoundError as error:
        raise SnapshotInvalid(
            "etcdctl is not installed on the control machine "
            "(Debian: etcd-client; `make deps` installs it)"
        ) from error


def verify_snapshot(path: Path) -> SnapshotStatus:
    """`snapshot status`, then a trial restore into a temporary directory (the only real proof)."""
    status = _etcdctl("snapshot", "status", str(path), "-w", "json")
    if status.returncode != 0:
        raise SnapshotInvalid(f"{path}: snapshot status failed: {status.stderr.strip()}")
    fields = json.loads(status.stdout)
    with tempfile.TemporaryDirectory(prefix="kubenorn-trial-restore-") as scratch:
        restored = _etcdctl(
            "snapshot",
            "restore",
            str(path),
            "--name=trial",
            "--initial-cluster=trial=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            f"--data-dir={scratch}/data",
        )
        if restored.returncode != 0:
            raise SnapshotInvalid(f"{path}: trial restore failed: {restored.stderr.strip()}")
    return SnapshotStatus(
        int(fields["revision"]), int(fields["totalKey"]), int(fields["totalSize"])
    )


def prune(directory: Path, cluster_name: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots of the cluster; the deleted paths."""
    snapshots = sorted(directory.glob(f"etcd-{cluster_name}-*.db"))
    doomed = snapshots[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink()
    return doomed
