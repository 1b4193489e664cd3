"""A fake of what kubenorn uses of a netmiko connection: exec channels and SFTP, in memory.

Registered under the real connection name ("netmiko"), so real Nornir tasks run against it.
Commands are scripted (exact line or regex -> rc, stdout, stderr, or a callable); anything
unscripted fails the test.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Reply = tuple[int, str, str]
Script = dict[str | re.Pattern[str], Reply | Callable[[str, bytes], Reply]]

PASSWD = "root:x:0:0::/root:/bin/sh\netcd:x:110:115::/var/lib/etcd:/bin/false\n"
GROUPS = "root:x:0:\netcd:x:115:\nnogroup:x:65534:\n"
BASE_SCRIPT: Script = {
    "getent passwd": (0, PASSWD, ""),
    "getent group": (0, GROUPS, ""),
}


class UnscriptedCommand(AssertionError):
    pass


@dataclass
class FakeFile:
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    directory: bool = False


@dataclass
class FakeHost:
    """One host's scripted commands, its files, and the log of what was done to it."""

    script: Script = field(default_factory=dict)
    files: dict[str, FakeFile] = field(default_factory=dict)
    commands: list[tuple[str, bytes]] = field(default_factory=list)
    sftp_log: list[tuple[str, ...]] = field(default_factory=list)
    hang: set[str] = field(default_factory=set)
    fail_write_after: int | None = None
    nodelay: bool = False

    def reply(self, line: str, stdin: bytes) -> Reply:
        for pattern, answer in {**BASE_SCRIPT, **self.script}.items():
            matched = pattern == line if isinstance(pattern, str) else pattern.fullmatch(line)
            if matched:
                return answer(line, stdin) if callable(answer) else answer
        raise UnscriptedCommand(f"unscripted command: {line!r}")


class FakeChannel:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.line = ""
        self.stdin = b""
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.rc: int | None = None
        self._read, self._write = os.pipe()

    def exec_command(self, line: str) -> None:
        self.line = line

    def sendall(self, data: bytes) -> None:
        self.stdin += data

    def shutdown_write(self) -> None:
        self.host.commands.append((self.line, self.stdin))
        if self.line in self.host.hang:
            return
        rc, stdout, stderr = self.host.reply(self.line, self.stdin)
        # Delivered in small chunks, to exercise the reading loop.
        self.out = [stdout.encode()[i : i + 3] for i in range(0, len(stdout.encode()), 3)]
        self.err = [stderr.encode()[i : i + 3] for i in range(0, len(stderr.encode()), 3)]
        self.rc = rc

    def recv_ready(self) -> bool:
        return bool(self.out)

    def recv(self, size: int) -> bytes:
        return self.out.pop(0)

    def recv_stderr_ready(self) -> bool:
        return bool(self.err)

    def recv_stderr(self, size: int) -> bytes:
        return self.err.pop(0)

    def exit_status_ready(self) -> bool:
        return self.rc is not None

    def recv_exit_status(self) -> int:
        assert self.rc is not None
        return self.rc

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class FakeRemoteFile(io.BytesIO):
    def __init__(self, sftp: FakeSFTP, path: str, mode: str) -> None:
        self.sftp, self.path, self.writing = sftp, path, "w" in mode
        existing = sftp.host.files.get(path)
        super().__init__(b"" if self.writing or existing is None else existing.data)

    def prefetch(self) -> None:
        return None

    def set_pipelined(self, pipelined: bool = True) -> None:
        return None

    def write(self, data: Any) -> int:
        limit = self.sftp.host.fail_write_after
        if limit is not None and self.tell() + len(data) > limit:
            super().write(data[: max(0, limit - self.tell())])
            self._store()
            raise OSError("connection lost")
        return super().write(data)

    def close(self) -> None:
        if self.writing and not self.closed:
            self._store()
        super().close()

    def _store(self) -> None:
        old = self.sftp.host.files.get(self.path)
        self.sftp.host.files[self.path] = FakeFile(self.getvalue(), old.mode if old else 0o644)


class FakeSFTP:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def open(self, path: str, mode: str = "rb") -> FakeRemoteFile:
        self.host.sftp_log.append(("open", path, mode))
        if "r" in mode and path not in self.host.files:
            raise FileNotFoundError(path)
        return FakeRemoteFile(self, path, mode)

    def stat(self, path: str) -> Any:
        if path not in self.host.files:
            raise FileNotFoundError(path)
        entry = self.host.files[path]
        kind = stat.S_IFDIR if entry.directory else stat.S_IFREG
        return type(
            "Attrs", (), {"st_mode": kind | entry.mode, "st_uid": entry.uid, "st_gid": entry.gid}
        )()

    def chmod(self, path: str, mode: int) -> None:
        self.host.sftp_log.append(("chmod", path, oct(mode)))
        self.host.files[path].mode = mode

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.host.sftp_log.append(("chown", path, f"{uid}:{gid}"))
        self.host.files[path].uid, self.host.files[path].gid = uid, gid

    def posix_rename(self, old: str, new: str) -> None:
        self.host.sftp_log.append(("rename", old, new))
        self.host.files[new] = self.host.files.pop(old)


class FakeSocket:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def setsockopt(self, level: int, option: int, value: int) -> None:
        import socket

        if (level, option, value) == (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1):
            self.host.nodelay = True


class FakeTransport:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.sock = FakeSocket(host)

    def is_active(self) -> bool:
        return True

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        return FakeChannel(self.host)

    def open_sftp_client(self) -> FakeSFTP:
        return FakeSFTP(self.host)


class FakeClient:
    def __init__(self, host: FakeHost) -> None:
        self.transport = FakeTransport(host)

    def get_transport(self) -> FakeTransport:
        return self.transport


class FakeNetmiko:
    """Stands in for netmiko's BaseConnection: only `remote_conn_pre` is used."""

    def __init__(self, host: FakeHost) -> None:
        self.remote_conn_pre = FakeClient(host)


# Keyed by the address the inventory gives as `hostname`.
FAKE_HOSTS: dict[str, FakeHost] = {}
CONNECT_ERRORS: dict[str, Exception] = {}


class FakeConnectionPlugin:
    """The Nornir connection plugin registered as "netmiko" during unit tests."""

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Any = None,
    ) -> None:
        address = hostname or ""
        if address in CONNECT_ERRORS:
            raise CONNECT_ERRORS[address]
        self.connection = FakeNetmiko(FAKE_HOSTS[address])

    def close(self) -> None:
        return None
