"""Facts about a host, gathered once per host per run and cached on the host as data."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass

from nornir.core.task import Result, Task

from tasks.ssh import run

FACTS_KEY = "facts"

# One round trip: each section's output follows a "== name" marker line.
FACTS_SCRIPT = """
echo '== os-release'; cat /etc/os-release 2>/dev/null
echo '== kernel'; uname -r
echo '== hostname'; cat /proc/sys/kernel/hostname
echo '== init'; cat /proc/1/comm
echo '== managers'; for m in apt-get dnf yum; do command -v "$m"; done
echo '== addresses'; ip -o -4 addr show scope global 2>/dev/null
echo '== cgroup'; stat -fc %T /sys/fs/cgroup 2>/dev/null
"""


@dataclass(frozen=True)
class Facts:
    """What later tasks need to know about a host."""

    os_id: str
    os_version: str
    os_like: tuple[str, ...]
    package_manager: str
    init_system: str
    kernel: str
    hostname: str
    addresses: tuple[str, ...]
    # 2 on the unified hierarchy (systemd cgroup driver), 1 on legacy or hybrid (cgroupfs).
    cgroup_version: int = 1
    interfaces: tuple[tuple[str, str], ...] = ()  # (address, the interface that holds it)

    def interface_of(self, address: str) -> str | None:
        return next((device for a, device in self.interfaces if a == address), None)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def split_sections(text: str) -> dict[str, list[str]]:
    """Section name -> its lines, from the facts script's output."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
        elif line.strip():
            current.append(line.strip())
    return sections


def parse_os_release(lines: list[str]) -> dict[str, str]:
    """KEY=value pairs of /etc/os-release, unquoted."""
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {key: " ".join(shlex.split(value)) for key, value in pairs}


def package_manager_of(paths: list[str]) -> str:
    """apt, dnf or yum, in that order of preference, from the binaries present."""
    present = {path.rsplit("/", 1)[-1] for path in paths}
    for binary, manager in (("apt-get", "apt"), ("dnf", "dnf"), ("yum", "yum")):
        if binary in present:
            return manager
    return "unknown"


def parse_addresses(lines: list[str]) -> tuple[str, ...]:
    """IPv4 addresses from `ip -o -4 addr show` lines."""
    addresses = []
    for line in lines:
        fields = line.split()
        if "inet" in fields:
            addresses.append(fields[fields.index("inet") + 1].split("/")[0])
    return tuple(addresses)


def parse_interfaces(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """(address, interface) pairs from `ip -o -4 addr show` lines ("2: eth0 inet A/P ...")."""
    pairs = []
    for line in lines:
        fields = line.split()
        if "inet" in fields and len(fields) > 1:
            pairs.append((fields[fields.index("inet") + 1].split("/")[0], fields[1]))
    return tuple(pairs)


def parse_facts(text: str) -> Facts:
    """Facts from the output of FACTS_SCRIPT."""
    sections = split_sections(text)
    release = parse_os_release(sections.get("os-release", []))
    return Facts(
        os_id=release.get("ID", "unknown"),
        os_version=release.get("VERSION_ID", ""),
        os_like=tuple(release.get("ID_LIKE", "").split()),
        package_manager=package_manager_of(sections.get("managers", [])),
        init_system="systemd" if sections.get("init") == ["systemd"] else "other",
        kernel=next(iter(sections.get("kernel", [])), ""),
        hostname=next(iter(sections.get("hostname", [])), ""),
        addresses=parse_addresses(sections.get("addresses", [])),
        interfaces=parse_interfaces(sections.get("addresses", [])),
        cgroup_version=2 if sections.get("cgroup") == ["cgroup2fs"] else 1,
    )


def gather_facts(task: Task, *, refresh: bool = False) -> Result:
    """Gather this host's facts once per run (again with `refresh`) and cache them on the host."""
    cached = task.host.data.get(FACTS_KEY)
    if isinstance(cached, Facts) and not refresh:
        return Result(host=task.host, result=cached, record_data=cached.as_dict())
    facts = parse_facts(run(task, ["sh", "-c", FACTS_SCRIPT]).stdout)
    task.host.data[FACTS_KEY] = facts
    return Result(host=task.host, result=facts, record_data=facts.as_dict())


def facts_of(task: Task) -> Facts:
    """The cached facts of this host, gathering them on first use."""
    cached = task.host.data.get(FACTS_KEY)
    return cached if isinstance(cached, Facts) else gather_facts(task).result
