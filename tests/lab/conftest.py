"""One lab per test session, shared by every lab test; each test leaves it healthy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nornir.core import Nornir

from kubenorn.nornir_setup import REPO_ROOT, init_nornir

LAB_INVENTORY = REPO_ROOT / "lab" / "inventory"


@pytest.fixture(scope="session")
def lab():  # noqa: ANN201 - lab.machine is test equipment, imported only here
    from lab.machine import Lab

    machine = Lab.load()
    machine.up()
    machine.prebuild_upgrade_from()  # on idle CPU until test_lab_upgrade needs it
    return machine


@pytest.fixture(scope="session")
def lab_inventory(lab) -> Path:  # noqa: ANN001
    return LAB_INVENTORY


@pytest.fixture
def nr(lab) -> Iterator[Nornir]:  # noqa: ANN001
    nornir = init_nornir(LAB_INVENTORY)
    yield nornir
    nornir.close_connections(on_good=True, on_failed=True)


LAST = "test_lab_upgrade.py"  # purges the hosts, and gives its background build the most time


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/lab is a lab test; the upgrade's run after the other lab tests."""
    lab = [item for item in items if "tests/lab/" in str(item.path)]
    for item in lab:
        item.add_marker(pytest.mark.lab)
    last = [item for item in lab if item.path.name == LAST]
    if not last:
        return
    rest = [item for item in items if item.path.name != LAST]
    after = 1 + max(
        (i for i, item in enumerate(rest) if "tests/lab/" in str(item.path)), default=-1
    )
    items[:] = [*rest[:after], *last, *rest[after:]]
