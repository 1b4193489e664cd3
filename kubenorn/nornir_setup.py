"""Build the Nornir object for an inventory directory, with kubenorn's SSH settings applied."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ruamel.yaml
import yaml
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.inventory import (
    ConnectionOptions,
    Group,
    Groups,
    Host,
    Hosts,
    Inventory,
    ParentGroups,
)
from nornir.core.plugins.inventory import InventoryPluginRegister
from nornir.plugins.inventory.simple import (
    SimpleInventory,
    _get_defaults,
    _get_inventory_element,
)
from nornir.plugins.runners import ThreadedRunner

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = REPO_ROOT / "config.yaml"
INVENTORY_FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")
# Hosts in flight at once unless --workers says otherwise (config.yaml, user_defined): each is
# a thread and an SSH connection, and a cluster can have thousands of nodes.
DEFAULT_HOSTS_IN_FLIGHT = 50
# Secrets come from the environment, never from inventory files or task arguments.
KEY_PASSPHRASE_ENV = "KUBENORN_SSH_KEY_PASSPHRASE"


# Nornir logs each failed task's traceback through `logging`; with no handler configured,
# Python prints it to stderr. Failures reach people through run records instead.
logging.getLogger("nornir").addHandler(logging.NullHandler())


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader that refuses a key given twice (as ruamel does; PyYAML keeps the
    last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


class LibyamlInventory(SimpleInventory):
    """Nornir's SimpleInventory, read with PyYAML's libyaml loader, the parser (and YAML 1.1)
    kubenorn's own inventory checks use: ruamel's pure-Python parser, which SimpleInventory
    uses, cost ~11 ms of CPU per host on every load (bench/scale_fake.py)."""

    def load(self) -> Inventory:
        defaults = _get_defaults(self._read(self.defaults_file))
        hosts = Hosts(
            {
                name: _get_inventory_element(Host, data, name, defaults)
                for name, data in self._read(self.host_file, required=True).items()
            }
        )
        groups = Groups(
            {
                name: _get_inventory_element(Group, data, name, defaults)
                for name, data in self._read(self.group_file).items()
            }
        )
        for element in [*groups.values(), *hosts.values()]:
            names: list[Any] = list(element.groups)  # still names, as SimpleInventory leaves them
            element.groups = ParentGroups([groups[name] for name in names])
        return Inventory(hosts=hosts, groups=groups, defaults=defaults)

    def _read(self, path: Path, *, required: bool = False) -> dict[str, Any]:
        if not required and not path.exists():
            return {}
        return yaml.load(path.read_text(encoding=self.encoding), Loader=_Loader) or {}


INVENTORY_PLUGIN = "KubenornInventory"
InventoryPluginRegister.register(INVENTORY_PLUGIN, LibyamlInventory)


class InventoryError(Exception):
    """The inventory cannot be loaded; the message names the file and the field."""


def default_inventory_dir() -> Path:
    """The inventory directory that config.yaml names, resolved against the repository."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    host_file = config["inventory"]["options"]["host_file"]
    return (REPO_ROOT / host_file).parent


def init_nornir(
    inventory_dir: Path | None = None, *, dry_run: bool = False, workers: int | None = None
) -> Nornir:
    """Load `inventory_dir` with config.yaml's settings: `workers` hosts in flight at once, by
    default one per host between config.yaml's floor (runner num_workers) and its cap
    (user_defined hosts_in_flight)."""
    inventory_dir = (inventory_dir or default_inventory_dir()).resolve()
    for name in INVENTORY_FILES:
        if not (inventory_dir / name).is_file():
            raise InventoryError(f"{inventory_dir / name}: inventory file is missing")
    options = {
        "host_file": str(inventory_dir / "hosts.yaml"),
        "group_file": str(inventory_dir / "groups.yaml"),
        "defaults_file": str(inventory_dir / "defaults.yaml"),
    }
    try:
        nr = InitNornir(
            config_file=str(CONFIG_FILE),
            inventory={"plugin": INVENTORY_PLUGIN, "options": options},
            dry_run=dry_run,
        )
    # SimpleInventory parses with ruamel.yaml, whose errors are not PyYAML's.
    except (
        yaml.YAMLError,
        ruamel.yaml.YAMLError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as error:
        raise InventoryError(f"{inventory_dir}: cannot load inventory: {error}") from error
    for host in nr.inventory.hosts.values():
        host.connection_options["netmiko"] = netmiko_options(host, inventory_dir)
    return nr.with_runner(ThreadedRunner(num_workers=workers or default_workers(nr)))


def default_workers(nr: Nornir) -> int:
    """One worker per host, at least config.yaml's floor, at most its cap on hosts in flight."""
    floor = int(nr.config.runner.options.get("num_workers", 20))
    cap = int(nr.config.user_defined.get("hosts_in_flight", DEFAULT_HOSTS_IN_FLIGHT))
    return max(1, min(max(floor, len(nr.inventory)), cap))


def netmiko_options(host: Host, inventory_dir: Path) -> ConnectionOptions:
    """Connection options that verify host keys against the inventory's known_hosts file."""
    ssh: dict[str, Any] = host.get("ssh") or {}
    verify = ssh.get("verify_host_keys", True)
    if not isinstance(verify, bool):
        raise InventoryError(
            f"{inventory_dir}: host {host.name}: ssh.verify_host_keys must be a bool"
        )
    extras: dict[str, Any] = {
        "use_keys": True,
        "allow_agent": False,
        "system_host_keys": False,
        # netmiko's default is AutoAddPolicy; RejectPolicy plus our file is the only safe setting.
        "ssh_strict": verify,
        "alt_host_keys": verify,
        "alt_key_file": str(known_hosts_path(host, inventory_dir)),
        "conn_timeout": ssh.get("connect_timeout", 10),
        "auth_timeout": ssh.get("connect_timeout", 10),
        "banner_timeout": ssh.get("connect_timeout", 10),
        "fast_cli": True,
    }
    if key_file := ssh.get("key_file"):
        extras["key_file"] = str(_resolve(key_file, inventory_dir))
    if passphrase := os.environ.get(KEY_PASSPHRASE_ENV):
        extras["passphrase"] = passphrase
    return ConnectionOptions(extras=extras)


def known_hosts_path(host: Host, inventory_dir: Path) -> Path:
    """The known_hosts file for `host`: `ssh.known_hosts`, relative to the inventory."""
    ssh: dict[str, Any] = host.get("ssh") or {}
    return _resolve(ssh.get("known_hosts", "known_hosts"), inventory_dir)


def inventory_dir_of(nr_or_config: Any) -> Path:
    """The inventory directory a Nornir object (or its config) was loaded from."""
    config = getattr(nr_or_config, "config", nr_or_config)
    return Path(config.inventory.options["host_file"]).parent


def key_file_path(host: Host, inventory_dir: Path) -> Path | None:
    """The private key file for `host`: `ssh.key_file`, relative to the inventory; None unset."""
    ssh: dict[str, Any] = host.get("ssh") or {}
    key_file = ssh.get("key_file")
    return _resolve(str(key_file), inventory_dir) if key_file else None


def _resolve(path: str, inventory_dir: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else inventory_dir / expanded
