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
    return machine


@pytest.fixture(scope="session")
def lab_inventory(lab) -> Path:  # noqa: ANN001
    return LAB_INVENTORY


@pytest.fixture
def nr(lab) -> Iterator[Nornir]:  # noqa: ANN001
    nornir = init_nornir(LAB_INVENTORY)
    yield nornir
    nornir.close_connections(on_good=True, on_failed=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/lab is a lab test."""
    for item in items:
        if "tests/lab/" in str(item.path):
            item.add_marker(pytest.mark.lab)
