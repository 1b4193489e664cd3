"""What a host holds, read in one round trip and judged on the control machine.

A runbook that opts in (`enable(nr)`: verify and deploy do) gets, on a host's first read, one
command that lists every file and directory under the paths kubenorn manages there (mode,
owner, group and, for small regular files, the content) and the state of the host's units
(`systemctl show`). Later reads of those paths (tasks.files), restart markers and unit states
(tasks.systemd) are answered from memory; kubenorn's own writes keep the copy true (`put`,
`gone`, `forget_unit`), and a package installation drops it (`forget`: a package may write
anywhere). Paths outside the surveyed roots, symlinks and large files are read as before.

The copy lives with the host's connection, so it ends when the run closes its connections
(or one drops and is opened again).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from nornir.core import Nornir
from nornir.core.task import Task

from kubenorn.profiles import CONTROL_PLANE, WORKER, unit_of
from tasks.ssh import run

SETTING = "kubenorn_host_state"
MAX_CONTENT = 1024 * 1024  # larger files: metadata only, content read when asked
DEPTH = 2  # how deep under a root: /etc/kubernetes/ssl/ca.crt is depth 2
# Directories kubenorn only makes (their contents are not its own): the entry alone.
RESTART_OWED_DIR = "/var/lib/kubenorn/restart-owed"
UNIT_PROPERTIES = ("Id", "LoadState", "UnitFileState", "ActiveState")
# `systemctl is-enabled` exits 0 for these (systemctl(1), "is-enabled" output table).
ENABLED = {"enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient"}

# $@: DEPTH ROOT ... -- UNIT...; a header line per entry, then a base64 line per small file.
SURVEY = r"""
while [ "$#" -gt 1 ] && [ "$1" != "--" ]; do
  find -H "$2" -maxdepth "$1" -printf 'H\t%y\t%m\t%u\t%g\t%s\t%p\n' \
    \( -type f -size -1025k -exec base64 -w0 {} \; -printf '\n' \) 2>/dev/null
  shift 2
done
[ "$#" -gt 0 ] && shift
echo '== units'
[ "$#" -gt 0 ] && systemctl show -p Id -p LoadState -p UnitFileState -p ActiveState -- "$@"
true
"""


@dataclass(frozen=True)
class Entry:
    """One path as the survey saw it: kind "f" (file), "d" (directory) or other; content for
    regular files up to MAX_CONTENT (None when larger)."""

    kind: str
    mode: str
    owner: str
    group: str
    content: bytes | None = None


@dataclass(frozen=True)
class UnitState:
    enabled: bool
    active: bool


@dataclass
class HostState:
    """The surveyed roots, what was found under them, and the units' states."""

    roots: dict[str, int]  # path -> depth surveyed under it
    entries: dict[str, Entry] = field(default_factory=dict)
    units: dict[str, UnitState] = field(default_factory=dict)

    def covers(self, path: str) -> bool:
        """Whether `path` lies within DEPTH under a surveyed root (so absence is known)."""
        return any(_within(path, root, depth) for root, depth in self.roots.items())


def _within(path: str, root: str, depth: int) -> bool:
    if path == root:
        return True
    prefix = root.rstrip("/") + "/"
    return path.startswith(prefix) and path[len(prefix) :].count("/") < depth


_states: weakref.WeakKeyDictionary[object, HostState] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_MISSING = object()


def enable(nr: Nornir) -> None:
    """Let this Nornir object's tasks read each host's state in one survey."""
    nr.config.user_defined[SETTING] = True


def roots_and_units(task: Task) -> tuple[dict[str, int], list[str]]:
    """The paths kubenorn manages on this host (with how deep to look under each) and the
    units it runs there, from its roles."""
    host = task.host
    groups = {group.name for group in host.groups}
    kubernetes: dict[str, Any] = host.get("kubernetes") or {}
    etcd: dict[str, Any] = host.get("etcd") or {}
    units = ["kubenorn-routes.service"]
    roots = ["/etc/hosts", RESTART_OWED_DIR]
    bare = ["/etc/systemd/system"]  # directories whose entry alone is kubenorn's concern
    if "etcd" in groups:
        units.append("etcd.service")
        bare.append(etcd.get("data_dir", "/var/lib/etcd"))
        roots += [posixpath.dirname(etcd.get("config_file", "/etc/etcd/etcd.conf"))]
        roots += [etcd.get("cert_dir", "/etc/etcd/ssl")]
    if "controllers" in groups:
        units += [unit_of(c) for c in CONTROL_PLANE]
        audit = ((kubernetes.get("security") or {}).get("audit") or {}).get("log_path")
        bare += [posixpath.dirname(audit)] if audit else []
    if "nodes" in groups:
        units += [unit_of(c) for c in WORKER]
        runtime: dict[str, Any] = host.get("runtime") or {}
        kind = runtime.get("kind", "containerd")
        units += [f"{kind}.service", "haproxy.service"]
        roots += [(runtime.get(kind) or {}).get("config_file", "/etc/containerd/config.toml")]
        roots += ["/etc/cni/net.d"]
        balancer: dict[str, Any] = host.get("load_balancer") or {}
        roots += [balancer.get("config_file", "/etc/haproxy/haproxy.cfg")]
    if groups & {"controllers", "nodes"}:
        roots += [kubernetes.get("config_dir", "/etc/kubernetes")]
        roots += [kubernetes.get("cert_dir", "/etc/kubernetes/ssl")]
    for unit in units:
        roots += [f"/etc/systemd/system/{unit}", f"/etc/systemd/system/{unit}.d"]
    return {**{path: DEPTH for path in roots}, **{path: 0 for path in bare}}, units


def state(task: Task) -> HostState | None:
    """This host's surveyed state (surveyed now if not yet); None unless the run opted in."""
    if not task.nornir.config.user_defined.get(SETTING):
        return None
    with _lock:
        known = _states.get(_connection(task))
    if known is not None:
        return known
    roots, units = roots_and_units(task)
    pairs = [word for path, depth in roots.items() for word in (str(depth), path)]
    argv = ["sh", "-c", SURVEY, "sh", *pairs, "--", *units]
    surveyed = parse(roots, run(task, argv, sudo=True, timeout=60).stdout)
    with _lock:
        _states[_connection(task)] = surveyed
    return surveyed


def parse(roots: dict[str, int], output: str) -> HostState:
    """The survey's output as a HostState."""
    result = HostState(dict(roots))
    lines = output.split("\n")
    cut = lines.index("== units") if "== units" in lines else len(lines)
    index = 0
    while index < cut:
        fields = lines[index].split("\t")
        index += 1
        if len(fields) != 7 or fields[0] != "H":
            continue
        _, kind, mode, owner, group, size, path = fields
        content = None
        if kind == "f" and int(size) <= MAX_CONTENT and index < cut:
            try:
                content = base64.b64decode(lines[index], validate=True)
            except (binascii.Error, ValueError):
                content = None
            index += 1
        result.entries[path] = Entry(kind, mode.zfill(4), owner, group, content)
    for block in "\n".join(lines[cut + 1 :]).split("\n\n"):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if values.get("Id") and values.get("LoadState") != "not-found":
            result.units[values["Id"]] = UnitState(
                values.get("UnitFileState", "") in ENABLED,
                values.get("ActiveState") in ("active", "reloading"),
            )
        elif values.get("Id"):
            result.units[values["Id"]] = UnitState(False, False)
    return result


def lookup(task: Task, path: str) -> Entry | None | object:
    """The surveyed entry for `path`, None when the survey shows it absent, or _MISSING when
    the survey cannot tell (not surveyed, not a root's, a symlink, content too large)."""
    surveyed = state(task)
    if surveyed is None or not surveyed.covers(path):
        return _MISSING
    entry = surveyed.entries.get(path)
    if entry is not None and entry.kind not in ("f", "d"):
        return _MISSING
    return entry


def known(value: Entry | None | object) -> bool:
    return value is not _MISSING


def put(task: Task, path: str, entry: Entry | None) -> None:
    """Record what kubenorn just made of `path` (None: removed)."""
    surveyed = _current(task)
    if surveyed is None or not surveyed.covers(path):
        return
    with _lock:
        if entry is None:
            surveyed.entries.pop(path, None)
        else:
            surveyed.entries[path] = entry


def gone(task: Task, path: str) -> None:
    put(task, path, None)


def unit_state(task: Task, unit: str) -> UnitState | None:
    """The unit's surveyed state; None when not surveyed (or forgotten since)."""
    surveyed = state(task)
    return None if surveyed is None else surveyed.units.get(unit)


def forget_unit(task: Task, unit: str | None = None) -> None:
    """Forget a unit's state (every unit's when `unit` is None): systemctl changed it."""
    surveyed = _current(task)
    if surveyed is None:
        return
    with _lock:
        if unit is None:
            surveyed.units.clear()
        else:
            surveyed.units.pop(unit, None)


def forget(task: Task) -> None:
    """Drop this host's surveyed state; the next read surveys again."""
    if not task.nornir.config.user_defined.get(SETTING):
        return
    with _lock:
        _states.pop(_connection(task), None)


def _current(task: Task) -> HostState | None:
    """The surveyed state if there is one already (never surveys)."""
    if not task.nornir.config.user_defined.get(SETTING):
        return None
    with _lock:
        return _states.get(_connection(task))


def _connection(task: Task) -> object:
    """The host's open netmiko connection (a key that is dropped with it); a placeholder
    that nothing is stored under when none is open."""
    plugin = task.host.connections.get("netmiko")
    return plugin.connection if plugin is not None else _NO_CONNECTION


class _Placeholder:
    pass


_NO_CONNECTION = _Placeholder()
