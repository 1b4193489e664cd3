"""A failed connection says why: refused, no route, timed out, not SSH; never a traceback."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fakes import Fleet, run_on
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoTimeoutException
from nornir.core import Nornir

from tasks.ssh import RemoteError, run_command
from tasks.ssh_errors import connect_cause, quiet_paramiko


def netmiko_error(cause: BaseException) -> NetmikoTimeoutException:
    """What netmiko raises: its own text, raised while handling the real cause."""
    try:
        raise cause
    except BaseException:  # noqa: BLE001
        try:
            raise NetmikoTimeoutException("TCP connection to device failed.\n\nCommon causes")
        except NetmikoTimeoutException as error:
            return error
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("cause", "said"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (TimeoutError("timed out"), "timed out after 10 s"),
    ],
)
def test_a_connection_failure_says_its_cause_not_netmikos_text(
    nr: Nornir, fleet: Fleet, cause: BaseException, said: str
) -> None:
    fleet["h1"].connect_error = netmiko_error(cause)
    result = run_on(nr, "h1", run_command, argv=["true"])
    assert isinstance(result[0].exception, RemoteError)
    assert str(result[0].exception) == f"h1 (192.0.2.1:22): cannot connect: {said}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that closes at once, answers like HTTP, or never answers."""
    mode = request.param
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                peer, _ = listener.accept()
            except TimeoutError:
                continue  # look at `stop` again
            except OSError:
                return
            if mode == "http":
                peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            if mode == "silent":
                held.append(peer)
            else:
                peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    listener.close()
    for peer in held:
        peer.close()


def connect_error(port: int) -> BaseException:
    try:
        ConnectHandler(
            device_type="linux",
            host="127.0.0.1",
            port=port,
            username="nobody",
            password="unused",
            conn_timeout=1,
            banner_timeout=1,
            auth_timeout=1,
        )
    except Exception as error:  # noqa: BLE001 - the test looks at it
        return error
    raise AssertionError("connected")


@pytest.mark.parametrize(
    ("server", "said"),
    [
        ("close", "not an SSH server"),
        ("http", "not an SSH server"),
        ("silent", "timed out after 1 s"),
    ],
    indirect=["server"],
)
def test_a_port_that_is_not_ssh_says_so_without_a_traceback(
    server: int, said: str, capfd: pytest.CaptureFixture[str]
) -> None:
    quiet_paramiko()  # what tasks.ssh.connection does before connecting
    cause = connect_cause(connect_error(server), 1)
    time.sleep(0.3)  # paramiko's transport thread logs after the caller has its error
    assert cause is not None and cause.startswith(said)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_a_closed_port_is_connection_refused() -> None:
    assert connect_cause(connect_error(free_port()), 1) == "connection refused"
