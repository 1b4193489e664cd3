"""Build the Nornir object for an inventory directory, with kubenorn's SSH settings applied."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.inventory import ConnectionOptions, Host
from nornir.core.plugins.inventory import InventoryPluginRegister
from nornir.plugins.runners import ThreadedRunner

from kubenorn.inventory_files import PLUGIN, CheckedInventory, KubenornInventory

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = REPO_ROOT / "config.yaml"
INVENTORY_FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")
# Hosts in flight at once unless --workers says otherwise (config.yaml, user_defined): each is
# a thread and an SSH connection, and a cluster can have thousands of nodes.
DEFAULT_HOSTS_IN_FLIGHT = 50
# The whole inventory as loaded, kept in the config that every filtered Nornir object shares.
INVENTORY_SETTING = "kubenorn_inventory"
# Secrets come from the environment, never from inventory files or task arguments.
KEY_PASSPHRASE_ENV = "KUBENORN_SSH_KEY_PASSPHRASE"
# A file for Nornir's own log (config.yaml keeps it off): for debugging kubenorn itself.
NORNIR_LOG_ENV = "KUBENORN_NORNIR_LOG"


# Nornir logs each failed task's traceback through `logging`; with no handler configured,
# Python prints it to stderr. Failures reach people through run records instead.
logging.getLogger("nornir").addHandler(logging.NullHandler())
InventoryPluginRegister.register(PLUGIN, KubenornInventory)


class InventoryError(Exception):
    """The inventory cannot be loaded; the message names the file and the field."""


def default_inventory_dir() -> Path:
    """The inventory directory that config.yaml names, resolved against the repository."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    host_file = config["inventory"]["options"]["host_file"]
    return (REPO_ROOT / host_file).parent


def enable_nornir_log() -> None:
    """Nornir's log (every task it runs, with its arguments) at DEBUG into the file
    KUBENORN_NORNIR_LOG names, if any. A handler of ours: Nornir's own logging settings skip a
    logger that has a handler already, and ours has the NullHandler above."""
    log_file = os.environ.get(NORNIR_LOG_ENV)
    if not log_file:
        return
    nornir_logger = logging.getLogger("nornir")
    target = os.path.abspath(log_file)
    if any(getattr(h, "baseFilename", None) == target for h in nornir_logger.handlers):
        return
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    nornir_logger.addHandler(handler)
    nornir_logger.setLevel(logging.DEBUG)


def init_nornir(
    inventory_dir: Path | None = None, *, dry_run: bool = False, workers: int | None = None
) -> Nornir:
    """Load `inventory_dir` with config.yaml's settings: `workers` hosts in flight at once, by
    default one per host between config.yaml's floor (runner num_workers) and its cap
    (user_defined hosts_in_flight)."""
    inventory_dir = (inventory_dir or default_inventory_dir()).resolve()
    enable_nornir_log()
    for name in INVENTORY_FILES:
        if not (inventory_dir / name).is_file():
            raise InventoryError(f"{inventory_dir / name}: inventory file is missing")
    options = {
        "host_file": str(inventory_dir / "hosts.yaml"),
        "group_file": str(inventory_dir / "groups.yaml"),
        "defaults_file": str(inventory_dir / "defaults.yaml"),
    }
    nr = InitNornir(
        config_file=str(CONFIG_FILE),
        inventory={"plugin": PLUGIN, "options": options},
        dry_run=dry_run,
    )
    inventory = nr.inventory
    assert isinstance(inventory, CheckedInventory)
    if errors := [p for p in inventory.problems if p.status == "CRITICAL"]:
        lines = "\n".join(str(p) for p in errors)
        raise InventoryError(f"{inventory_dir}: cannot load inventory: {lines}")
    nr.config.user_defined[INVENTORY_SETTING] = inventory
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
    verify = ssh.get("verify_host_keys", True)  # a bool: the inventory model says so
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
