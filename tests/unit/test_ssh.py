"""tasks.ssh on the fake connection: quoting, sudo, results, failures, timeouts, connecting."""

from __future__ import annotations

import subprocess
import time

import paramiko
import pytest
from fakes import Fleet, call, run_on
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
from nornir.core import Nornir

from tasks.ssh import (
    SUDO_PASSWORD_ENV,
    CommandError,
    CommandResult,
    CommandTimeout,
    RemoteError,
    command_line,
    run,
    run_command,
)

# Device settings as netmiko words its connection errors (netmiko/base_connection.py).
NETMIKO_TCP_FAILURE = """TCP connection to device failed.

Common causes of this problem are:
1. Incorrect hostname or IP address.
2. Wrong TCP port.
3. Intermediate firewall blocking access.

Device settings: linux 192.0.2.1:22

"""
NETMIKO_AUTH_FAILURE = """Authentication to device failed.

Common causes of this problem are:
1. Invalid username and password
2. Incorrect SSH-key file
3. Connecting to the wrong device

Device settings: linux 192.0.2.1:22


Authentication failed."""
NETMIKO_SSH_EXCEPTION = """
A paramiko SSHException occurred during connection creation:

Error reading SSH protocol banner

"""


@pytest.fixture(autouse=True)
def no_sudo_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SUDO_PASSWORD_ENV, raising=False)


ARGUMENTS = [
    ["a b", "two  spaces"],
    ["it's", 'say "hi"', "back\\slash"],
    ["x; rm -rf /", "a && b", "a | b", "> /etc/passwd"],
    ["$(id)", "`id`", "$HOME", "${PATH}"],
    ["*", "[a-z]*", "~", "#comment"],
    ["", "line\nbreak", "tab\there"],
]


@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_every_argument_reaches_the_remote_shell_literally(arguments: list[str]) -> None:
    line = command_line(["printf", "%s\\0", *arguments])
    # The same line a remote sh -c would run, run by the local sh: each argument intact.
    printed = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    assert printed.decode().split("\0")[:-1] == arguments


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["systemctl", "restart", "etcd"], "systemctl restart etcd"),
        (["echo", "a b"], "echo 'a b'"),
        (["sh", "-c", "x; y"], "sh -c 'x; y'"),
        (["echo", "$(id)"], "echo '$(id)'"),
        (["printf", "it's"], "printf 'it'\"'\"'s'"),
    ],
)
def test_arguments_are_quoted_once(argv: list[str], line: str) -> None:
    assert command_line(argv) == line


@pytest.mark.parametrize(
    ("user", "sudo", "password", "line"),
    [
        ("root", False, None, "id -u"),
        ("root", True, None, "id -u"),
        ("root", True, "pw", "id -u"),
        ("deploy", False, None, "id -u"),
        ("deploy", False, "pw", "id -u"),
        ("deploy", True, None, "sudo -n -- id -u"),
        ("deploy", True, "pw", "sudo -S -k -p '' -- id -u"),
    ],
)
def test_sudo_prefixes_only_other_users_commands_that_ask_for_it(
    monkeypatch: pytest.MonkeyPatch, user: str, sudo: bool, password: str | None, line: str
) -> None:
    if password:
        monkeypatch.setenv(SUDO_PASSWORD_ENV, password)
    assert command_line(["id", "-u"], sudo=sudo, user=user) == line


def test_the_sudo_password_goes_to_stdin_before_the_data_never_into_the_line(
    nr: Nornir, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUDO_PASSWORD_ENV, "s3cret pass")
    fleet["deployer"].script["sudo -S -k -p '' -- tee /etc/x"] = (0, "", "")
    call(nr, "deployer", lambda task: run(task, ["tee", "/etc/x"], sudo=True, stdin=b"data\n"))
    # First, once per connection: does sudo want a password at all? (It does.)
    [probe, (line, stdin)] = fleet["deployer"].commands
    assert probe == ("sudo -n -k true", b"")
    assert "s3cret" not in line
    assert stdin == b"s3cret pass\ndata\n"


def test_a_nopasswd_sudo_is_never_fed_the_password_which_would_reach_the_command(
    nr: Nornir, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUDO_PASSWORD_ENV, "s3cret")
    fleet["deployer"].sudo_nopasswd = True
    fleet["deployer"].script["sudo -n -- tee /etc/x"] = (0, "", "")
    for _ in range(2):
        call(nr, "deployer", lambda task: run(task, ["tee", "/etc/x"], sudo=True, stdin=b"data"))
    assert fleet["deployer"].commands == [
        ("sudo -n -k true", b""),  # asked once per connection
        ("sudo -n -- tee /etc/x", b"data"),
        ("sudo -n -- tee /etc/x", b"data"),
    ]


def test_the_sudo_password_is_never_sent_to_a_command_without_sudo(
    nr: Nornir, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUDO_PASSWORD_ENV, "s3cret")
    fleet["h1"].script["tee /etc/x"] = (0, "", "")
    fleet["deployer"].script["cat"] = (0, "", "")
    call(nr, "h1", lambda task: run(task, ["tee", "/etc/x"], sudo=True, stdin=b"data"))
    call(nr, "deployer", lambda task: run(task, ["cat"]))
    assert fleet["h1"].commands == [("tee /etc/x", b"data")]
    assert fleet["deployer"].commands == [("cat", b"")]


def test_stdout_stderr_and_status_come_back_separately_and_whole(nr: Nornir, fleet: Fleet) -> None:
    stdout, stderr = "ünïcode split across chunks\n" * 20, "wärning: something\n" * 7
    fleet["h1"].script["check"] = (3, stdout, stderr)
    result = call(nr, "h1", lambda task: run(task, ["check"], ok_codes=(0, 3)))
    assert isinstance(result, CommandResult)
    assert (result.command, result.rc, result.stdout, result.stderr) == (
        "check",
        3,
        stdout,
        stderr,
    )
    assert result.duration >= 0


def test_a_command_uses_the_inventory_timeout_and_turns_nagle_off(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].script["true"] = (0, "", "")
    call(nr, "h1", lambda task: run(task, ["true"]))
    call(nr, "h1", lambda task: run(task, ["true"], timeout=1.5))
    assert fleet["h1"].session_timeouts == [5.0, 1.5]  # defaults.yaml: ssh.command_timeout: 5
    assert fleet["h1"].nodelay, "TCP_NODELAY was not set on the transport's socket"


@pytest.mark.parametrize(
    ("reply", "ok_codes", "message"),
    [
        ((0, "", ""), (0,), None),
        ((1, "", ""), (0, 1), None),
        ((100, "", "E: Unable to locate package x\n"), (0,), "E: Unable to locate package x"),
        ((2, "only stdout\n", ""), (0,), "only stdout"),
        ((0, "", ""), (1,), "(no output)"),
    ],
)
def test_only_the_accepted_exit_codes_pass(
    nr: Nornir, fleet: Fleet, reply: tuple[int, str, str], ok_codes: tuple[int, ...], message: str
) -> None:
    fleet["h1"].script["apt-get install x"] = reply
    argv = ["apt-get", "install", "x"]
    if message is None:
        assert call(nr, "h1", lambda task: run(task, argv, ok_codes=ok_codes)).rc == reply[0]
        return
    with pytest.raises(CommandError) as error:
        call(nr, "h1", lambda task: run(task, argv, ok_codes=ok_codes))
    assert str(error.value) == f"h1: `apt-get install x` exited {reply[0]}: {message}"
    assert error.value.result.rc == reply[0]


def test_a_long_stderr_keeps_its_end_in_the_message(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].script["build"] = (1, "", "noise\n" * 1000 + "the actual error\n")
    with pytest.raises(CommandError) as error:
        call(nr, "h1", lambda task: run(task, ["build"]))
    assert str(error.value).endswith("noise\nthe actual error")
    assert len(str(error.value)) < 2100


def test_a_hung_command_times_out_with_a_clear_message(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].hang.add("sleep 1000")
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as error:
        call(nr, "h1", lambda task: run(task, ["sleep", "1000"], timeout=0.2))
    assert time.monotonic() - started >= 0.2  # it waited that long, and no more was asked:
    assert fleet["h1"].session_timeouts == [0.2]  # not the inventory's 5 s
    assert str(error.value) == (
        "h1: `sleep 1000` did not finish within the timeout and was abandoned"
    )
    assert fleet["h1"].open_channels == 0


def test_a_connection_that_stays_closed_is_a_remote_error(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].transport_active = False
    with pytest.raises(RemoteError, match="^h1: the SSH connection has closed$"):
        call(nr, "h1", lambda task: run(task, ["true"]))
    assert len(fleet["h1"].opened) == 2, "one reconnect, then the error"


def test_a_connection_dropped_between_commands_is_reopened_once(nr: Nornir, fleet: Fleet) -> None:
    host = fleet["h1"]
    host.script["true"] = (0, "", "")
    call(nr, "h1", lambda task: run(task, ["true"]))
    host.transports[-1].active = False  # sshd restarted, say
    assert call(nr, "h1", lambda task: run(task, ["true"])).rc == 0
    assert (len(host.opened), host.open_connections) == (2, 1), "the dead one closed"
    assert host.lines() == ["true", "true"]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            NetmikoTimeoutException(NETMIKO_TCP_FAILURE),
            "h1 (192.0.2.1:22): cannot connect: TCP connection to device failed.",
        ),
        (
            NetmikoTimeoutException(NETMIKO_SSH_EXCEPTION),
            "h1 (192.0.2.1:22): cannot connect: not an SSH server (no SSH banner)",
        ),
        (
            NetmikoAuthenticationException(NETMIKO_AUTH_FAILURE),
            "h1 (192.0.2.1): authentication failed: Authentication failed.",
        ),
    ],
)
def test_a_connection_failure_names_the_host_and_the_reason(
    nr: Nornir, fleet: Fleet, error: Exception, message: str
) -> None:
    fleet["h1"].connect_error = error
    result = run_on(nr, "h1", run_command, argv=["true"])
    assert result.failed
    assert isinstance(result[0].exception, RemoteError)
    assert str(result[0].exception) == message
    assert fleet["h1"].commands == []


def test_the_connection_gets_kubenorns_ssh_settings(nr: Nornir, fleet: Fleet) -> None:
    fleet["deployer"].script["true"] = (0, "", "")
    run_on(nr, "deployer", run_command, argv=["true"])
    [opened] = fleet["deployer"].opened
    assert (opened["hostname"], opened["username"]) == ("192.0.2.3", "deploy")
    assert opened["extras"]["ssh_strict"] is True


def test_run_command_is_a_task_that_fails_only_the_failing_host(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].script["systemctl is-active etcd"] = (3, "inactive\n", "")
    fleet["h2"].script["systemctl is-active etcd"] = (0, "active\n", "")
    results = nr.filter(filter_func=lambda host: host.name in ("h1", "h2")).run(
        task=run_command, argv=["systemctl", "is-active", "etcd"]
    )
    assert sorted(results.failed_hosts) == ["h1"]
    assert str(results["h1"][0].exception) == "h1: `systemctl is-active etcd` exited 3: inactive"
    ok = results["h2"][0]
    assert (ok.result, ok.stdout, ok.stderr, getattr(ok, "rc", None), ok.changed) == (
        "active\n",
        "active\n",
        "",
        0,
        False,
    )


def test_each_command_gets_its_own_channel_on_one_connection(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].script["a"] = (0, "1\n", "")
    fleet["h1"].script["b"] = (0, "2\n", "")

    def output_of(command: str) -> str:
        return call(nr, "h1", lambda task: run(task, [command]).stdout)

    outputs = [output_of(c) for c in "ab"]
    assert outputs == ["1\n", "2\n"]
    assert len(fleet["h1"].opened) == 1
    assert fleet["h1"].open_channels == 0


def test_an_unscripted_command_fails_the_task(nr: Nornir, fleet: Fleet) -> None:
    result = run_on(nr, "h1", run_command, argv=["rm", "-rf", "/"])
    assert result.failed and "unscripted command: 'rm -rf /'" in str(result[0].exception)
    assert fleet.problems() == ["h1: unscripted command 'rm -rf /'"]
    fleet["h1"].unscripted.clear()  # expected here; the fixture fails any other test on it


def test_paramiko_is_what_the_fake_stands_in_for() -> None:
    # The fake mimics these; if paramiko renamed them, the fake would test nothing real.
    for name in ("open_session", "open_sftp_client", "is_active"):
        assert hasattr(paramiko.Transport, name)
    for name in (
        "exec_command",
        "sendall",
        "shutdown_write",
        "recv_ready",
        "recv",
        "recv_stderr_ready",
        "recv_stderr",
        "exit_status_ready",
        "recv_exit_status",
        "settimeout",
        "close",
    ):
        assert hasattr(paramiko.Channel, name)
    for name in ("eof_received", "closed", "status_event"):  # set in Channel.__init__
        assert hasattr(paramiko.Channel(0), name)
    for name in ("open", "stat", "chmod", "chown", "posix_rename"):
        assert hasattr(paramiko.SFTPClient, name)
