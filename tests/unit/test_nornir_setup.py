"""kubenorn.nornir_setup: loading an inventory, and the SSH settings every host gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import INVENTORY, Fleet, run_on, write_inventory
from nornir.core import Nornir

from kubenorn.nornir_setup import (
    KEY_PASSPHRASE_ENV,
    InventoryError,
    init_nornir,
    inventory_dir_of,
)
from tasks.ssh import run_command


def extras(nr: Nornir, host: str = "h1") -> dict[str, Any]:
    return nr.inventory.hosts[host].connection_options["netmiko"].extras or {}


def with_ssh(directory: Path, ssh: str) -> Path:
    """The unit-test inventory whose defaults carry `ssh` (YAML lines under `ssh:`)."""
    defaults = "username: root\nplatform: linux\ndata:\n  ssh:\n" + ssh
    return write_inventory(directory, defaults_yaml=defaults)


@pytest.mark.parametrize("missing", list(INVENTORY))
def test_a_missing_inventory_file_is_named(tmp_path: Path, missing: str) -> None:
    inventory = write_inventory(tmp_path / "inv")
    (inventory / missing).unlink()
    with pytest.raises(InventoryError) as error:
        init_nornir(inventory)
    assert str(error.value) == f"{inventory / missing}: inventory file is missing"


def test_a_missing_inventory_directory_names_its_first_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=f"^{tmp_path}/absent/hosts.yaml: inventory file"):
        init_nornir(tmp_path / "absent")


@pytest.mark.parametrize(
    "hosts",
    [
        "h1:\n  groups: [etcd\n",  # not YAML
        "h1:\n  hostname: a\nh1:\n  hostname: b\n",  # a host twice
        "- h1\n- h2\n",  # not a mapping
    ],
)
def test_a_broken_inventory_file_is_an_inventory_error(tmp_path: Path, hosts: str) -> None:
    inventory = write_inventory(tmp_path / "inv", hosts_yaml=hosts)
    with pytest.raises(InventoryError, match=f"^{inventory}: cannot load inventory: "):
        init_nornir(inventory)


def test_every_host_verifies_host_keys_against_the_inventorys_known_hosts(
    inventory_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # relative to the inventory, not to the working directory
    nr = init_nornir(Path("inventory"))
    for host in nr.inventory.hosts:
        options = extras(nr, host)
        assert options["ssh_strict"] is True and options["alt_host_keys"] is True
        assert options["alt_key_file"] == str(inventory_dir / "known_hosts")
        assert options["system_host_keys"] is False
        assert (options["use_keys"], options["allow_agent"]) == (True, False)
        assert "passphrase" not in options
    assert inventory_dir_of(nr) == inventory_dir


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("known_hosts: keys/known_hosts", "{inventory}/keys/known_hosts"),
        ("known_hosts: /etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts"),
        ("known_hosts: ~/.ssh/known_hosts", "{home}/.ssh/known_hosts"),
    ],
)
def test_the_known_hosts_path_is_relative_to_the_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inventory = with_ssh(tmp_path / "inv", f"    {setting}\n")
    wanted = expected.format(inventory=inventory, home=tmp_path / "home")
    assert extras(init_nornir(inventory))["alt_key_file"] == wanted


@pytest.mark.parametrize(
    ("setting", "verify"),
    [
        ("connect_timeout: 3", True),  # not set at all
        ("verify_host_keys: true", True),
        ("verify_host_keys: false", False),
    ],
)
def test_host_keys_go_unverified_only_when_explicitly_set_false(
    tmp_path: Path, setting: str, verify: bool
) -> None:
    nr = init_nornir(with_ssh(tmp_path / "inv", f"    {setting}\n"))
    for host in nr.inventory.hosts:
        assert extras(nr, host)["ssh_strict"] is verify
        assert extras(nr, host)["alt_host_keys"] is verify


@pytest.mark.parametrize("value", ['"false"', "no_thanks", "0", "1", "null", "[]"])
def test_a_verify_setting_that_is_not_a_bool_is_refused(tmp_path: Path, value: str) -> None:
    inventory = with_ssh(tmp_path / "inv", f"    verify_host_keys: {value}\n")
    with pytest.raises(InventoryError) as error:
        init_nornir(inventory)
    assert str(error.value).startswith(
        f"{inventory}: cannot load inventory: defaults.yaml: defaults: data.ssh.verify_host_keys: "
    )
    assert "must be true or false" in str(error.value)


def test_one_host_may_opt_out_alone(tmp_path: Path) -> None:
    hosts = INVENTORY["hosts.yaml"].replace(
        "h2:\n  hostname: 192.0.2.2\n",
        "h2:\n  hostname: 192.0.2.2\n  data:\n    ssh:\n      verify_host_keys: false\n",
    )
    nr = init_nornir(write_inventory(tmp_path / "inv", hosts_yaml=hosts))
    assert {host: extras(nr, host)["ssh_strict"] for host in nr.inventory.hosts} == {
        "h1": True,
        "h2": False,
        "deployer": True,
    }


def test_timeouts_key_file_and_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_PASSPHRASE_ENV, "from-the-environment")
    inventory = with_ssh(
        tmp_path / "inv", "    connect_timeout: 4\n    key_file: keys/id_ed25519\n"
    )
    options = extras(init_nornir(inventory))
    assert (options["conn_timeout"], options["auth_timeout"], options["banner_timeout"]) == (
        4,
        4,
        4,
    )
    assert options["key_file"] == str(inventory / "keys/id_ed25519")
    assert options["passphrase"] == "from-the-environment"


def test_every_host_runs_at_once_unless_told_otherwise(tmp_path: Path) -> None:
    hosts = "".join(f"n{i}:\n  hostname: 192.0.2.{i}\n" for i in range(30))
    inventory = write_inventory(tmp_path / "inv", hosts_yaml=hosts)
    assert init_nornir(inventory).runner.num_workers == 30  # type: ignore[attr-defined]
    assert init_nornir(inventory, workers=5).runner.num_workers == 5  # type: ignore[attr-defined]
    small = init_nornir(write_inventory(tmp_path / "small"))
    assert small.runner.num_workers == 20  # type: ignore[attr-defined]  # config.yaml's floor


def test_hosts_in_flight_are_capped_unless_workers_says_otherwise(tmp_path: Path) -> None:
    hosts = "".join(f"n{i}:\n  hostname: 10.9.{i // 250}.{i % 250 + 1}\n" for i in range(120))
    inventory = write_inventory(tmp_path / "inv", hosts_yaml=hosts)
    assert init_nornir(inventory).runner.num_workers == 50  # type: ignore[attr-defined]
    assert init_nornir(inventory, workers=120).runner.num_workers == 120  # type: ignore[attr-defined]


def test_the_settings_reach_the_connection(nr: Nornir, fleet: Fleet, inventory_dir: Path) -> None:
    fleet["h1"].script["true"] = (0, "", "")
    assert not run_on(nr, "h1", run_command, argv=["true"]).failed
    [opened] = fleet["h1"].opened
    assert opened["hostname"] == "192.0.2.1" and opened["username"] == "root"
    assert opened["extras"]["ssh_strict"] is True
    assert opened["extras"]["alt_key_file"] == str(inventory_dir / "known_hosts")
