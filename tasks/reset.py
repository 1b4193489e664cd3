"""Reset: what a deploy put on a host, taken away again, worked out from what the deploy writes.

Which units, files and directories are kubenorn's on a host (`reset_plan`) comes from the
inventory and the modules that write them (kube_units, etcd, runtime, load_balancer,
pod_network, the PKI placement, systemd's paths, host_state's markers): nothing here keeps a
list of paths of its own. Packages go only if a deploy installed them (install_ledger: one the
host had before stays, its unit stopped and disabled), unless kept. Data (etcd's, the
kubelet's, the runtime's images and containers, snapshots, the audit log, and the ledger with
them) goes only when asked (`purge_data`), and with it the packages' configuration, users and
groups.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from nornir.core.inventory import Host as NornirHost
from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.pki.placement import directories, placements
from kubenorn.profiles import CONTROL_PLANE, WORKER, unit_of
from tasks.components import role_packages
from tasks.compose import combined
from tasks.etcd import DRILL_DROPIN
from tasks.etcd import UNIT as ETCD_UNIT
from tasks.etcd_backup import REMOTE_DIR
from tasks.host_state import RESTART_OWED_DIR
from tasks.hosts_file import ensure_hosts_block_absent
from tasks.install_ledger import LEDGER, check_installed_removable, ensure_installed_removed
from tasks.kube_units import KUBELET_ROOT_DIR, PODS_SLICE, component_paths, log_directories
from tasks.load_balancer import UNIT as HAPROXY_UNIT
from tasks.load_balancer import load_balanced
from tasks.pod_network import ROUTES_UNIT
from tasks.runtime import CNI_BRIDGE, CNI_CONFIG, CNI_DIR, RUNTIME_MOUNTS, runtime_state_dir
from tasks.runtime import UNITS as RUNTIME_UNITS
from tasks.ssh import run
from tasks.systemd import dropin_path, unit_path, unit_states

# $@: paths; removes each, never into another file system below it (a volume still mounted
# stays, and rm says so). A path that is itself a mount point (a data volume, the lab's bind
# mounts) cannot go: its contents do, and it stays for the volume's owner.
REMOVE = (
    'for p; do if mountpoint -q -- "$p"; then'
    ' find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} +;'
    ' else rm -rf --one-file-system -- "$p"; fi || exit 1; done'
)
SYSTEMD_DIRS = ("/etc/systemd/system/", "/run/systemd/system/")
# $@: paths; prints those that exist (a dangling symlink too), one a line, a mount point's
# with a tab and `mount` after it; an empty mount point is as good as gone (REMOVE leaves it so).
PRESENT = (
    'for p; do if [ -e "$p" ] || [ -L "$p" ]; then'
    ' if [ -d "$p" ] && mountpoint -q -- "$p"; then'
    ' [ -n "$(ls -A -- "$p")" ] && printf "%s\\tmount\\n" "$p"; continue; fi;'
    ' printf "%s\\n" "$p"; fi; done'
)
# $@: directories, deepest first; removes the empty ones and prints what it removed.
REMOVE_EMPTY = 'for p; do if rmdir -- "$p" 2>/dev/null; then printf "%s\\n" "$p"; fi; done; true'
# $@: directories; unmounts whatever is mounted below each (pods' volumes), deepest first;
# fails at the first that will not go, so nothing is removed through a mount.
UNMOUNT = (
    "for d; do awk -v d=\"$d/\" 'index($2, d) == 1 {print $2}' /proc/mounts; done"
    ' | sort -r | while read -r m; do umount -- "$m" || exit 1; done'
)

# $1: list or clean; $2: the runtime's unit; $3: the pod bridge; then mount roots. What a
# stopped runtime leaves (its unit kills only the daemon: shims and containers run on, their
# mounts and pods' network namespaces stay, and the bridge with the pods' veths): each
# printed, and with clean gone.
RUNTIME_LEFTOVERS = """
mode=$1 unit=$2 bridge=$3; shift 3
act() { if [ "$mode" = clean ]; then "$@"; fi; }
running() { [ "$(systemctl show -P TasksCurrent -- "$unit")" -gt 0 ] 2>/dev/null; }
if running; then
  echo "kill what $unit left running"; act systemctl kill --signal=SIGKILL -- "$unit" || exit 1
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ "$mode" = clean ] && running && sleep 0.5; done
fi
for port in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}'); do
  echo "remove link ${port%@*}"; act ip link delete dev "${port%@*}" || exit 1  # and its peer
done
for r; do awk -v r="$r" 'index($2, r) == 1 {print $2}' /proc/mounts; done | sort -r |
  while read -r m; do echo "unmount $m"; act umount -- "$m" || exit 1; done || exit 1
if ip link show dev "$bridge" >/dev/null 2>&1; then
  echo "remove link $bridge"; act ip link delete dev "$bridge" || exit 1
fi
"""

# $1: list or clean. The chains of Kubernetes' components and of CNI plugins (KUBE-*, CNI-*)
# and the rules that jump to them, IPv4 and IPv6, printed and with clean gone; the rest of
# every table stays as it was (iptables-restore replaces each table at once).
NETFILTER_LEFTOVERS = """
for tool in iptables ip6tables; do
  command -v "$tool-save" >/dev/null 2>&1 || continue
  saved=$("$tool-save" 2>/dev/null) || continue  # no such table support: nothing of ours
  kept=$(printf '%s\\n' "$saved" | grep -Ev '^:(KUBE|CNI)-|^-A (KUBE|CNI)-| -[jg] (KUBE|CNI)-')
  [ "$kept" = "$saved" ] && continue
  echo "remove Kubernetes' $tool chains and rules"
  if [ "$1" = clean ]; then printf '%s\\n' "$kept" | "$tool-restore" || exit 1; fi
done
"""


@dataclass(frozen=True)
class ResetPlan:
    """What a reset takes from one host, and what it leaves there."""

    units: tuple[str, ...]  # stopped, and disabled where enabled, in this order
    files: tuple[str, ...]  # removed (unit files, drop-ins, configuration, PKI, markers)
    directories: tuple[str, ...]  # removed once empty, deepest first
    data: tuple[str, ...]  # removed only with purge_data, with whatever is mounted below
    packages: tuple[str, ...]  # the inventory's: those kubenorn installed go (its ledger says)

    def describe(self) -> list[str]:
        """The plan as lines for people."""
        return [
            f"units stopped and disabled: {', '.join(self.units)}",
            f"files removed: {', '.join(self.files)}",
            f"directories removed once empty: {', '.join(self.directories)}",
            "/etc/hosts: kubenorn's block removed",
            f"data (only with --purge-data): {', '.join(self.data)}",
            f"packages removed (purged with --purge-data) unless --keep-packages: those {LEDGER}"
            f" lists (of {', '.join(self.packages) or 'none'}, with what they pulled in)",
        ]


def units_to_stop(cluster: Cluster, host: NornirHost) -> list[str]:
    """The host's units, each stopped before what it depends on: kubelet (then its pods'
    slice) first, etcd and the pod routes last."""
    model = cluster.host(host.name)
    units: list[str] = []
    if model.has_role("nodes"):
        units += [unit_of("kubelet"), PODS_SLICE, *map(unit_of, WORKER[1:])]
    if model.has_role("controllers"):
        units += [unit_of(c) for c in reversed(CONTROL_PLANE)]
    if load_balanced(host):
        units.append(HAPROXY_UNIT)
    if model.has_role("nodes"):
        units.append(RUNTIME_UNITS[host["runtime"]["kind"]])
    if model.has_role("etcd"):
        units.append(ETCD_UNIT)
    return [*dict.fromkeys(units), ROUTES_UNIT]


def components_of(cluster: Cluster, host: NornirHost) -> list[str]:
    """The Kubernetes components a deploy runs on this host, by its roles."""
    model = cluster.host(host.name)
    components = list(CONTROL_PLANE) if model.has_role("controllers") else []
    return components + (list(WORKER) if model.has_role("nodes") else [])


def reset_plan(cluster: Cluster, host: NornirHost) -> ResetPlan:
    """What a reset takes from `host`, from the inventory and the modules a deploy writes with."""
    model = cluster.host(host.name)
    packaged = [u for u in units_to_stop(cluster, host) if u in PACKAGED_UNITS]
    files = [path for c in components_of(cluster, host) for path in component_paths(cluster, c)]
    files += [unit_path(unit_of(c)) for c in components_of(cluster, host)]
    files += [unit_path(ROUTES_UNIT), *(dropin_path(u, "kubenorn") for u in packaged)]
    files += [p.path for p in placements(cluster, model)]
    data = [d for c in components_of(cluster, host) for d in log_directories(cluster, c)]
    if model.has_role("etcd"):
        files += [host["etcd"]["config_file"], host["etcd"]["initial_file"], DRILL_DROPIN]
        data += [host["etcd"]["data_dir"], host["etcd"]["snapshot_dir"]]
    if model.has_role("nodes"):
        runtime = host["runtime"]
        files += [runtime[runtime["kind"]]["config_file"], CNI_CONFIG]
        data += [KUBELET_ROOT_DIR, runtime_state_dir(runtime["kind"], runtime)]
    if load_balanced(host):
        files.append(host["load_balancer"]["config_file"])
    files.append(RESTART_OWED_DIR)
    # Only directories a deploy makes: a package's own (/etc/containerd) stays, even empty.
    folders = [d.path for d in directories(cluster, model)]
    folders += [posixpath.dirname(dropin_path(u, "kubenorn")) for u in packaged]
    folders += [CNI_DIR] if model.has_role("nodes") else []
    folders += [posixpath.dirname(DRILL_DROPIN)] if model.has_role("etcd") else []
    if model.has_role("etcd"):  # etcd's package reads /etc/default: its folder is kubenorn's
        folders += [posixpath.dirname(host["etcd"][key]) for key in ("config_file", "initial_file")]
    logs = [d for c in components_of(cluster, host) for d in log_directories(cluster, c)]
    folders += [posixpath.dirname(d) for d in logs]  # /var/log/kubernetes of .../audit
    folders.append(REMOTE_DIR)
    return ResetPlan(
        units=tuple(units_to_stop(cluster, host)),
        files=tuple(dict.fromkeys(files)),
        directories=tuple(sorted(set(folders), key=lambda d: (-d.count("/"), d))),
        data=tuple(dict.fromkeys([*data, REMOTE_DIR])),
        packages=tuple(role_packages(host) + packaged_by_role(host)),
    )


# Units a package ships (kubenorn writes only a drop-in, or nothing, for them).
PACKAGED_UNITS = (ETCD_UNIT, HAPROXY_UNIT, *RUNTIME_UNITS.values())


def packaged_by_role(host: NornirHost) -> list[str]:
    """The runtime's and load balancer's packages, which a deploy installs besides the roles'."""
    groups = {group.name for group in host.groups}
    wanted: list[str] = []
    if "nodes" in groups:
        wanted += host["runtime"]["packages"][host["runtime"]["kind"]]
    if load_balanced(host):
        wanted += host["load_balancer"]["packages"]
    return [p for p in dict.fromkeys(wanted) if p not in role_packages(host)]


def ensure_units_stopped(
    task: Task, *, units: Sequence[str], dry_run: bool | None = None
) -> Result:
    """Ensure each of `units` is stopped, then disabled, in the order given."""
    states = unit_states(task, units)
    actions = [
        (action, unit)
        for unit in units
        for action, needed in (("stop", states[unit][1]), ("disable", states[unit][0]))
        if needed
    ]
    would = "would " if task.is_dry_run(dry_run) else ""
    diff = "".join(f"{would}{action} {unit}\n" for action, unit in actions)
    if actions and not task.is_dry_run(dry_run):
        for action, unit in actions:
            run(task, ["systemctl", action, unit], sudo=True, timeout=180)
    return Result(host=task.host, changed=bool(actions), diff=diff)


def present(task: Task, paths: Sequence[str]) -> dict[str, bool]:
    """Those of `paths` that exist on the host, in the order given (asked through sudo), each
    with whether it is a mount point."""
    if not paths:
        return {}
    out = run(task, ["sh", "-c", PRESENT, "sh", *paths], sudo=True).stdout
    found = dict(line.partition("\t")[::2] for line in out.splitlines())
    return {path: found[path] == "mount" for path in paths if path in found}


def ensure_paths_absent(
    task: Task, *, paths: Sequence[str], unmount: bool = False, dry_run: bool | None = None
) -> Result:
    """Ensure nothing is at `paths` (`unmount`: what is mounted below first); the diff names
    paths, never content."""
    found = present(task, paths)
    would = "would " if task.is_dry_run(dry_run) else ""
    diff = "".join(
        f"{would}empty {path} (a mount point: it stays)\n" if mount else f"{would}remove {path}\n"
        for path, mount in found.items()
    )
    if found and not task.is_dry_run(dry_run):
        if unmount:
            run(task, ["sh", "-c", UNMOUNT, "sh", *found], sudo=True, timeout=120)
        run(task, ["sh", "-c", REMOVE, "sh", *found], sudo=True, timeout=600)
        if any(path.startswith(SYSTEMD_DIRS) for path in found):
            run(task, ["systemctl", "daemon-reload"], sudo=True)
    return Result(host=task.host, changed=bool(found), diff=diff)


def ensure_empty_directories_absent(
    task: Task, *, paths: Sequence[str], dry_run: bool | None = None
) -> Result:
    """Ensure none of `paths` (deepest first) is left an empty directory; others stay."""
    if task.is_dry_run(dry_run):
        found = present(task, paths)
        diff = "".join(f"would remove {path} if empty\n" for path in found)
        return Result(host=task.host, changed=bool(found), diff=diff)
    removed = run(task, ["sh", "-c", REMOVE_EMPTY, "sh", *paths], sudo=True).stdout.split()
    diff = "".join(f"remove {path}\n" for path in removed)
    return Result(host=task.host, changed=bool(removed), diff=diff)


def cleaned_up(task: Task, script: str, args: Sequence[str], dry_run: bool | None) -> Result:
    """Run a cleanup `script` that prints what it removes (with `list`: would remove)."""
    mode = "list" if task.is_dry_run(dry_run) else "clean"
    done = run(task, ["sh", "-c", script, "sh", mode, *args], sudo=True, timeout=120).stdout
    would = "would " if task.is_dry_run(dry_run) else ""
    lines = done.splitlines()
    return Result(host=task.host, changed=bool(lines), diff="".join(f"{would}{x}\n" for x in lines))


def ensure_runtime_leftovers_gone(task: Task, *, unit: str, dry_run: bool | None = None) -> Result:
    """Ensure nothing the stopped runtime `unit` ran is left: processes, mounts, the bridge."""
    return cleaned_up(task, RUNTIME_LEFTOVERS, [unit, CNI_BRIDGE, *RUNTIME_MOUNTS], dry_run)


def ensure_netfilter_rules_gone(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure no chain or rule of Kubernetes' components or CNI plugins is left."""
    return cleaned_up(task, NETFILTER_LEFTOVERS, [], dry_run)


def reset_host(
    task: Task,
    *,
    cluster: Cluster,
    purge_data: bool,
    keep_packages: bool = False,
    dry_run: bool | None = None,
) -> Result:
    """Ensure nothing a deploy put here is left (its data too with `purge_data`)."""
    plan = reset_plan(cluster, task.host)
    steps = []
    if not keep_packages:  # a package installed since that needs one of them: stop here
        steps.append(
            task.run(name="packages-check", task=check_installed_removable, purge=purge_data)
        )
    steps.append(
        task.run(name="stop", task=ensure_units_stopped, units=plan.units, dry_run=dry_run)
    )
    if cluster.host(task.host.name).has_role("nodes"):
        runtime = RUNTIME_UNITS[task.host["runtime"]["kind"]]
        steps.append(
            task.run(
                name="runtime", task=ensure_runtime_leftovers_gone, unit=runtime, dry_run=dry_run
            )
        )
        steps.append(task.run(name="netfilter", task=ensure_netfilter_rules_gone, dry_run=dry_run))
    if not keep_packages:  # before the data: the ledger of what was installed is there
        steps.append(
            task.run(
                name="packages", task=ensure_installed_removed, purge=purge_data, dry_run=dry_run
            )
        )
    steps.append(
        task.run(name="files", task=ensure_paths_absent, paths=plan.files, dry_run=dry_run)
    )
    if purge_data:
        steps.append(
            task.run(
                name="data",
                task=ensure_paths_absent,
                paths=plan.data,
                unmount=True,
                dry_run=dry_run,
            )
        )
    steps += [
        task.run(
            name="directories",
            task=ensure_empty_directories_absent,
            paths=plan.directories,
            dry_run=dry_run,
        ),
        task.run(name="hosts-file", task=ensure_hosts_block_absent, dry_run=dry_run),
    ]
    return combined(task, steps)
