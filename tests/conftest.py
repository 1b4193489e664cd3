"""Settings every test shares."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenorn.history import HISTORY_ENV

# Where tests may send packets: loopback and the lab bridge (lab/lab.yaml's gateway network).
# The reference inventory's documentation addresses (192.0.2.0/24) can be a real network on
# the machine, so a test that reached for them would send traffic where it must never go.
ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.240.0.0/24"))
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _allowed(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # a unix socket
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return False  # a name: tests resolve nothing
    return ip.is_loopback or any(ip in network for network in ALLOWED)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(
            f"tests may not connect to {address!r} (not lab, not loopback)"
        )
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(
            f"tests may not connect to {address!r} (not lab, not loopback)"
        )
    return _connect_ex(self, address)


@pytest.fixture(scope="session", autouse=True)
def only_lab_and_loopback() -> Iterator[None]:
    """No test connects anywhere but loopback and the lab bridge (from this process)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def session_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs made by tests (session fixtures included) never reach the user's history."""
    path = tmp_path_factory.mktemp("session-history") / "history.sqlite"
    previous = os.environ.get(HISTORY_ENV)
    os.environ[HISTORY_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(HISTORY_ENV, None)
    else:
        os.environ[HISTORY_ENV] = previous


@pytest.fixture(autouse=True)
def private_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's own runs go to a history of its own."""
    path = tmp_path_factory.mktemp("history") / "history.sqlite"
    monkeypatch.setenv(HISTORY_ENV, str(path))
    return path


@pytest.fixture
def run_notebook(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], list[dict[str, Any]]]:
    """Execute a notebook (from the repository root, on `inventory` as KUBENORN_INVENTORY);
    its outputs. The committed notebook must hold none."""
    import nbclient
    import nbformat

    from kubenorn.nornir_setup import REPO_ROOT

    def execute(inventory: Path) -> list[dict[str, Any]]:
        notebook = nbformat.read(REPO_ROOT / "notebooks" / "explore.ipynb", as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.get("outputs", []) == [] for cell in code)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
        monkeypatch.setenv("KUBENORN_INVENTORY", str(inventory))
        monkeypatch.delenv("MPLBACKEND", raising=False)  # the plots must render
        resources = {"metadata": {"path": str(REPO_ROOT)}}
        nbclient.NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources=resources
        ).execute()
        return [o for cell in notebook.cells for o in cell.get("outputs", [])]

    return execute
