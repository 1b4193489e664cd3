"""tasks.hostkeys with real paramiko keys and a known_hosts file written here."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import paramiko
import pytest
from fakes import Fleet, run_on, write_inventory
from netmiko.exceptions import NetmikoTimeoutException
from nornir.core import Nornir

from tasks import hostkeys
from tasks.ssh import RemoteError, run_command

KEY_A = paramiko.ECDSAKey.generate()
KEY_B = paramiko.ECDSAKey.generate()
KEY_C = paramiko.ECDSAKey.generate()


def openssh_fingerprint(key: paramiko.PKey) -> str:
    """What `ssh-keygen -l` prints, computed here without paramiko's help."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def entry(host: str, key: paramiko.PKey) -> str:
    return f"{host} {key.get_name()} {key.get_base64()}\n"


def paramiko_unknown_host_message(hostname: str) -> str:
    """paramiko's own words when RejectPolicy refuses an unknown host."""
    # All RejectPolicy asks of its client is _log (a real SSHClient logs through its transport).
    client = cast(paramiko.SSHClient, SimpleNamespace(_log=lambda level, message: None))
    try:
        paramiko.RejectPolicy().missing_host_key(client, hostname, KEY_A)
    except paramiko.SSHException as error:
        return str(error)
    raise AssertionError("RejectPolicy accepted an unknown host")


def paramiko_changed_key_message(hostname: str) -> str:
    return str(paramiko.BadHostKeyException(hostname, KEY_B, KEY_A))


def netmiko_wrapped(message: str) -> str:
    """How netmiko passes on a paramiko SSHException raised while connecting."""
    return f"\nA paramiko SSHException occurred during connection creation:\n\n{message}\n\n"


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(
        entry("192.0.2.1", KEY_A)
        + entry("[192.0.2.2]:2222", KEY_B)
        + entry(paramiko.HostKeys.hash_host("192.0.2.9"), KEY_C)
        + "# a comment line\n"
    )
    return path


def test_the_fingerprint_is_openssh_sha256() -> None:
    assert hostkeys.fingerprint(KEY_A) == openssh_fingerprint(KEY_A)
    assert hostkeys.fingerprint(KEY_A).startswith("ecdsa-sha2-nistp256 SHA256:")


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("192.0.2.1", 22, [KEY_A]),
        ("192.0.2.1", 2222, []),  # a key for port 22 says nothing about another port
        ("192.0.2.2", 2222, [KEY_B]),
        ("192.0.2.2", 22, []),
        ("192.0.2.9", 22, [KEY_C]),  # hashed entries (HashKnownHosts yes)
        ("192.0.2.99", 22, []),
    ],
)
def test_known_keys_looks_up_address_and_port(
    known_hosts: Path, address: str, port: int, expected: list[paramiko.PKey]
) -> None:
    assert hostkeys.known_keys(known_hosts, address, port) == expected


def test_a_missing_known_hosts_file_knows_no_key(tmp_path: Path) -> None:
    assert hostkeys.known_keys(tmp_path / "absent", "192.0.2.1", 22) == []


@pytest.mark.parametrize(
    ("message", "is_failure"),
    [
        (paramiko_unknown_host_message("192.0.2.1"), True),
        (paramiko_unknown_host_message("[192.0.2.2]:2222"), True),
        (paramiko_changed_key_message("192.0.2.1"), True),
        (netmiko_wrapped(paramiko_unknown_host_message("192.0.2.1")), True),
        (netmiko_wrapped("Error reading SSH protocol banner"), False),
        ("TCP connection to device failed.\n\nCommon causes of this problem are:", False),
        ("Authentication to device failed.", False),
    ],
)
def test_host_key_failures_are_told_from_other_connection_errors(
    message: str, is_failure: bool
) -> None:
    assert hostkeys.is_host_key_failure(message) is is_failure


@pytest.fixture
def presented(monkeypatch: pytest.MonkeyPatch) -> Callable[[paramiko.PKey | Exception], None]:
    """Make each host present `key` (or fail to, with an exception) instead of connecting."""

    def present(key: paramiko.PKey | Exception) -> None:
        def fake_presented_key(address: str, port: int, timeout: float = 5.0) -> paramiko.PKey:
            assert (address, port) in (("192.0.2.1", 22), ("192.0.2.2", 2222))
            if isinstance(key, Exception):
                raise key
            return key

        monkeypatch.setattr(hostkeys, "presented_key", fake_presented_key)

    return present


@pytest.fixture
def keyed_nr(
    make_nr: Callable[..., Nornir], tmp_path: Path, known_hosts: Path
) -> tuple[Nornir, Path]:
    """h1 on port 22, h2 on port 2222, known_hosts in the inventory directory."""
    hosts = (
        "h1:\n  hostname: 192.0.2.1\n"
        "h2:\n  hostname: 192.0.2.2\n  port: 2222\n"
        "deployer:\n  hostname: 192.0.2.3\n  username: deploy\n"
    )
    inventory = write_inventory(tmp_path / "keyed", hosts_yaml=hosts)
    target = inventory / "known_hosts"
    target.write_text(known_hosts.read_text())
    return make_nr(inventory), target


def explain(nr: Nornir, host: str) -> str:
    return hostkeys.explain(nr.inventory.hosts[host])


def test_an_unknown_host_names_host_address_key_and_file(
    keyed_nr: tuple[Nornir, Path], presented: Callable[[paramiko.PKey], None]
) -> None:
    nr, known_hosts = keyed_nr
    known_hosts.write_text(entry("192.0.2.7", KEY_A))
    presented(KEY_B)
    assert explain(nr, "h1") == (
        f"h1 (192.0.2.1:22): host key {openssh_fingerprint(KEY_B)} is not in {known_hosts}; "
        "refusing to connect to an unknown host"
    )


@pytest.mark.parametrize(
    ("host", "address", "expected"),
    [("h1", "192.0.2.1:22", KEY_A), ("h2", "192.0.2.2:2222", KEY_B)],
)
def test_a_changed_key_names_what_was_presented_and_what_was_expected(
    keyed_nr: tuple[Nornir, Path],
    presented: Callable[[paramiko.PKey], None],
    host: str,
    address: str,
    expected: paramiko.PKey,
) -> None:
    nr, known_hosts = keyed_nr
    presented(KEY_C)
    assert explain(nr, host) == (
        f"{host} ({address}): host key CHANGED: it presented {openssh_fingerprint(KEY_C)} but "
        f"{known_hosts} expects {openssh_fingerprint(expected)}; refusing to connect"
    )


def test_a_host_that_cannot_be_asked_again_still_gets_an_explanation(
    keyed_nr: tuple[Nornir, Path], presented: Callable[[Exception], None]
) -> None:
    nr, known_hosts = keyed_nr
    presented(ConnectionRefusedError(111, "Connection refused"))
    message = explain(nr, "h1")
    assert message.startswith("h1 (192.0.2.1:22): host key CHANGED: it presented (could not")
    assert "Connection refused" in message and openssh_fingerprint(KEY_A) in message


def test_a_rejected_host_key_fails_the_task_with_the_explanation(
    keyed_nr: tuple[Nornir, Path],
    fleet: Fleet,
    presented: Callable[[paramiko.PKey], None],
) -> None:
    nr, known_hosts = keyed_nr
    presented(KEY_C)
    error = NetmikoTimeoutException(netmiko_wrapped(paramiko_changed_key_message("192.0.2.1")))
    fleet["h1"].connect_error = error
    result = run_on(nr, "h1", run_command, argv=["true"])
    assert isinstance(result[0].exception, RemoteError)
    message = str(result[0].exception)
    assert message.startswith("h1 (192.0.2.1:22): host key CHANGED")
    assert openssh_fingerprint(KEY_C) in message and openssh_fingerprint(KEY_A) in message
    assert fleet["h1"].commands == []
