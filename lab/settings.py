"""The lab's settings: lab.yaml, the hosts of an inventory, and the machine's Debian mirror."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

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
    hosts: tuple[LabHost, ...]

    @property
    def repo_url(self) -> str:
        return f"http://{self.gateway.ip}:{self.repo_port}"

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
    return LabSettings(
        bridge=raw["bridge"],
        gateway=gateway,
        state_dir=Path(raw["state_dir"]),
        suite=raw["suite"],
        include=tuple(raw["include"]),
        repo_port=int(raw["repo"]["port"]),
        repo_packages=tuple(raw["repo"]["packages"]),
        extra_debs=LAB_DIR / raw["repo"]["extra_debs"],
        boot_timeout=float(raw["boot_timeout"]),
        inventory=inventory,
        hosts=lab_hosts(inventory / "hosts.yaml", gateway),
    )


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


def debian_mirror(suite: str, sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The mirror URI the machine's own apt sources use for `suite` (never a hard-coded host)."""
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text()
        found = (
            _deb822_mirror(text, suite) if path.suffix == ".sources" else _list_mirror(text, suite)
        )
        if found:
            return found
    raise LabError(f"no Debian mirror for {suite} in {', '.join(map(str, sources))}")


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
