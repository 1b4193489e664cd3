"""systemd services: drop-ins instead of edited vendor units, enable, start, owed restarts.

A configuration change owes its service a restart. The debt is written on the host before the
run moves on, so a run that dies between writing a file and restarting still pays it next time.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nornir.core.task import Result, Task

from tasks import host_state
from tasks.compose import combined
from tasks.files import FileMeta, ensure_absent, ensure_directory, ensure_file, exists
from tasks.ssh import CommandError, run

RESTART_OWED_DIR = host_state.RESTART_OWED_DIR
# Seconds a unit whose start job failed has to come up through its own Restart= (RestartSec 2 s).
RESTART_GRACE = 6.0
# A start whose job failed with result 'resources' (systemd could not spawn the unit's process,
# a transient state) is tried again this many times, a second apart.
SPAWN_RETRIES = 2


def dropin_path(unit: str, dropin: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{dropin}.conf"


def ensure_systemd_file(
    task: Task,
    *,
    path: str,
    content: str | None,
    mode: str = "0644",
    dry_run: bool | None = None,
) -> Result:
    """Ensure a unit or drop-in at `path` holds `content` (None: absent) with `mode`; reload
    on change."""
    if content is None:
        written = task.run(task=ensure_absent, path=path, dry_run=dry_run)
        changed = written.changed
    else:
        directory = task.run(task=ensure_directory, path=posixpath.dirname(path), dry_run=dry_run)
        written = task.run(task=ensure_file, path=path, content=content, mode=mode, dry_run=dry_run)
        changed = directory.changed or written.changed
    if changed and not task.is_dry_run(dry_run):
        run(task, ["systemctl", "daemon-reload"], sudo=True)
    return Result(host=task.host, changed=changed, diff=written[0].diff)


def unit_path(unit: str) -> str:
    return f"/etc/systemd/system/{unit}"


def in_place(task: Task, path: str, content: str | bytes | None, meta: FileMeta | None) -> bool:
    """Whether the host's survey shows `path` holding `content` with `meta` (None: absent);
    False when the survey cannot tell."""
    entry = host_state.lookup(task, path)
    if not host_state.known(entry):
        return False
    if content is None:
        return entry is None
    desired = content.encode() if isinstance(content, str) else content
    return (
        isinstance(entry, host_state.Entry)
        and entry.kind == "f"
        and entry.content == desired
        and FileMeta(entry.mode, entry.owner, entry.group) == meta
    )


def all_in_place(
    task: Task,
    files: Sequence[ConfigFile],
    dropin: str | None,
    unit: str,
    unit_file: str | None,
    unit_mode: str,
) -> bool:
    """Whether every file of a unit's configuration is already as wanted (by the survey), the
    directories of its systemd files included."""
    metas: list[tuple[str, str | bytes | None, FileMeta | None]] = [
        (f.path, f.content, FileMeta(f.mode.zfill(4), f.owner, f.group or f.owner)) for f in files
    ]
    root = FileMeta(unit_mode.zfill(4), "root", "root")
    systemd = [(dropin_path(unit, "kubenorn"), dropin)]
    systemd += [(unit_path(unit), unit_file)] if unit_file is not None else []
    for path, content in systemd:
        metas.append((path, content, root if content is not None else None))
        if content is not None:
            directory = host_state.lookup(task, posixpath.dirname(path))
            if not isinstance(directory, host_state.Entry) or directory.kind != "d":
                return False
            if (directory.mode, directory.owner, directory.group) != ("0755", "root", "root"):
                return False
    return all(in_place(task, path, content, meta) for path, content, meta in metas)


def owed_marker(unit: str) -> str:
    return posixpath.join(RESTART_OWED_DIR, unit)


def owe_restarts(task: Task, *, units: Sequence[str], dry_run: bool | None = None) -> Result:
    """Record on the host that each of `units` must restart (survives an interrupted run)."""
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=False, result=f"would restart {', '.join(units)}")
    markers = list(map(owed_marker, units))
    if all(isinstance(host_state.lookup(task, m), host_state.Entry) for m in markers):
        return Result(host=task.host, changed=False, result=f"restart owed: {', '.join(units)}")
    run(task, ["mkdir", "-p", RESTART_OWED_DIR], sudo=True)
    run(task, ["touch", *markers], sudo=True)
    for marker in markers:
        host_state.put(task, marker, host_state.Entry("f", "0644", "root", "root", b""))
    return Result(host=task.host, changed=False, result=f"restart owed: {', '.join(units)}")


def forgive_restarts(task: Task, *, units: Sequence[str], dry_run: bool | None = None) -> Result:
    """Drop restarts owed by `units` that turned out not to be needed."""
    markers = [m for m in map(owed_marker, units) if host_state.lookup(task, m) is not None]
    if markers and not task.is_dry_run(dry_run):
        run(task, ["rm", "-f", *markers], sudo=True)
        for marker in markers:
            host_state.gone(task, marker)
    return Result(host=task.host, changed=False)


def restart_owed(task: Task, unit: str) -> bool:
    """Whether an earlier change left `unit` owing a restart (the markers' directory is in
    /var/lib/kubenorn, root's alone: a non-root user sees the marker only through sudo)."""
    surveyed = host_state.lookup(task, owed_marker(unit))
    if host_state.known(surveyed):
        return surveyed is not None
    return exists(task, owed_marker(unit))


def unit_state(task: Task, unit: str) -> tuple[bool, bool]:
    """(enabled, active) of `unit`."""
    surveyed = host_state.unit_state(task, unit)
    if surveyed is not None:
        return surveyed.enabled, surveyed.active
    enabled = run(task, ["systemctl", "is-enabled", "--quiet", unit], ok_codes=range(256)).rc == 0
    active = run(task, ["systemctl", "is-active", "--quiet", unit], ok_codes=range(256)).rc == 0
    return enabled, active


def unit_states(task: Task, units: Sequence[str]) -> dict[str, tuple[bool, bool]]:
    """unit -> (enabled, running) in one `systemctl show`, which answers in the order asked
    (by position: an alias's Id is its unit's); a unit systemd does not know is neither.
    Running is anything but inactive or failed: a unit waiting out its RestartSec is
    'activating' and comes back by itself unless stopped."""
    argv = ["systemctl", "show", "--property=UnitFileState,ActiveState", "--", *units]
    blocks = run(task, argv).stdout.strip().split("\n\n")
    states = {}
    for unit, block in zip(units, blocks, strict=False):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        running = values.get("ActiveState", "inactive") not in ("inactive", "failed")
        states[unit] = (values.get("UnitFileState") == "enabled", running)
    return {unit: states.get(unit, (False, False)) for unit in units}


def main_pid(task: Task, unit: str) -> int:
    """The unit's main PID (0 when it is not running)."""
    shown = run(task, ["systemctl", "show", "--property=MainPID", "--value", unit])
    return int(shown.stdout.strip() or 0)


def ensure_service(
    task: Task, *, unit: str, restart: bool = False, dry_run: bool | None = None
) -> Result:
    """Ensure `unit` is enabled and active; restart it if a change owes it a restart."""
    enabled, active = unit_state(task, unit)
    owed = restart or restart_owed(task, unit)
    actions = [
        action
        for action, needed in (
            ("enable", not enabled),
            ("start", not active),
            ("restart", active and owed),
        )
        if needed
    ]
    if not actions:
        return Result(host=task.host, changed=False)
    diff = "".join(f"{'would ' if task.is_dry_run(dry_run) else ''}{a} {unit}\n" for a in actions)
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=diff)
    for action in actions:
        systemctl(task, action, unit)
    run(task, ["rm", "-f", owed_marker(unit)], sudo=True)
    host_state.gone(task, owed_marker(unit))
    return Result(host=task.host, changed=True, diff=diff)


def systemctl(task: Task, action: str, unit: str) -> None:
    """`systemctl ACTION UNIT`. A start or restart whose job failed counts as done only if
    systemd's own Restart= brought the unit up within RESTART_GRACE, or, when the job failed
    with result 'resources', a retry did: systemd 257 in an nspawn host now and then fails to
    spawn a unit's executor ("No such file or directory"), right after boot and later too (a
    oneshot unit has no Restart= to fall back on). What follows a start (health checks) still
    judges the unit."""
    host_state.forget_unit(task, unit)
    for attempt in range(SPAWN_RETRIES + 1):
        try:
            run(task, ["systemctl", action, unit], sudo=True, timeout=180)
            return
        except CommandError:
            if action == "enable":
                raise
            if becomes_active(task, unit):
                return
            if attempt == SPAWN_RETRIES or unit_result(task, unit) != "resources":
                raise
            time.sleep(1.0)


def unit_result(task: Task, unit: str) -> str:
    """How the unit's last run ended (systemd's Result: success, exit-code, resources, ...)."""
    return run(task, ["systemctl", "show", "--property=Result", "--value", unit]).stdout.strip()


def becomes_active(task: Task, unit: str) -> bool:
    """Whether `unit` is active within RESTART_GRACE seconds (polled every second)."""
    deadline = time.monotonic() + RESTART_GRACE
    while True:
        if unit_state(task, unit)[1]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


@dataclass(frozen=True)
class ConfigFile:
    """One file a service reads, rendered already."""

    path: str
    content: str | bytes
    mode: str = "0644"
    owner: str = "root"
    group: str | None = None
    secret: bool = False  # key material: diffs say "changed", never show it
    # False: the service reads it only on its first start (etcd's ETCD_INITIAL_*), so a change
    # is written but owes no restart.
    restarts: bool = True


def ensure_unit_config(
    task: Task,
    *,
    unit: str,
    files: Sequence[ConfigFile],
    dropin: str | None = None,
    unit_file: str | None = None,
    unit_mode: str = "0644",
    restart: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `unit`'s files (and unit file or kubenorn drop-in, with `unit_mode`); a change
    owes it a restart, as does `restart` (something else it reads changed, such as its
    certificates)."""
    owed_before = restart_owed(task, unit)
    restarting = [f for f in files if f.restarts]
    # Owe first: a run killed after writing and before restarting still restarts next time.
    # (Not when the host's survey shows every file already as wanted: nothing will be written.)
    if not all_in_place(task, restarting, dropin, unit, unit_file, unit_mode):
        task.run(task=owe_restarts, units=[unit], dry_run=dry_run)
    written = [
        (
            f,
            task.run(
                task=ensure_file,
                path=f.path,
                content=f.content,
                mode=f.mode,
                owner=f.owner,
                group=f.group,
                secret=f.secret,
                dry_run=dry_run,
            ),
        )
        for f in files
    ]
    # kubenorn's drop-in is removed when no longer wanted; a unit file is left to its owner.
    systemd_files = [
        task.run(
            task=ensure_systemd_file,
            path=dropin_path(unit, "kubenorn"),
            content=dropin,
            mode=unit_mode,
            dry_run=dry_run,
        )
    ]
    if unit_file is not None:
        systemd_files.append(
            task.run(
                task=ensure_systemd_file,
                path=unit_path(unit),
                content=unit_file,
                mode=unit_mode,
                dry_run=dry_run,
            )
        )
    results = [result for _, result in written] + systemd_files
    # every step has run already
    changed = any(r.changed for f, r in written if f.restarts) or any(
        r.changed for r in systemd_files
    )
    owed = changed or owed_before or restart
    if not owed:
        task.run(task=forgive_restarts, units=[unit], dry_run=dry_run)
    would = task.is_dry_run(dry_run) and owed
    return combined(task, results, f"would restart {unit}\n" if would else "")
