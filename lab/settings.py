"""The lab's settings: lab.yaml, the hosts of an inventory, and the machine's Debian mirror."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

LAB_DIR = Path(__file__).resolve().parent
DEFAULT_INVENTORY = LAB_DIR / "inventory"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


class LabError(Exception):
    """The lab could not do what was asked; the message says what and where."""


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str


@dataclass(frozen=True)
class ExtraHosts:
    """lab.yaml's extra_hosts: spare hosts PREFIX01, PREFIX02, ... from `first_address` on."""

    prefix: str
    first_address: ipaddress.IPv4Address
    most: int

    def hosts(self, count: int) -> tuple[LabHost, ...]:
        """The first `count` spare hosts."""
        if not 0 <= count <= self.most:
            raise LabError(f"--extra {count}: the lab has room for 0 to {self.most} extra hosts")
        return tuple(
            LabHost(f"{self.prefix}{number:02d}", str(self.first_address + number - 1))
            for number in range(1, count + 1)
        )


@dataclass(frozen=True)
class LabSettings:
    bridge: str
    gateway: ipaddress.IPv4Interface
    state_dir: Path
    suite: str
    include: tuple[str, ...]
    repo_port: int
    repo_packages: tuple[str, ...]
    extra_debs: Path
    boot_timeout: float
    inventory: Path
    hosts: tuple[LabHost, ...]  # the inventory's, then the extra hosts that have state
    # The Kubernetes version to build from the Go module; None where simulators stand in.
    kubernetes_build: str | None
    sysctl: dict[str, str]
    cgroup_controllers: tuple[str, ...]
    ssh_files: dict[str, Path]  # key_file, known_hosts: as the inventory names them
    images: tuple[dict[str, str], ...] = ()  # the inventory's kubernetes.images (name, archive)
    image_recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by archive name
    extra_hosts: ExtraHosts | None = None
    extras: tuple[LabHost, ...] = ()  # the extra hosts among `hosts`
    upgrade_from: str | None = None  # the release the upgrade test deploys before upgrading

    def with_extras(self, count: int) -> LabSettings:
        """These settings with the first `count` extra hosts (and those already there)."""
        if self.extra_hosts is None:
            raise LabError("lab.yaml has no extra_hosts")
        wanted = {h.name: h for h in (*self.extras, *self.extra_hosts.hosts(count))}
        extras = tuple(sorted(wanted.values(), key=lambda h: h.name))
        own = tuple(h for h in self.hosts if h not in self.extras)
        return replace(self, hosts=own + extras, extras=extras)

    def without_extras(self) -> LabSettings:
        """These settings with the inventory's hosts only."""
        return replace(self, hosts=tuple(h for h in self.hosts if h not in self.extras), extras=())

    @property
    def repo_url(self) -> str:
        """The apt source of this suite's repository (one directory per suite)."""
        return f"http://{self.gateway.ip}:{self.repo_port}/{self.suite}"

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no lab host named {name!r} (hosts: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [host.name for host in self.hosts]


def load_settings(inventory: Path | None = None) -> LabSettings:
    """lab.yaml plus the hosts (name, `hostname` address) of the lab inventory."""
    raw = yaml.safe_load((LAB_DIR / "lab.yaml").read_text())
    inventory = (inventory or DEFAULT_INVENTORY).resolve()
    gateway = ipaddress.IPv4Interface(raw["gateway"])
    suite = suite_of(raw["suites"], inventory)
    own = lab_hosts(inventory / "hosts.yaml", gateway)
    spare = extra_hosts(raw["extra_hosts"], gateway, own)
    state_dir = Path(raw["state_dir"])
    # The extra hosts booted before (they have state) belong to the lab until `lab down`.
    extras = tuple(
        h
        for h in spare.hosts(spare.most)
        if (state_dir / "hosts" / suite["suite"] / h.name).is_dir()
    )
    return LabSettings(
        bridge=raw["bridge"],
        gateway=gateway,
        state_dir=state_dir,
        suite=suite["suite"],
        include=tuple(raw["include"]),
        repo_port=int(raw["repo"]["port"]),
        repo_packages=tuple(suite["packages"]),
        extra_debs=LAB_DIR / raw["repo"]["extra_debs"],
        boot_timeout=float(raw["boot_timeout"]),
        inventory=inventory,
        hosts=own + extras,
        kubernetes_build=kubernetes_data(inventory)["kubernetes_version"]
        if suite["build_kubernetes"]
        else None,
        ssh_files=ssh_files(inventory),
        sysctl={str(k): str(v) for k, v in raw["sysctl"].items()},
        cgroup_controllers=tuple(raw["cgroup_controllers"]),
        images=inventory_images(inventory),
        image_recipes=suite.get("images") or {},
        extra_hosts=spare,
        extras=extras,
        upgrade_from=suite.get("upgrade_from"),
    )


def extra_hosts(
    raw: dict[str, Any], gateway: ipaddress.IPv4Interface, own: tuple[LabHost, ...]
) -> ExtraHosts:
    """lab.yaml's extra_hosts, every one of whose addresses is free on the lab network."""
    spare = ExtraHosts(
        str(raw["prefix"]), ipaddress.IPv4Address(raw["first_address"]), int(raw["most"])
    )
    taken = {ipaddress.ip_address(h.address) for h in own}
    taken |= {gateway.ip, gateway.network.broadcast_address}
    for host in spare.hosts(spare.most):
        address = ipaddress.ip_address(host.address)
        if address not in gateway.network or address in taken:
            raise LabError(
                f"lab.yaml: extra_hosts: {host.name} would be {address}, which is not a free "
                f"host address on the lab network {gateway.network}"
            )
    return spare


def suite_of(suites: dict[str, Any], inventory: Path) -> dict[str, Any]:
    """lab.yaml's suite entry for a lab inventory, by the inventory directory's name."""
    if inventory.name not in suites:
        raise LabError(f"{inventory}: not a lab inventory (lab.yaml's suites: {', '.join(suites)})")
    return suites[inventory.name]


def defaults_data(inventory: Path, section: str, keys: tuple[str, ...]) -> dict[str, str]:
    """`keys` of one section of the inventory's defaults data (the lab reads nothing else)."""
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text()) or {}
    values = (defaults.get("data") or {}).get(section) or {}
    missing = [key for key in keys if not values.get(key)]
    if missing:
        raise LabError(f"{inventory}/defaults.yaml: data.{section}.{missing[0]} is not set")
    return {key: str(values[key]) for key in keys}


def kubernetes_data(inventory: Path) -> dict[str, str]:
    """The inventory's cluster.kubernetes_version: the version the lab builds."""
    return defaults_data(inventory, "cluster", ("kubernetes_version",))


def inventory_images(inventory: Path) -> tuple[dict[str, str], ...]:
    """The inventory's kubernetes.images: the archives the lab builds for its nodes to load."""
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text()) or {}
    kubernetes = (defaults.get("data") or {}).get("kubernetes") or {}
    return tuple(
        {"name": str(image["name"]), "archive": str(image["archive"])}
        for image in kubernetes.get("images") or ()
    )


def ssh_files(inventory: Path) -> dict[str, Path]:
    """The key and known_hosts files the inventory names, resolved from its directory."""
    files = defaults_data(inventory, "ssh", ("key_file", "known_hosts"))
    return {key: (inventory / value).resolve() for key, value in files.items()}


def lab_hosts(hosts_file: Path, gateway: ipaddress.IPv4Interface) -> tuple[LabHost, ...]:
    """The inventory's hosts; each address must lie on the lab bridge's network."""
    hosts = []
    for name, data in (yaml.safe_load(hosts_file.read_text()) or {}).items():
        address = ipaddress.ip_address(str(data["hostname"]))
        if address not in gateway.network or address == gateway.ip:
            raise LabError(
                f"{hosts_file}: {name}: {address} is not a host address on "
                f"the lab network {gateway.network}"
            )
        hosts.append(LabHost(name, str(address)))
    return tuple(hosts)


def debian_mirror(
    suite: str, sources: tuple[Path, ...] = APT_SOURCES, machine_suite: str | None = None
) -> str:
    """The mirror URI the machine's own apt sources use for `suite`, else for the machine's own
    suite (a Debian mirror serves every suite); never a hard-coded host."""
    for wanted in (suite, machine_suite or machine_codename()):
        for path in sources:
            if not path.is_file():
                continue
            text = path.read_text()
            parse = _deb822_mirror if path.suffix == ".sources" else _list_mirror
            if found := parse(text, wanted):
                return found
    raise LabError(f"no Debian mirror for {suite} in {', '.join(map(str, sources))}")


def machine_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """The machine's own Debian suite (VERSION_CODENAME)."""
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise LabError(f"{os_release} names no VERSION_CODENAME")


def _deb822_mirror(text: str, suite: str) -> str | None:
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip()] = value.split()
        if suite in fields.get("Suites", []) and fields.get("URIs"):
            return fields["URIs"][0]
    return None


def _list_mirror(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            uri, dist = [w for w in words[1:] if not w.startswith("[")][:2]
            if dist == suite:
                return uri
    return None
