"""Unit-test fixtures: Nornir on a fake SSH connection, over an inventory in a temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nornir.core import Nornir
from nornir.core.plugins.connections import ConnectionPluginRegister

sys.path.insert(0, str(Path(__file__).parent))

import fake_ssh  # noqa: E402

from kubenorn.nornir_setup import init_nornir  # noqa: E402

HOSTS = {"h1": "192.0.2.1", "h2": "192.0.2.2", "deployer": "192.0.2.3"}
INVENTORY = {
    "hosts.yaml": "".join(
        f"{name}:\n  hostname: {address}\n  groups: [nodes]\n"
        + ("  username: deploy\n" if name == "deployer" else "")
        for name, address in HOSTS.items()
    ),
    "groups.yaml": "nodes: {}\n",
    "defaults.yaml": "username: root\nplatform: linux\ndata:\n  ssh:\n    command_timeout: 5\n",
}


@pytest.fixture
def fake_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, fake_ssh.FakeHost]]:
    """A FakeHost per inventory host, by host name; the fake plugin serves them as netmiko."""
    ConnectionPluginRegister.auto_register()
    # InitNornir registers entry points again, which would clash with the fake: not now.
    monkeypatch.setattr(ConnectionPluginRegister, "auto_register", lambda: None)
    real = ConnectionPluginRegister.available.get("netmiko")
    ConnectionPluginRegister.available["netmiko"] = fake_ssh.FakeConnectionPlugin  # type: ignore[assignment]
    hosts = {name: fake_ssh.FakeHost() for name in HOSTS}
    fake_ssh.FAKE_HOSTS.update({HOSTS[name]: host for name, host in hosts.items()})
    yield hosts
    fake_ssh.FAKE_HOSTS.clear()
    fake_ssh.CONNECT_ERRORS.clear()
    if real is not None:
        ConnectionPluginRegister.available["netmiko"] = real


@pytest.fixture
def inventory_dir(tmp_path: Path) -> Path:
    for name, text in INVENTORY.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def nr(fake_hosts: dict[str, fake_ssh.FakeHost], inventory_dir: Path) -> Iterator[Nornir]:
    nornir = init_nornir(inventory_dir)
    yield nornir
    nornir.close_connections(on_good=True, on_failed=True)
