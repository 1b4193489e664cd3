"""Run commands on a host over an exec channel of the SSH connection nornir-netmiko keeps.

Prompt scraping cannot tell success from failure, so every command whose outcome matters runs
on its own exec channel of netmiko's paramiko transport: stdout, stderr and the exit status come
back separately, and the arguments are quoted here, once.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko
from netmiko import BaseConnection
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
from nornir.core.task import Result, Task

from tasks import hostkeys
from tasks.ssh_errors import connect_cause, quiet_paramiko

DEFAULT_TIMEOUT = 60.0
POLL = 0.05  # how long one read waits for stdout before stderr is drained again
STDIN_CHUNK = 256 * 1024  # bytes handed to Channel.sendall at a time
# A sudo password is a secret: it comes from the environment and goes to sudo's stdin only.
SUDO_PASSWORD_ENV = "KUBENORN_SUDO_PASSWORD"


class RemoteError(Exception):
    """A remote operation failed; the message names the host and what went wrong."""


class CommandError(RemoteError):
    """A command exited with a status the caller did not accept."""

    def __init__(self, host: str, result: CommandResult) -> None:
        stderr = result.stderr.strip() or result.stdout.strip() or "(no output)"
        super().__init__(f"{host}: `{result.command}` exited {result.rc}: {stderr[-2000:]}")
        self.result = result


class CommandTimeout(RemoteError):
    """A command did not finish within its timeout."""


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did."""

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float


def connection(task: Task) -> BaseConnection:
    """This host's netmiko connection, opened once per run; host-key failures say which key."""
    host = task.host
    quiet_paramiko()
    try:
        return host.get_connection("netmiko", task.nornir.config)
    except NetmikoTimeoutException as error:
        if hostkeys.is_host_key_failure(str(error)):
            raise RemoteError(hostkeys.explain(host)) from None
        extras = host.get_connection_parameters("netmiko").extras or {}
        cause = connect_cause(error, float(extras.get("conn_timeout", 10)))
        raise RemoteError(
            f"{host.name} ({host.hostname}:{host.port or 22}): cannot connect: "
            f"{cause or _first_line(error)}"
        ) from None
    except NetmikoAuthenticationException as error:
        raise RemoteError(
            f"{host.name} ({host.hostname}): authentication failed: {_last_line(error)}"
        ) from None


def active_transport(task: Task) -> paramiko.Transport | None:
    """The paramiko transport under this host's connection, or None when it has dropped."""
    client = connection(task).remote_conn_pre
    ssh_transport = client.get_transport() if client is not None else None
    return ssh_transport if ssh_transport is not None and ssh_transport.is_active() else None


def transport(task: Task) -> paramiko.Transport:
    """The paramiko transport under this host's connection, with Nagle's algorithm off."""
    ssh_transport = active_transport(task)
    if ssh_transport is None:
        # Dropped between commands (sshd restarted, a network blip): reconnect once, keys
        # verified again. A command that was in flight has failed already and said so.
        task.host.close_connection("netmiko")
        ssh_transport = active_transport(task)
    if ssh_transport is None:
        raise RemoteError(f"{task.host.name}: the SSH connection has closed")
    # paramiko never sets TCP_NODELAY; without it each small exchange waits ~40 ms for ACKs.
    # (Behind a jump host the "socket" is a channel, which has no options to set.)
    setsockopt = getattr(ssh_transport.sock, "setsockopt", None)
    if setsockopt is not None:
        setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ssh_transport


def command_line(
    argv: Sequence[str], *, sudo: bool = False, user: str = "root", password: bool | None = None
) -> str:
    """Quote `argv` for the remote shell, prefixed with sudo when needed; `password`: whether
    sudo is fed one (default: whether KUBENORN_SUDO_PASSWORD is set)."""
    line = shlex.join(argv)
    if not sudo or user == "root":
        return line
    if password is None:
        password = bool(os.environ.get(SUDO_PASSWORD_ENV))
    # -k: a cached credential never spares sudo its read, so the password fed on stdin is
    # always consumed by sudo and never reaches the command behind it.
    prompt = "-S -k -p ''" if password else "-n"
    return f"sudo {prompt} -- {line}"


# Asked once per connection when a password is set: does sudo want one at all (NOPASSWD)?
SUDO_PROBE = "sudo -n -k true"
_sudo_wants_password: weakref.WeakKeyDictionary[paramiko.Transport, bool] = (
    weakref.WeakKeyDictionary()
)


def sudo_wants_password(task: Task) -> bool:
    """Whether this host's sudo must be fed KUBENORN_SUDO_PASSWORD: set, and no NOPASSWD rule
    lets the user in without it (a password sudo does not read would go to the command)."""
    if not os.environ.get(SUDO_PASSWORD_ENV) or (task.host.username or "root") == "root":
        return False
    ssh_transport = transport(task)
    if ssh_transport not in _sudo_wants_password:
        probe = execute(ssh_transport, SUDO_PROBE, timeout=_timeout(task), host=task.host.name)
        _sudo_wants_password[ssh_transport] = probe.rc != 0
    return _sudo_wants_password[ssh_transport]


def run(
    task: Task,
    argv: Sequence[str],
    *,
    sudo: bool = False,
    ok_codes: Sequence[int] = (0,),
    timeout: float | None = None,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run `argv` on the host; raise CommandError unless its exit status is in `ok_codes`."""
    user = task.host.username or "root"
    line = command_line(argv, sudo=sudo, user=user, password=sudo and sudo_wants_password(task))
    result = execute(
        transport(task),
        line,
        timeout=timeout or _timeout(task),
        stdin=_with_sudo_password(stdin, line),
        host=task.host.name,
    )
    if result.rc not in ok_codes:
        raise CommandError(task.host.name, result)
    return result


def execute(
    ssh_transport: paramiko.Transport,
    line: str,
    *,
    timeout: float,
    stdin: bytes | None = None,
    host: str = "",
) -> CommandResult:
    """Run one already-quoted command line on its own exec channel and collect everything."""
    started = time.monotonic()
    channel = ssh_transport.open_session(timeout=timeout)
    try:
        channel.exec_command(line)
        if stdin is not None:
            send_all(channel, stdin)
        channel.shutdown_write()
        deadline = started + timeout
        stdout, stderr = _collect(channel, deadline, host, line)
        # OpenSSH sends the exit status when the process exits, EOF once its output is all sent.
        if not channel.status_event.wait(max(deadline - time.monotonic(), 0)):
            raise CommandTimeout(f"{host}: `{line}` sent no exit status within the timeout")
        rc = channel.recv_exit_status()
    finally:
        channel.close()
    return CommandResult(
        line,
        rc,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


def send_all(channel: paramiko.Channel, data: bytes) -> None:
    """Channel.sendall re-slices what is left after every packet, quadratic in the length (an
    80 MB image archive took a minute of CPU): it gets the data in pieces of STDIN_CHUNK."""
    for offset in range(0, len(data), STDIN_CHUNK):
        channel.sendall(data[offset : offset + STDIN_CHUNK])


def _collect(
    channel: paramiko.Channel, deadline: float, host: str, line: str
) -> tuple[bytes, bytes]:
    """Drain stdout and stderr until EOF. Not until the exit status: sshd may send that while
    the last output is still on its way (seen as a lost final line under load).

    A blocking read wakes on stdout data or EOF; stderr is drained between reads. No
    Channel.fileno(): paramiko's transport thread may signal the pipe behind it while
    close() is closing that pipe, and an EBADF there kills the whole connection.
    """
    stdout, stderr = bytearray(), bytearray()
    while True:
        channel.settimeout(max(min(deadline - time.monotonic(), POLL), 0.001))
        try:
            chunk: bytes | None = channel.recv(65536)
        except TimeoutError:
            chunk = None
        stdout += chunk or b""
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(65536)
        if chunk == b"":  # EOF, after all the output of both streams
            return bytes(stdout), bytes(stderr)
        if time.monotonic() >= deadline:
            raise CommandTimeout(
                f"{host}: `{line}` did not finish within the timeout and was abandoned"
            )


def run_command(
    task: Task,
    argv: Sequence[str],
    *,
    sudo: bool = False,
    ok_codes: Sequence[int] = (0,),
    timeout: float | None = None,
) -> Result:
    """Run `argv` as a Nornir task: stdout in the result, failed unless the exit status is ok."""
    result = run(task, argv, sudo=sudo, ok_codes=ok_codes, timeout=timeout)
    return Result(
        host=task.host,
        result=result.stdout,
        stdout=result.stdout,
        stderr=result.stderr,
        rc=result.rc,
    )


def _timeout(task: Task) -> float:
    ssh = task.host.get("ssh") or {}
    return float(ssh.get("command_timeout", DEFAULT_TIMEOUT))


def _with_sudo_password(stdin: bytes | None, line: str) -> bytes | None:
    password = os.environ.get(SUDO_PASSWORD_ENV)
    if not password or not line.startswith("sudo -S"):
        return stdin
    return password.encode() + b"\n" + (stdin or b"")


def _first_line(error: Exception) -> str:
    """The first line that says something; netmiko heads a paramiko error with "...:" lines."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fallback = lines[0] if lines else type(error).__name__
    return next((line for line in lines if not line.endswith(":")), fallback)


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
