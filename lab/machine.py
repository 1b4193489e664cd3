"""The lab as a whole: `Lab.load().up()`, `down()`, `status()`, and faults for the tests."""

from __future__ import annotations

import fcntl
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab import aptrepo, hosts, images, kernel, kubebuild, network, rootfs
from lab.processes import sh, start_background
from lab.settings import LabError, LabHost, LabSettings, load_settings
from lab.sim.packaging import build_all as build_simulators

# Units systemd failed with result 'resources' (could not spawn them): started again, named.
RESTART_RESOURCE_FAILURES = """
for unit in $(systemctl list-units --state=failed --plain --no-legend | cut -d' ' -f1); do
  [ "$(systemctl show -p Result --value "$unit")" = resources ] || continue
  systemctl restart "$unit" && echo "$unit"
done
"""
# stdin: the password, then the public key. sudo comes from the lab's repository.
SUDO_USER = """set -e
read -r password; read -r key
if ! command -v sudo >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo >/dev/null
fi
id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
printf '%s:%s\\n' {user} "$password" | chpasswd
printf '%s ALL=(ALL) ALL\\n' {user} > /etc/sudoers.d/kubenorn-lab
chmod 0440 /etc/sudoers.d/kubenorn-lab
home=$(getent passwd {user} | cut -d: -f6)
install -d -m 0700 -o {user} -g {user} "$home/.ssh"
printf '%s\\n' "$key" > "$home/.ssh/authorized_keys"
chown {user}:{user} "$home/.ssh/authorized_keys" && chmod 0600 "$home/.ssh/authorized_keys"
"""


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    running: bool
    ssh_ok: bool


class Lab:
    """Six (or however many the inventory lists) hosts on one bridge, and their apt repo."""

    def __init__(self, settings: LabSettings) -> None:
        self.settings = settings

    @classmethod
    def load(cls, inventory: Path | None = None) -> Lab:
        return cls(load_settings(inventory))

    @property
    def key_file(self) -> Path:
        """The SSH key the inventory names (lab inventories share lab/inventory's)."""
        return self.settings.ssh_files["key_file"]

    @property
    def known_hosts(self) -> Path:
        return self.settings.ssh_files["known_hosts"]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One lab operation at a time on this machine."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.state_dir / "lab.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def up(self, extra: int = 0) -> None:
        """Build what is missing, repair what is stale, boot what is down; idempotent. `extra`:
        boot that many spare hosts (lab.yaml's extra_hosts) too, in no role group."""
        if extra:
            self.settings = self.settings.with_extras(extra)
        with self.locked():
            for change in kernel.ensure_sysctls(self.settings):
                print(f"lab: set on the machine for the hosts' kubelets: {change}", flush=True)
            base = rootfs.ensure_base(self.settings)
            downloads = aptrepo.ensure_downloads(self.settings)
            aptrepo.ensure_index(self.settings, downloads, self.own_packages())
            images.ensure_images(self.settings)
            network.ensure_bridge(self.settings)
            aptrepo.ensure_server(self.settings)
            public_key = self._ensure_key()
            running = {h.name for h in self.settings.hosts if hosts.nspawn_pid(self.settings, h)}
            for host in self.settings.hosts:
                if host.name not in running:  # the same name booted from another inventory
                    hosts.stop_other_suites(self.settings, host)
            if not running:
                network.remove_stale_veths(self.settings)
            for host in self.settings.hosts:
                if host.name in running:
                    hosts.authorize(hosts.paths(self.settings, host).root, public_key)
                else:
                    self._boot(host, base, public_key)
            self._write_known_hosts()
            self._wait_for_ssh(self.settings.hosts)
            self._finish_boot([h for h in self.settings.hosts if h.name not in running])

    def own_packages(self) -> list[Path]:
        """The lab's own .debs for this suite: real Kubernetes built from the Go module, or the
        reference profile's simulators."""
        version = self.settings.kubernetes_build
        if version is None:
            return build_simulators(self.settings.extra_debs)
        return kubebuild.ensure_version(version, self.settings.state_dir)

    def down(self, purge: bool = False) -> None:
        """Stop every host, unmount, remove veths, bridge and server; `purge` drops host state
        (the extra hosts' always: they hold nothing worth keeping)."""
        with self.locked():
            for host in self.settings.hosts:
                hosts.stop(self.settings, host)
                hosts.stop_other_suites(self.settings, host)
                if purge or host in self.settings.extras:
                    sh(["rm", "-rf", "--", str(hosts.paths(self.settings, host).top)])
            aptrepo.stop_server(self.settings)
            network.remove_bridge(self.settings)
            self.settings = self.settings.without_extras()

    def remove_extras(self) -> None:
        """Stop the extra hosts and drop their state; the inventory's hosts run on."""
        with self.locked():
            for host in self.settings.extras:
                hosts.stop(self.settings, host)
                sh(["rm", "-rf", "--", str(hosts.paths(self.settings, host).top)])
            self.settings = self.settings.without_extras()
            self._write_known_hosts()

    def status(self) -> list[HostStatus]:
        return [
            HostStatus(
                h.name,
                h.address,
                hosts.nspawn_pid(self.settings, h) is not None,
                hosts.ssh_answers(h.address),
            )
            for h in self.settings.hosts
        ]

    def ensure_sudo_user(self, user: str, password: str, public_key: str) -> None:
        """On every host: `user` with `password`, sudo rights that ask for it, and `public_key`
        authorized: what a site that forbids root logins gives kubenorn."""
        script = SUDO_USER.format(user=shlex.quote(user))
        for host in self.settings.hosts:
            done = self.ssh(host.name, ["sh", "-c", script], stdin=f"{password}\n{public_key}\n")
            if done.returncode != 0:
                raise LabError(f"{host.name}: cannot set up sudo user {user}: {done.stderr}")

    def stop_host(self, name: str) -> None:
        """Take one host down (a fault for tests); idempotent."""
        with self.locked():
            hosts.stop(self.settings, self.settings.host(name))

    def start_host(self, name: str) -> None:
        """Boot one host again and wait for its sshd."""
        host = self.settings.host(name)
        with self.locked():
            if hosts.nspawn_pid(self.settings, host) is None:
                base = rootfs.ensure_base(self.settings)
                self._boot(host, base, self._ensure_key())
                self._write_known_hosts()
            self._wait_for_ssh((host,))
            self._finish_boot([host])

    def prebuild_upgrade_from(self) -> None:
        """Start building lab.yaml's upgrade_from release in the background, at the lowest CPU
        priority, so a test session has it by the time the upgrade test needs it."""
        version = self.settings.upgrade_from
        if version is None or kubebuild.is_built(version, self.settings.state_dir):
            return
        where = self.settings.state_dir / "kubernetes"
        argv = ["nice", "-n", "19", sys.executable, "-m", "lab.kubebuild", version]
        start_background(argv, where / f"build-{version}.log", where / f"build-{version}.pid")

    def serve_kubernetes(self, version: str) -> None:
        """Serve `version`'s packages beside the inventory's in the lab's apt repository (built
        first, or waited for while a background build holds its lock); `up` serves only the
        inventory's again."""
        debs = kubebuild.ensure_version(version, self.settings.state_dir)
        with self.locked():
            cache = aptrepo.ensure_downloads(self.settings)
            aptrepo.ensure_index(self.settings, cache, [*self.own_packages(), *debs])

    def purge_host(self, name: str) -> None:
        """One host's disk lost (a fault for tests): stopped, its state removed, booted afresh
        from the base with its SSH identity (what a rebuilt machine gets back)."""
        host = self.settings.host(name)
        with self.locked():
            hosts.stop(self.settings, host)
            sh(["rm", "-rf", "--", str(hosts.paths(self.settings, host).top)])
        self.start_host(name)

    def ssh(
        self, name: str, argv: list[str], timeout: float = 60, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on a host over ssh with the lab's key and known_hosts, `stdin` its input."""
        host = self.settings.host(name)
        # ssh joins its arguments with spaces for the remote shell: quote them first.
        return subprocess.run(
            [*self.ssh_argv(host.address), "--", shlex.join(argv)],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )

    def ssh_argv(self, address: str) -> list[str]:
        return [
            "ssh", "-i", str(self.key_file), "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", f"root@{address}",
        ]  # fmt: skip

    def _boot(self, host: LabHost, base: Path, public_key: str) -> None:
        where = hosts.paths(self.settings, host)
        hosts.unmount_overlay(where)  # a stale mount from a killed run
        hosts.mount_overlay(base, where)
        hosts.write_identity(self.settings, host, where.root, public_key)
        hosts.boot(self.settings, host)

    def _ensure_key(self) -> str:
        if not self.key_file.exists():
            sh(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "kubenorn-lab",
                    "-f",
                    str(self.key_file),
                ]
            )
        self.key_file.chmod(0o600)
        return self.key_file.with_suffix(".pub").read_text()

    def _write_known_hosts(self) -> None:
        """Each host's real key, read from its own filesystem: never trust on first use."""
        lines = []
        for host in self.settings.hosts:
            key = hosts.host_public_key(hosts.paths(self.settings, host).root)
            lines.append(f"{host.address},{host.name} {key}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _finish_boot(self, booted: list[LabHost]) -> None:
        """Wait for each booted host's systemd to finish booting, and start again what failed
        to spawn while the host's cgroups were being bound (systemd 257 in a host sometimes
        fails a unit with result 'resources' then; systemd-user-sessions among them leaves
        /run/nologin, which refuses every user but root)."""
        for host in booted:
            self.ssh(host.name, ["systemctl", "is-system-running", "--wait"], timeout=120)
            done = self.ssh(host.name, ["sh", "-c", RESTART_RESOURCE_FAILURES], timeout=120)
            for unit in done.stdout.split():
                print(f"lab: {host.name}: {unit} failed to spawn at boot; started again")

    def _wait_for_ssh(self, targets: tuple[LabHost, ...]) -> None:
        deadline = time.monotonic() + self.settings.boot_timeout
        waiting = list(targets)
        while waiting and time.monotonic() < deadline:
            waiting = [h for h in waiting if not hosts.ssh_answers(h.address)]
            if waiting:
                time.sleep(0.2)
        if waiting:
            names = ", ".join(h.name for h in waiting)
            raise LabError(
                f"sshd did not answer within {self.settings.boot_timeout:.0f}s on "
                f"{names} (console logs under {self.settings.state_dir}/hosts)"
            )
