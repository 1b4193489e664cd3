"""Files on a host: read, put atomically, and ensure content, mode and owner with a diff.

Small files travel over SFTP on the same transport as commands (one connection per host).
A put writes a temporary file beside the target and renames it over the target, so a reader,
or a run killed midway, sees the old file or the new one, never a mix.

SFTP acts with the SSH user's own permissions. For a non-root user every read or write of
root's state goes through sudo: a file SFTP may not read is read with `sudo cat`, one it may
not stat with `sudo stat`; a write is staged in a private file under /tmp and put in place with
`sudo install` and `sudo mv` (copies to and from the control machine: tasks.transfer).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import posixpath
import shutil
import stat
import threading
import weakref
from dataclasses import dataclass
from typing import BinaryIO

import paramiko
from nornir.core.task import Result, Task

from kubenorn import kill_point
from tasks import host_state
from tasks.accounts import accounts, forget_accounts, ids_for
from tasks.ssh import CommandError, RemoteError, run, transport

_sftp_clients: weakref.WeakKeyDictionary[paramiko.Transport, paramiko.SFTPClient] = (
    weakref.WeakKeyDictionary()
)
_sftp_lock = threading.Lock()
# Beyond this a line-by-line diff is noise (and memory): report sizes instead.
MAX_DIFF_BYTES = 1024 * 1024
COPY_CHUNK = 1024 * 1024  # bytes per SFTP write when a local file is streamed to a host


@dataclass(frozen=True)
class FileMeta:
    """Mode (octal string, e.g. "0644"), owner and group names of a file on a host."""

    mode: str
    owner: str
    group: str


def sftp(task: Task) -> paramiko.SFTPClient:
    """An SFTP client on this host's transport, opened once and reused."""
    ssh_transport = transport(task)
    with _sftp_lock:
        client = _sftp_clients.get(ssh_transport)
        if client is None:
            client = ssh_transport.open_sftp_client()
            _sftp_clients[ssh_transport] = client
        return client


def read_file(task: Task, path: str) -> bytes | None:
    """The content of `path` on the host, or None when it does not exist."""
    surveyed = host_state.lookup(task, path)
    if surveyed is None:
        return None
    if isinstance(surveyed, host_state.Entry) and surveyed.content is not None:
        return surveyed.content
    try:
        with sftp(task).open(path, "rb") as remote:
            remote.prefetch()
            return remote.read()
    except FileNotFoundError:
        return None
    except PermissionError:
        # Not readable by the SSH user (a 0600 key, a file in a directory only root may
        # search): read it through sudo instead.
        result = run(task, ["cat", "--", path], sudo=True, ok_codes=(0, 1))
        if result.rc == 0:
            return result.stdout.encode()
        if not exists(task, path):
            return None
        raise CommandError(task.host.name, result) from None


def exists(task: Task, path: str) -> bool:
    """Whether `path` exists, asked through sudo (a directory on the way may be root's alone).

    `test` says nothing when it answers no; sudo refusing (no password, not allowed) exits 1
    too but says why, and that is an error, never "missing"."""
    result = run(task, ["test", "-e", path], sudo=True, ok_codes=(0, 1))
    if result.rc == 1 and result.stderr.strip():
        raise CommandError(task.host.name, result)
    return result.rc == 0


def file_meta(task: Task, path: str) -> FileMeta | None:
    """Mode, owner and group of `path`, or None when it does not exist."""
    found = _stat(task, path)
    return found[0] if found is not None else None


def _stat(task: Task, path: str) -> tuple[FileMeta, bool] | None:
    """(FileMeta, whether it is a directory) of `path`, or None when it does not exist."""
    surveyed = host_state.lookup(task, path)
    if surveyed is None:
        return None
    if isinstance(surveyed, host_state.Entry):
        return FileMeta(surveyed.mode, surveyed.owner, surveyed.group), surveyed.kind == "d"
    try:
        attributes = sftp(task).stat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        # In a directory the SSH user may not search (etcd's 0750 certificate directory).
        return _stat_with_sudo(task, path)
    ids = accounts(task)
    if attributes.st_uid not in ids.users.values() or attributes.st_gid not in ids.groups.values():
        # Owned by an account created during this run (a package's service user): read again.
        forget_accounts(task)
        ids = accounts(task)
    meta = FileMeta(
        f"{stat.S_IMODE(attributes.st_mode or 0):04o}",
        ids.user_name(attributes.st_uid),
        ids.group_name(attributes.st_gid),
    )
    return meta, stat.S_ISDIR(attributes.st_mode or 0)


def _stat_with_sudo(task: Task, path: str) -> tuple[FileMeta, bool] | None:
    result = run(task, ["stat", "-c", "%a %U %G %F", "--", path], sudo=True, ok_codes=(0, 1))
    if result.rc != 0:
        if not exists(task, path):
            return None
        raise CommandError(task.host.name, result)
    mode, owner, group, kind = result.stdout.strip().split(" ", 3)
    return FileMeta(mode.zfill(4), owner, group), kind == "directory"


# One round trip for many files: mode, owner, group and name; a separator; each SHA-256.
_SURVEY = 'stat -c "%a %U %G %n" -- "$@"; echo ==; sha256sum -- "$@"'


def files_in_place(task: Task, wanted: dict[str, tuple[bytes, FileMeta]]) -> set[str]:
    """The paths of `wanted` that already hold their content, mode, owner and group."""
    if not wanted:
        return set()
    surveyed = {path: host_state.lookup(task, path) for path in wanted}
    if all(_readable(entry) for entry in surveyed.values()):
        return {
            path
            for path, (content, meta) in wanted.items()
            if isinstance(entry := surveyed[path], host_state.Entry)
            and entry.content == content
            and FileMeta(entry.mode, entry.owner, entry.group) == meta
        }
    # A missing file makes stat and sha256sum exit 1 and say so on stderr; the rest still print.
    survey = run(task, ["sh", "-c", _SURVEY, "sh", *wanted], sudo=True, ok_codes=(0, 1))
    lines = survey.stdout.splitlines()
    cut = lines.index("==")
    metas = {
        path: FileMeta(mode.zfill(4), owner, group)
        for mode, owner, group, path in (line.split(" ", 3) for line in lines[:cut])
    }
    digests = {path: digest for digest, path in (line.split("  ", 1) for line in lines[cut + 1 :])}
    return {
        path
        for path, (content, meta) in wanted.items()
        if metas.get(path) == meta and digests.get(path) == hashlib.sha256(content).hexdigest()
    }


def _readable(entry: host_state.Entry | None | object) -> bool:
    """Whether a surveyed entry answers for content: absent, or a file with its content."""
    if entry is None:
        return True
    return isinstance(entry, host_state.Entry) and entry.kind == "f" and entry.content is not None


def temp_path(path: str) -> str:
    """The temporary file a put writes beside `path`; a fixed name, so a re-run replaces it."""
    directory, name = posixpath.split(path)
    return posixpath.join(directory, f".{name}.kubenorn-tmp")


def put_file(task: Task, path: str, content: bytes | BinaryIO, *, meta: FileMeta) -> None:
    """Write `content` (bytes, or a file object streamed) to `path` atomically with the mode,
    owner and group of `meta`."""
    if not is_root(task):
        _put_with_sudo(task, path, content, meta)
        return
    client, temp = sftp(task), temp_path(path)
    uid, gid = ids_for(task, meta.owner, meta.group)
    try:
        write_private(client, temp, content)
        # chown before the final chmod: Linux clears setuid and setgid bits on chown.
        client.chown(temp, uid, gid)
        client.chmod(temp, int(meta.mode, 8))
        kill_point.reached("file-rename")
        # rename(2) replaces the target in one step: readers never see a partial file.
        client.posix_rename(temp, path)
    except OSError as error:
        host_state.forget(task)  # half done: what the host holds is not known any more
        raise RemoteError(f"{task.host.name}: cannot write {path}: {error}") from error
    _written(task, path, content, meta)


def _written(task: Task, path: str, source: bytes | BinaryIO, meta: FileMeta) -> None:
    """Keep the host's survey true: `path` now holds `source` (a stream: content not kept)."""
    content = source if isinstance(source, bytes) else None
    host_state.put(task, path, host_state.Entry("f", meta.mode, meta.owner, meta.group, content))


def write_private(client: paramiko.SFTPClient, path: str, source: bytes | BinaryIO) -> None:
    """Write `source` to `path` over SFTP, the file made 0600 before any content arrives (the
    final mode may be wider, never narrower; /tmp is shared and the content may be a key)."""
    with client.open(path, "wb") as remote:
        client.chmod(path, 0o600)
        remote.set_pipelined(True)
        if isinstance(source, bytes):
            remote.write(source)
        else:
            shutil.copyfileobj(source, remote, COPY_CHUNK)


def staged_path(path: str) -> str:
    """Where a non-root user stages a copy of `path` in /tmp (private to it: 0600, its own)."""
    return f"/tmp/.kubenorn-{threading.get_ident()}-{posixpath.basename(path)}"


def _put_with_sudo(task: Task, path: str, source: bytes | BinaryIO, meta: FileMeta) -> None:
    staged = staged_path(path)
    try:
        write_private(sftp(task), staged, source)
    except OSError as error:
        raise RemoteError(f"{task.host.name}: cannot stage {path}: {error}") from error
    temp = temp_path(path)
    install = ["install", "-m", meta.mode, "-o", meta.owner, "-g", meta.group, "--", staged, temp]
    try:
        run(task, install, sudo=True)
    finally:
        run(task, ["rm", "-f", "--", staged])
    kill_point.reached("file-rename")
    run(task, ["mv", "-f", "-T", "--", temp, path], sudo=True)
    _written(task, path, source, meta)


def set_meta(task: Task, path: str, meta: FileMeta) -> None:
    """Apply the mode, owner and group of `meta` to an existing `path`."""
    surveyed = host_state.lookup(task, path)
    if isinstance(surveyed, host_state.Entry):
        changed = dataclasses.replace(surveyed, mode=meta.mode, owner=meta.owner, group=meta.group)
        host_state.put(task, path, changed)
    if not is_root(task):
        run(task, ["chown", f"{meta.owner}:{meta.group}", "--", path], sudo=True)
        run(task, ["chmod", meta.mode, "--", path], sudo=True)
        return
    uid, gid = ids_for(task, meta.owner, meta.group)
    client = sftp(task)
    client.chown(path, uid, gid)
    client.chmod(path, int(meta.mode, 8))


def is_root(task: Task) -> bool:
    """Whether the SSH user is root, so SFTP may set owners directly."""
    return task.host.username in (None, "root")


def content_diff(path: str, current: bytes | None, desired: bytes, *, secret: bool) -> str:
    """A unified diff from `current` to `desired`, or a one-line note for secrets and binaries."""
    if current == desired:
        return ""
    if secret:
        what = "created" if current is None else "changed"
        return f"--- {path}\n+++ {path}\n(secret content {what}; not shown)\n"
    if max(len(current or b""), len(desired)) > MAX_DIFF_BYTES:
        size = "absent" if current is None else f"{len(current)} bytes"
        return f"--- {path}\n+++ {path}\n(large content changed: {size} -> {len(desired)} bytes)\n"
    try:
        old = [] if current is None else current.decode().splitlines(keepends=True)
        new = desired.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"--- {path}\n+++ {path}\n(binary content changed, {len(desired)} bytes)\n"
    before = "/dev/null" if current is None else path
    diff = "".join(difflib.unified_diff(old, new, fromfile=before, tofile=path))
    if not diff and current is None:
        # difflib shows no lines for a new empty file; an empty diff would mean "leave it absent".
        return f"--- /dev/null\n+++ {path}\n(empty file created)\n"
    return diff


def meta_diff(path: str, current: FileMeta | None, desired: FileMeta) -> str:
    """One line per attribute of `path` that differs, for files that exist."""
    if current is None or current == desired:
        return ""
    changes = [
        f"{name} {getattr(current, name)} -> {getattr(desired, name)}"
        for name in ("mode", "owner", "group")
        if getattr(current, name) != getattr(desired, name)
    ]
    return f"{path}: {', '.join(changes)}\n"


def ensure_file(
    task: Task,
    *,
    path: str,
    content: str | bytes,
    mode: str = "0644",
    owner: str = "root",
    group: str | None = None,
    secret: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `path` holds `content` with `mode`, `owner` and `group`; the diff in Result.diff."""
    desired = content.encode() if isinstance(content, str) else content
    wanted = FileMeta(mode.zfill(4), owner, group or owner)
    current = read_file(task, path)
    meta = file_meta(task, path) if current is not None else None
    diff = content_diff(path, current, desired, secret=secret) + meta_diff(path, meta, wanted)
    if not diff or task.is_dry_run(dry_run):
        return Result(host=task.host, changed=bool(diff), diff=diff)
    if current != desired:
        put_file(task, path, desired, meta=wanted)
    else:
        set_meta(task, path, wanted)
    return Result(host=task.host, changed=True, diff=diff)


def ensure_absent(task: Task, *, path: str, dry_run: bool | None = None) -> Result:
    """Ensure no file is at `path`; the diff shows what is removed."""
    current = read_file(task, path)
    if current is None:
        return Result(host=task.host, changed=False)
    diff = "".join(
        difflib.unified_diff(
            current.decode(errors="replace").splitlines(keepends=True), [], path, "/dev/null"
        )
    )
    if not task.is_dry_run(dry_run):
        run(task, ["rm", "-f", "--", path], sudo=True)
        host_state.gone(task, path)
    return Result(host=task.host, changed=True, diff=diff or f"--- {path}\n+++ /dev/null\n")


def ensure_directory(
    task: Task,
    *,
    path: str,
    mode: str = "0755",
    owner: str = "root",
    group: str | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `path` is a directory with `mode`, `owner` and `group`."""
    wanted = FileMeta(mode.zfill(4), owner, group or owner)
    found = _stat(task, path)
    current = found[0] if found is not None else None
    if found is not None and not found[1]:
        raise RemoteError(f"{task.host.name}: {path} exists and is not a directory")
    if current == wanted:
        return Result(host=task.host, changed=False)
    diff = f"{path}/: created\n" if current is None else meta_diff(path, current, wanted)
    if not task.is_dry_run(dry_run):
        run(
            task,
            [
                "install",
                "-d",
                "-m",
                wanted.mode,
                "-o",
                wanted.owner,
                "-g",
                wanted.group,
                "--",
                path,
            ],
            sudo=True,
        )
        entry = host_state.Entry("d", wanted.mode, wanted.owner, wanted.group)
        host_state.put(task, path, entry)
    return Result(host=task.host, changed=True, diff=diff)
