"""What a real kubelet needs from the machine that an nspawn host cannot give itself.

- Kernel settings: /proc/sys is read-only inside a host, and vm.overcommit_memory,
  kernel.panic and kernel.panic_on_oops are machine-wide, so the lab sets them on the machine
  (and says so); the inotify limits let many hosts' systemd and kubelets watch files.
- Writable cgroup v1 controllers: nspawn mounts them read-only inside a host. Each host gets a
  cgroup of its own under the lab process's cgroup in every controller; nspawn is started in it
  (so the host's processes are, and /proc/self/cgroup agrees with the mount), the directory is
  bound to /mnt/cg-CONTROLLER, and re-bound over /sys/fs/cgroup/CONTROLLER inside the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from lab.processes import sh
from lab.settings import LabError, LabSettings

CGROUP_ROOT = Path("/sys/fs/cgroup")
INSIDE = "/mnt/cg-{controller}"


def ensure_sysctls(settings: LabSettings) -> list[str]:
    """Set the machine's kernel settings the lab needs; the ones changed, as 'key: old -> new'."""
    changed = []
    for key, wanted in settings.sysctl.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        current = path.read_text().strip()
        if current == wanted:
            continue
        try:
            path.write_text(wanted)
        except OSError as error:
            raise LabError(f"cannot set {key}={wanted} on the machine: {error}") from error
        changed.append(f"{key}: {current} -> {wanted}")
    return changed


def own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """controller -> cgroup path, from /proc/PID/cgroup text (v1 lines only)."""
    found = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                found[controller] = path
    return found


def host_cgroups(settings: LabSettings, host_name: str) -> dict[str, Path]:
    """controller -> the host's own cgroup directory on the machine (created, cpuset filled).

    Under this process's own cgroups: the machine may give each process its own memory
    cgroup, so a host's directories are recorded at boot, not derived again at stop.
    """
    mine = own_cgroups(Path("/proc/self/cgroup").read_text())
    directories = {}
    for controller in settings.cgroup_controllers:
        if controller not in mine:
            raise LabError(f"the machine has no cgroup v1 {controller} controller")
        parent = CGROUP_ROOT / controller / mine[controller].lstrip("/")
        directory = parent / "kubenorn-lab" / host_name
        _make(directory, parent, controller)
        directories[controller] = directory
    return directories


def _make(directory: Path, parent: Path, controller: str) -> None:
    """mkdir -p under `parent`; a new cpuset cgroup copies its parent's CPUs and memory nodes."""
    for level in (directory.parent, directory):
        if level.exists():
            continue
        level.mkdir()
        if controller == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                (level / name).write_text((level.parent / name).read_text())


def join_cgroups(directories: dict[str, Path]) -> None:
    """Move the calling process into the directories (run before exec'ing nspawn)."""
    for directory in directories.values():
        (directory / "cgroup.procs").write_text("0")


def nspawn_binds(directories: dict[str, Path]) -> list[str]:
    return [f"--bind={d}:{INSIDE.format(controller=c)}" for c, d in directories.items()]


def rebind_inside(container_pid: int, directories: dict[str, Path]) -> None:
    """Inside the host: each bound cgroup over its read-only /sys/fs/cgroup/CONTROLLER."""
    for controller in directories:
        target = CGROUP_ROOT / controller
        wait_for_cgroup_mount(container_pid, target)
        sh(
            [
                "nsenter", "-t", str(container_pid), "-m", "mount", "--bind",
                INSIDE.format(controller=controller), str(target),
            ]
        )  # fmt: skip


def kill_leftovers(
    directories: dict[str, Path], host_name: str, timeout: float = 10.0
) -> list[int]:
    """SIGKILL whatever still runs in a host's cgroups once its nspawn is gone; the PIDs.

    nspawn killed by SIGKILL (a shutdown that outlasted its timeout) leaves the container's
    init running, orphaned: its processes stay in the host's cgroups until killed. Killing the
    PID namespace's init takes the whole namespace with it.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(directories):
        if time.monotonic() > deadline:
            raise LabError(f"{host_name}: processes {pids[:5]} survive SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed += [pid for pid in pids if pid not in killed]
        time.sleep(0.1)
    return killed


def _cgroup_pids(directories: dict[str, Path]) -> list[int]:
    directory = directories.get("pids")
    if directory is None or not directory.is_dir():
        return []
    return sorted(
        {
            int(line)
            for procs in directory.rglob("cgroup.procs")
            for line in procs.read_text().split()
        }
    )


def wait_for_cgroup_mount(container_pid: int, target: Path, timeout: float = 15.0) -> None:
    """Until nspawn has mounted its read-only cgroup on `target` inside the host: binding
    earlier fails (no mount point yet) or is covered by nspawn's mount (seen once in four)."""
    deadline = time.monotonic() + timeout
    while not cgroup_mounted(Path(f"/proc/{container_pid}/mountinfo").read_text(), target):
        if time.monotonic() > deadline:
            raise LabError(f"{target} was not mounted inside the host within {timeout:.0f}s")
        time.sleep(0.1)


def cgroup_mounted(mountinfo: str, target: Path) -> bool:
    """Whether /proc/PID/mountinfo text has a cgroup (v1) filesystem mounted on `target`."""
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) > 4 and parts[4] == str(target) and rest.split()[:1] == ["cgroup"]:
            return True
    return False


def remove_host_cgroups(directories: dict[str, Path], timeout: float = 10.0) -> None:
    """Remove a stopped host's cgroups, deepest first, in every controller."""
    deadline = time.monotonic() + timeout
    for directory in directories.values():
        if not directory.is_dir():
            continue
        levels = [p for p in directory.rglob("*") if p.is_dir()]
        for level in sorted(levels, key=lambda p: len(p.parts), reverse=True) + [directory]:
            _rmdir_when_empty(level, deadline)


def remove_unrecorded_host_cgroups(host_name: str) -> None:
    """Remove the host's cgroups that no record names any more, wherever they are: the memory
    cgroup is under the booting process's own, and a boot whose record was overwritten (a host
    booted again after its nspawn died) left its directories there (seen in CI). Called once
    the host's processes are gone, so they are empty."""
    for number, directory in enumerate(CGROUP_ROOT.glob(f"*/**/kubenorn-lab/{host_name}")):
        remove_host_cgroups({str(number): directory})
        with contextlib.suppress(OSError):  # the lab's level, once no host is left in it
            directory.parent.rmdir()


def _rmdir_when_empty(directory: Path, deadline: float) -> None:
    """rmdir a cgroup, retrying while it is busy: a killed process keeps its cgroups populated
    until its parent reaps it, which can come after its pids cgroup reads empty (seen in CI:
    the memory cgroups outlived `lab down`)."""
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise LabError(f"cgroup {directory} cannot be removed: {error.strerror}") from error
            time.sleep(0.1)
