"""One lab host: an overlay on the base, its own identity files, a booted nspawn container."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab import kernel
from lab.processes import alive_pid, children, sh, start_background, stop_pid
from lab.settings import LabError, LabHost, LabSettings


@dataclass(frozen=True)
class HostPaths:
    """Where one host's state lives on the machine."""

    top: Path

    @property
    def upper(self) -> Path:
        return self.top / "upper"

    @property
    def work(self) -> Path:
        return self.top / "work"

    @property
    def root(self) -> Path:
        return self.top / "root"

    @property
    def pid_file(self) -> Path:
        return self.top / "nspawn.pid"

    @property
    def cgroups(self) -> Path:
        """The host's cgroup directories on the machine, as its boot made them."""
        return self.top / "cgroups.json"

    @property
    def log(self) -> Path:
        return self.top / "console.log"

    @property
    def containerd(self) -> Path:
        """containerd's state, bound into the host (overlayfs cannot hold its snapshots)."""
        return self.top / "containerd"


def paths(settings: LabSettings, host: LabHost) -> HostPaths:
    """A host's state for the inventory's suite: hosts of one name keep one state per suite."""
    return HostPaths(settings.state_dir / "hosts" / settings.suite / host.name)


def other_suites(settings: LabSettings, host: LabHost) -> list[HostPaths]:
    """The same host name's state under the other suites (which must not run at once)."""
    found = (settings.state_dir / "hosts").glob(f"*/{host.name}")
    return [HostPaths(top) for top in found if top.parent.name != settings.suite]


def is_mounted(path: Path) -> bool:
    target = str(path)
    return any(line.split()[1] == target for line in Path("/proc/mounts").read_text().splitlines())


def mount_overlay(base: Path, where: HostPaths) -> None:
    if is_mounted(where.root):
        return
    for directory in (where.upper, where.work, where.root):
        directory.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={base},upperdir={where.upper},workdir={where.work}"
    sh(["mount", "-t", "overlay", "overlay", "-o", options, str(where.root)])


def unmount_overlay(where: HostPaths) -> None:
    if is_mounted(where.root):
        sh(["umount", str(where.root)])


def write_identity(settings: LabSettings, host: LabHost, root: Path, public_key: str) -> None:
    """Hostname, hosts, resolver, apt source, root's key, and host keys of its own."""
    etc = root / "etc"
    (etc / "hostname").write_text(f"{host.name}\n")
    hosts = etc / "hosts"
    if not hosts.exists():  # the product manages its own block in it later
        hosts.write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")
    # The machine's resolver is unreachable (and must stay so): no DNS at all.
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("")
    (etc / "apt" / "sources.list").write_text(f"deb [trusted=yes] {settings.repo_url} ./\n")
    # The machine's kernel has no loadable modules: without the mask the host boots degraded.
    masked = etc / "systemd" / "system" / "systemd-modules-load.service"
    if not masked.is_symlink():
        masked.symlink_to("/dev/null")
    authorize(root, public_key)
    install_host_keys(settings, host, root)


def install_host_keys(settings: LabSettings, host: LabHost, root: Path) -> None:
    """The host's own SSH keys, kept outside its overlay: a purge does not change its identity."""
    keys = settings.state_dir / "host-keys" / host.name
    if not (keys / "etc" / "ssh" / "ssh_host_ed25519_key").exists():
        (keys / "etc" / "ssh").mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-A", "-f", str(keys)])
    for key in (keys / "etc" / "ssh").glob("ssh_host_*"):
        target = root / "etc" / "ssh" / key.name
        if not target.exists() or target.read_bytes() != key.read_bytes():
            shutil.copy2(key, target)


def authorize(root: Path, public_key: str) -> None:
    """Let `public_key` log in as root (kept beside the keys of other checkouts' labs)."""
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    present = keys.read_text().splitlines() if keys.exists() else []
    if public_key.strip() not in present:
        keys.write_text("".join(f"{line}\n" for line in [*present, public_key.strip()]))
    keys.chmod(0o600)


def host_public_key(root: Path) -> str:
    """The host's ed25519 public key line (type and key)."""
    fields = (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def nspawn_pid(settings: LabSettings, host: LabHost) -> int | None:
    where = paths(settings, host)
    return alive_pid(where.pid_file, f"-D {where.root} ")


def boot(settings: LabSettings, host: LabHost) -> int:
    """Start the container and give it its address from outside; the nspawn PID."""
    where = paths(settings, host)
    cgroups = kernel.host_cgroups(settings, host.name)
    where.cgroups.write_text(json.dumps({c: str(d) for c, d in cgroups.items()}))
    where.containerd.mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn",
        "-D",
        str(where.root),
        "--register=no",
        "--keep-unit",
        "-b",
        f"--machine={host.name}",
        f"--network-bridge={settings.bridge}",
        # docker, containerd and the kubelet inside a host need these; the lab is test equipment.
        "--capability=all",
        "--system-call-filter=@keyring bpf",
        # The kubelet's OOM watcher reads the kernel log.
        "--bind=/dev/kmsg",
        # containerd's snapshots cannot live on the host's overlay root.
        f"--bind={where.containerd}:/var/lib/containerd",
        *kernel.nspawn_binds(cgroups),
    ]
    pid = start_background(
        argv, where.log, where.pid_file, before_exec=lambda: kernel.join_cgroups(cgroups)
    )
    container = wait_for_container(pid, host)
    kernel.rebind_inside(container, cgroups)
    netns = ["nsenter", "-t", str(container), "-n", "ip"]
    sh(
        [
            *netns,
            "addr",
            "add",
            f"{host.address}/{settings.gateway.network.prefixlen}",
            "dev",
            "host0",
        ]
    )
    sh([*netns, "link", "set", "host0", "up"])
    return pid


def wait_for_container(pid: int, host: LabHost, timeout: float = 30.0) -> int:
    """The container's init (the nspawn process's child), once its host0 link exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            probe = ["nsenter", "-t", str(child), "-n", "ip", "link", "show", "host0"]
            if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
                return child
        time.sleep(0.1)
    raise LabError(f"{host.name}: the container did not start (see its console log)")


def stop(settings: LabSettings, host: LabHost) -> None:
    """Shut the container down (SIGTERM to nspawn, then SIGKILL), unmount its overlay and
    remove its cgroups."""
    _stop(host, paths(settings, host))


def stop_other_suites(settings: LabSettings, host: LabHost) -> None:
    """Stop the same host name booted from another suite (another lab inventory)."""
    for where in other_suites(settings, host):
        _stop(host, where)


def _stop(host: LabHost, where: HostPaths) -> None:
    pid = alive_pid(where.pid_file, f"-D {where.root} ")
    if pid:
        stop_pid(pid, timeout=30.0)
    cgroups = booted_cgroups(where)
    # Whatever outlived nspawn (its SIGKILL leaves the container's init running) goes now.
    kernel.kill_leftovers(cgroups, host.name)
    where.pid_file.unlink(missing_ok=True)
    unmount_overlay(where)
    kernel.remove_host_cgroups(cgroups)
    kernel.remove_unrecorded_host_cgroups(host.name)
    where.cgroups.unlink(missing_ok=True)


def booted_cgroups(where: HostPaths) -> dict[str, Path]:
    """controller -> the cgroup directory the host was booted in (none if never booted)."""
    if not where.cgroups.exists():
        return {}
    return {c: Path(d) for c, d in json.loads(where.cgroups.read_text()).items()}


def ssh_answers(address: str, timeout: float = 1.0) -> bool:
    """Whether sshd on `address` sends its banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False
