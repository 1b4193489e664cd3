"""The test suite's own guard: no test sends a packet beyond loopback and the lab bridge."""

from __future__ import annotations

import socket

import pytest


@pytest.mark.parametrize("address", ["192.0.2.11", "10.99.0.11", "8.8.8.8", "10.240.1.5"])
def test_a_connection_outside_the_lab_and_loopback_is_refused(address: str) -> None:
    with pytest.raises(ConnectionRefusedError, match="not lab, not loopback"):
        socket.create_connection((address, 22), timeout=1)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
