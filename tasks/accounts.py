"""User and group names <-> numeric ids on a host, read once per connection."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import paramiko
from nornir.core.task import Task

from tasks.ssh import RemoteError, run, transport

_cache: weakref.WeakKeyDictionary[paramiko.Transport, Accounts] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass
class Accounts:
    """The host's passwd and group databases, as name -> id maps."""

    host: str
    users: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)

    def uid(self, name: str) -> int:
        """The uid of user `name`; fails the host when the user does not exist."""
        if name not in self.users:
            raise RemoteError(f"{self.host}: no user named {name!r}")
        return self.users[name]

    def gid(self, name: str) -> int:
        """The gid of group `name`; fails the host when the group does not exist."""
        if name not in self.groups:
            raise RemoteError(f"{self.host}: no group named {name!r}")
        return self.groups[name]

    def user_name(self, uid: int | None) -> str:
        return next((name for name, value in self.users.items() if value == uid), str(uid))

    def group_name(self, gid: int | None) -> str:
        return next((name for name, value in self.groups.items() if value == gid), str(gid))


def parse_database(text: str) -> dict[str, int]:
    """name -> id from `getent passwd` or `getent group` output."""
    entries: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            entries.setdefault(fields[0], int(fields[2]))
    return entries


def accounts(task: Task) -> Accounts:
    """The host's accounts, read on first use and again after `forget_accounts`."""
    ssh_transport = transport(task)
    with _lock:
        cached = _cache.get(ssh_transport)
    if cached is not None:
        return cached
    users = run(task, ["getent", "passwd"]).stdout
    groups = run(task, ["getent", "group"]).stdout
    loaded = Accounts(task.host.name, parse_database(users), parse_database(groups))
    with _lock:
        _cache[ssh_transport] = loaded
    return loaded


def forget_accounts(task: Task) -> None:
    """Drop this host's cached accounts, so the next `accounts` reads them again."""
    with _lock:
        _cache.pop(transport(task), None)


def ids_for(task: Task, owner: str, group: str) -> tuple[int, int]:
    """uid of `owner` and gid of `group`, re-reading the databases once if either is new."""
    known = accounts(task)
    if owner not in known.users or group not in known.groups:
        # A package installed during this run may have just created the service user.
        forget_accounts(task)
        known = accounts(task)
    return known.uid(owner), known.gid(group)
