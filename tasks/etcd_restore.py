"""Restoring an etcd member from a snapshot, in steps that can be resumed and rolled back.

Every path a restore uses is named after its restore id R, so a host's state says how far the
restore got there (`D` is the member's data directory):

  D.restore-R.partial   a restore being written (removed and redone on a retry)
  D.restore-R           the complete restored data, not in use yet ("staged")
  D.before-restore-R    the member's original data, once the restored data took its place
                        (an empty directory when there was no original data)

`stage_member` fills D.restore-R beside the data in use; `swap_member` puts it in place;
`unswap_member` puts the original back (the restored data staged again for a re-run). Each
is a no-op where its work is already done, so a re-run after any interruption converges.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from tasks.etcd import UNIT, member_of
from tasks.etcd_backup import REMOTE_DIR
from tasks.files import FileMeta
from tasks.ssh import RemoteError, run
from tasks.systemd import unit_state, unit_states
from tasks.transfer import upload_file


@dataclass(frozen=True)
class RestorePaths:
    live: str
    partial: str
    staged: str
    aside: str
    snapshot: str

    @classmethod
    def of(cls, data_dir: str, restore_id: str) -> RestorePaths:
        return cls(
            live=data_dir,
            partial=f"{data_dir}.restore-{restore_id}.partial",
            staged=f"{data_dir}.restore-{restore_id}",
            aside=f"{data_dir}.before-restore-{restore_id}",
            snapshot=posixpath.join(REMOTE_DIR, f"restore-{restore_id}.db"),
        )


@dataclass(frozen=True)
class MemberState:
    """Which of a member's restore paths exist, and whether its etcd runs."""

    live: bool
    staged: bool
    aside: bool
    running: bool

    @property
    def restored(self) -> bool:
        """The data in use is this restore's (the original is aside)."""
        return self.live and self.aside

    @property
    def original(self) -> bool:
        """The data in use is the member's original data."""
        return self.live and not self.aside

    def describe(self) -> str:
        if self.restored:
            return "restored data in use"
        if self.original:
            return "original data in use" + (", restore staged" if self.staged else "")
        if self.aside:
            return "no data in use: original aside, restored data staged (half swapped)"
        return "no data directory"


def paths(task: Task, restore_id: str) -> RestorePaths:
    return RestorePaths.of(task.host["etcd"]["data_dir"], restore_id)


def exists(task: Task, path: str) -> bool:
    return run(task, ["test", "-e", path], sudo=True, ok_codes=(0, 1)).rc == 0


def state_of(task: Task, where: RestorePaths) -> MemberState:
    return MemberState(
        live=exists(task, where.live),
        staged=exists(task, where.staged),
        aside=exists(task, where.aside),
        running=unit_state(task, UNIT)[1],
    )


def restore_command(
    cluster: Cluster, name: str, snapshot: str, data_dir: str, token: str
) -> list[str]:
    """The restore of `snapshot` into `data_dir` for member `name`, with the cluster's peers.

    `token` is the restore's own: members restored with it form a new cluster (new cluster and
    member ids) that members still on the original data can never join, nor it them.
    """
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
        f"--initial-cluster-token={token}",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--data-dir={data_dir}",
    ]


def upload_snapshot(task: Task, *, snapshot: Path, restore_id: str) -> Result:
    """Copy the snapshot from the control machine to this member, root's and 0600 in a directory
    only root may enter (a non-root SSH user's copy is staged and installed through sudo)."""
    remote = paths(task, restore_id).snapshot
    run(task, ["mkdir", "-p", "-m", "0700", REMOTE_DIR], sudo=True)
    upload_file(task, snapshot, remote, meta=FileMeta("0600", "root", "root"))
    return Result(host=task.host, result=remote)


def inspect_member(task: Task, *, restore_id: str) -> Result:
    """This member's MemberState for restore `restore_id`."""
    return Result(host=task.host, result=state_of(task, paths(task, restore_id)))


def stop_etcd(task: Task) -> Result:
    """Stop this member's etcd; changed when it was running (or waiting out its RestartSec)."""
    running = unit_states(task, [UNIT])[UNIT][1]
    if running:
        run(task, ["systemctl", "stop", UNIT], sudo=True, timeout=120)
    return Result(host=task.host, changed=running, diff=f"stopped {UNIT}\n" if running else "")


def stage_member(task: Task, *, cluster: Cluster, restore_id: str, token: str) -> Result:
    """Write the restored data beside the data in use (D.restore-R); the live data untouched."""
    where = paths(task, restore_id)
    state = state_of(task, where)
    if state.staged or state.aside:
        return Result(host=task.host, changed=False, result="already staged or swapped")
    member = member_of(cluster, task.host.name)
    run(task, ["rm", "-rf", "--", where.partial], sudo=True)
    command = restore_command(cluster, member.name, where.snapshot, where.partial, token)
    run(task, command, sudo=True, timeout=300)
    run(task, ["chown", "-R", f"{cluster.etcd.user}:{cluster.etcd.user}", where.partial], sudo=True)
    run(task, ["chmod", "0700", where.partial], sudo=True)
    # Complete or absent: only a finished restore ever has the staged name.
    run(task, ["mv", "-T", "--", where.partial, where.staged], sudo=True)
    return Result(host=task.host, changed=True, diff=f"{where.staged}: restored, staged\n")


def swap_member(task: Task, *, restore_id: str) -> Result:
    """Put the staged data in use, the original aside (D.before-restore-R); resumes a half swap."""
    where = paths(task, restore_id)
    state = state_of(task, where)
    if state.restored:
        return Result(host=task.host, changed=False, result="already swapped")
    if not state.staged:
        raise RemoteError(f"{task.host.name}: nothing staged at {where.staged}")
    if state.live:
        run(task, ["mv", "-T", "--", where.live, where.aside], sudo=True)
    elif not state.aside:  # no original data: an empty directory says so
        run(task, ["mkdir", "-m", "0700", "--", where.aside], sudo=True)
    run(task, ["mv", "-T", "--", where.staged, where.live], sudo=True)
    diff = f"{where.live}: restored data in use (original data in {where.aside})\n"
    return Result(host=task.host, changed=True, diff=diff)


def unswap_member(task: Task, *, restore_id: str) -> Result:
    """Put the original data back in use; the restored data is staged again for a re-run."""
    where = paths(task, restore_id)
    state = state_of(task, where)
    if not state.aside:
        return Result(host=task.host, changed=False, result="original data in use")
    if state.live:
        if state.staged:
            raise RemoteError(f"{task.host.name}: both {where.live} and {where.staged} exist")
        run(task, ["mv", "-T", "--", where.live, where.staged], sudo=True)
    # An empty directory aside stood for "no original data": nothing to put back.
    if run(task, ["rmdir", "--", where.aside], sudo=True, ok_codes=range(256)).rc != 0:
        run(task, ["mv", "-T", "--", where.aside, where.live], sudo=True)
    return Result(host=task.host, changed=True, diff=f"{where.live}: original data back in use\n")


def start_etcd(task: Task) -> Result:
    """Start this member without waiting: a restored cluster needs a quorum to report ready.

    Never without a data directory: an empty one would bootstrap from the configuration.
    """
    data_dir = task.host["etcd"]["data_dir"]
    if not exists(task, data_dir):
        raise RemoteError(f"{task.host.name}: no {data_dir}: etcd left stopped")
    running = unit_state(task, UNIT)[1]
    run(task, ["systemctl", "start", "--no-block", UNIT], sudo=True)
    return Result(host=task.host, changed=not running, diff="" if running else f"started {UNIT}\n")


def clean_up(task: Task, *, restore_id: str) -> Result:
    """Remove what a finished (or abandoned) restore left beside the data: the snapshot copy, a
    partial restore, staged data not in use. The original data aside is kept."""
    where = paths(task, restore_id)
    run(task, ["rm", "-rf", "--", where.partial, where.staged], sudo=True)
    run(task, ["rm", "-f", "--", where.snapshot], sudo=True)
    return Result(host=task.host, changed=False)
