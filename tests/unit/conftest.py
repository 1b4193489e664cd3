"""Unit-test fixtures: Nornir over an inventory in a temp dir, on fake SSH connections.

`fleet` registers a fake connection plugin as "netmiko" (the real one comes back afterwards)
and fails the test if the code ran an unscripted command or left an exec channel open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import ADDRESSES, FakeHost, Fleet, write_inventory
from nornir.core import Nornir
from nornir.core.plugins.connections import ConnectionPluginRegister

from kubenorn.nornir_setup import init_nornir


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """A FakeHost per inventory host, served as the "netmiko" connection."""
    ConnectionPluginRegister.auto_register()  # the real plugins, so they can be put back
    fake = Fleet(
        hosts={name: FakeHost(name=name) for name in ADDRESSES},
        addresses={address: name for name, address in ADDRESSES.items()},
    )
    monkeypatch.setitem(ConnectionPluginRegister.available, "netmiko", fake.plugin())
    # InitNornir registers the entry points again, which would clash with the fake.
    monkeypatch.setattr(ConnectionPluginRegister, "auto_register", lambda: None)
    yield fake
    if problems := fake.problems():
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def inventory_dir(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "inventory")


@pytest.fixture
def make_nr(fleet: Fleet, inventory_dir: Path) -> Iterator[Callable[..., Nornir]]:
    """Build Nornir objects on the fleet (`make_nr(dry_run=True)`); their connections closed."""
    made: list[Nornir] = []

    def make(inventory: Path | None = None, *, dry_run: bool = False) -> Nornir:
        made.append(init_nornir(inventory or inventory_dir, dry_run=dry_run))
        return made[-1]

    yield make
    for nornir in made:
        nornir.close_connections(on_good=True, on_failed=True)


@pytest.fixture
def nr(make_nr: Callable[..., Nornir]) -> Nornir:
    return make_nr()
