"""Files copied between the control machine and a host (etcd snapshots), whatever the SSH user.

A snapshot is root's, 0600, in a directory only root may enter: root's SFTP reads and writes it
directly; any other user's copy goes through a private file in /tmp that the user owns.
"""

from __future__ import annotations

from pathlib import Path

from nornir.core.task import Task

from kubenorn.private_files import fetch_private
from tasks.files import FileMeta, is_root, put_file, sftp, staged_path, write_private
from tasks.ssh import RemoteError, run


def upload_file(task: Task, source: Path, path: str, *, meta: FileMeta) -> None:
    """Copy the local file `source` to `path` on the host atomically with `meta`, streamed (an
    etcd snapshot need not fit in memory); a non-root user's copy is staged and installed with
    sudo, as every put is."""
    try:
        local = source.open("rb")
    except OSError as error:
        raise RemoteError(f"{task.host.name}: cannot read {source}: {error}") from error
    with local:
        put_file(task, path, local, meta=meta)


def fetch_file(task: Task, path: str, destination: Path) -> None:
    """Copy `path` on the host to `destination` here, 0600 from creation, whole or not at all.

    A non-root user may not read a root-only file over SFTP: sudo copies it into a private
    file the user created and owns (cp into an existing file keeps its owner and mode), which
    is fetched, then removed."""
    client = sftp(task)
    if is_root(task):
        fetch_private(client, path, destination)
        return
    staged = staged_path(path)
    try:
        write_private(client, staged, b"")
        run(task, ["cp", "--", path, staged], sudo=True)
        fetch_private(client, staged, destination)
    except OSError as error:
        raise RemoteError(f"{task.host.name}: cannot fetch {path}: {error}") from error
    finally:
        run(task, ["rm", "-f", "--", staged])
