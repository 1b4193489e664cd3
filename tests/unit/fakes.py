"""A fake of what kubenorn uses of a netmiko connection: exec channels and SFTP, in memory.

The conftest registers `FakeConnection` under the real connection name ("netmiko"), so real
Nornir tasks run against a `FakeHost` per inventory host:

- commands run against the host's script: an exact command line or a compiled regex mapped to
  (rc, stdout, stderr) or to a callable `(line, stdin) -> (rc, stdout, stderr)`; `getent passwd`
  and `getent group` answer from `FakeHost.passwd` / `.groups`, `sudo -n -k true` from
  `FakeHost.sudo_nopasswd` (whether sudo wants a password). Anything else is recorded as
  unscripted, fails the task, and the fixture fails the test (pyinfra's strictness).
- files live in `FakeHost.files` {path: FakeFile(data, mode, uid, gid)}; SFTP sees them with the
  permissions of the SSH user (a non-root user may write under /tmp only, reads what its
  mode allows, and reaches nothing, not even a stat, below a directory entry it may not
  search: EACCES, as real SFTP says, whether the file is there or not).
- `coreutils=True` makes install/mv/rm/chmod/chown/cat/cp/test -e/stat -c act on those files,
  with the same permissions unless the line runs through sudo, so a test can check the end
  state too.
"""

from __future__ import annotations

import errno
import re
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nornir.core import Nornir
from nornir.core.task import MultiResult, Result, Task

Reply = tuple[int, str, str]
Handler = Callable[[str, bytes], Reply]
Script = dict[str | re.Pattern[str], Reply | Handler]

PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "etcd:x:110:115::/var/lib/etcd:/usr/sbin/nologin\n"
    "deploy:x:1000:1000::/home/deploy:/bin/bash\n"
)
GROUPS = "root:x:0:\netcd:x:115:\ndeploy:x:1000:\nnogroup:x:65534:\n"
SUDO_PREFIXES = (["sudo", "-n", "--"], ["sudo", "-S", "-k", "-p", "", "--"])


class UnscriptedCommand(AssertionError):
    """The code ran a command the test did not script."""


@dataclass
class FakeFile:
    """A file (or, with `directory`, a directory) on a fake host."""

    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    directory: bool = False


@dataclass
class FakeHost:
    """One host: its script and files, and the log of everything done to it."""

    name: str = ""
    script: Script = field(default_factory=dict)
    files: dict[str, FakeFile] = field(default_factory=dict)
    passwd: str = PASSWD
    groups: str = GROUPS
    coreutils: bool = False
    sudo_nopasswd: bool = False  # sudo lets the SSH user in without a password (NOPASSWD)
    hang: set[str] = field(default_factory=set)  # command lines that never finish
    fail_write_after: int | None = None  # an SFTP write raises OSError after this many bytes
    connect_error: Exception | None = None
    transport_active: bool = True  # False: every connection to this host is dead
    chunk: int = 3  # output arrives this many bytes at a time
    # What happened:
    commands: list[tuple[str, bytes]] = field(default_factory=list)  # (line, stdin)
    sftp_log: list[tuple[str, ...]] = field(default_factory=list)  # open/chmod/chown/rename/remove
    events: list[tuple[str, ...]] = field(default_factory=list)  # commands and SFTP, in order
    unscripted: list[str] = field(default_factory=list)
    sockopts: list[tuple[int, int, int]] = field(default_factory=list)
    session_timeouts: list[float | None] = field(default_factory=list)
    opened: list[dict[str, Any]] = field(default_factory=list)  # each connection's parameters
    open_connections: int = 0
    transports: list[FakeTransport] = field(default_factory=list)  # one per connection opened
    open_channels: int = 0
    sftp_clients: int = 0

    @property
    def nodelay(self) -> bool:
        return (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in self.sockopts

    def lines(self) -> list[str]:
        """The command lines run, in order."""
        return [line for line, _ in self.commands]

    def writes(self) -> list[tuple[str, ...]]:
        """SFTP operations that change something, in order."""
        return [op for op in self.sftp_log if op[0] != "open" or op[2] != "rb"]

    def uid_of(self, user: str) -> int | None:
        return _database(self.passwd).get(user)

    def gid_of(self, group: str) -> int | None:
        return _database(self.groups).get(group)

    def reply(self, line: str, stdin: bytes, user: str) -> Reply:
        for pattern, answer in self.script.items():
            if pattern == line if isinstance(pattern, str) else pattern.fullmatch(line):
                return answer(line, stdin) if callable(answer) else answer
        if line == "getent passwd":
            return 0, self.passwd, ""
        if line == "getent group":
            return 0, self.groups, ""
        if line == "sudo -n -k true":  # tasks.ssh asks whether sudo wants a password
            return (0, "", "") if self.sudo_nopasswd else (1, "", "sudo: a password is required\n")
        if self.coreutils and (emulated := Coreutils(self, user).run(line)) is not None:
            return emulated
        self.unscripted.append(line)
        raise UnscriptedCommand(f"{self.name}: unscripted command: {line!r}")


def _database(text: str) -> dict[str, int]:
    return {f[0]: int(f[2]) for f in (line.split(":") for line in text.splitlines()) if len(f) > 2}


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file", path)


def _denied(path: str) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", path)


class Access:
    """What a user may do to the fake host's files (root: anything)."""

    def __init__(self, host: FakeHost, user: str) -> None:
        self.host, self.user = host, user
        self.uid = 0 if user == "root" else host.uid_of(user)

    def entry(self, path: str) -> FakeFile:
        self.check_search(path)
        if path not in self.host.files:
            raise _missing(path)
        return self.host.files[path]

    def check_search(self, path: str) -> None:
        """EACCES when a directory on the way to `path` is one the user may not search."""
        if self.uid == 0:
            return
        gid = self.host.gid_of(self.user)
        parent = path.rsplit("/", 1)[0]
        while parent:
            directory = self.host.files.get(parent)
            if directory is not None and directory.directory:
                bit = (
                    stat.S_IXUSR
                    if directory.uid == self.uid
                    else stat.S_IXGRP
                    if directory.gid == gid
                    else stat.S_IXOTH
                )
                if not directory.mode & bit:
                    raise _denied(path)
            parent = parent.rsplit("/", 1)[0]

    def check_read(self, path: str) -> FakeFile:
        entry = self.entry(path)
        if self.uid not in (0, entry.uid) and not entry.mode & stat.S_IROTH:
            raise _denied(path)
        return entry

    def check_write(self, path: str) -> None:
        if self.uid != 0 and not path.startswith("/tmp/"):
            raise _denied(path)

    def check_owner(self, path: str) -> FakeFile:
        entry = self.entry(path)
        if self.uid not in (0, entry.uid):
            raise _denied(path)
        return entry

    def create(self, path: str, data: bytes = b"", mode: int = 0o644) -> FakeFile:
        """The file at `path` (created, or truncated keeping its mode and owner), like O_TRUNC."""
        self.check_write(path)
        entry = self.host.files.get(path)
        if entry is None:
            gid = 0 if self.uid == 0 else self.host.gid_of(self.user) or 0
            entry = self.host.files[path] = FakeFile(b"", mode, self.uid or 0, gid)
        entry.data = data
        return entry

    def chown(self, path: str, uid: int, gid: int) -> None:
        entry = self.check_owner(path)
        if self.uid != 0 and uid != entry.uid:
            raise _denied(path)
        entry.uid, entry.gid = uid, gid
        # Linux clears set-user-ID (and set-group-ID with group exec) on chown, even for root.
        clear = stat.S_ISUID | (stat.S_ISGID if entry.mode & stat.S_IXGRP else 0)
        entry.mode &= ~clear

    def chmod(self, path: str, mode: int) -> None:
        self.check_owner(path).mode = stat.S_IMODE(mode)

    def rename(self, old: str, new: str) -> None:
        self.entry(old)
        self.check_write(old)
        self.check_write(new)
        if new in self.host.files and self.host.files[new].directory:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", new)
        self.host.files[new] = self.host.files.pop(old)

    def remove(self, path: str) -> None:
        self.entry(path)
        self.check_write(path)
        del self.host.files[path]


COMMANDS = ("install", "mv", "rm", "chmod", "chown", "cat", "cp", "test", "stat")


class Coreutils:
    """The few commands kubenorn runs on files, acting on the fake host's files."""

    def __init__(self, host: FakeHost, user: str) -> None:
        self.host, self.user = host, user

    def run(self, line: str) -> Reply | None:
        argv, user = shlex.split(line), self.user
        for prefix in SUDO_PREFIXES:
            if argv[: len(prefix)] == prefix:
                argv, user = argv[len(prefix) :], "root"
        if not argv or argv[0] not in COMMANDS:
            return None
        options, operands = _options(argv[1:])
        try:
            return getattr(self, argv[0])(Access(self.host, user), options, operands)
        except OSError as error:
            return 1, "", f"{argv[0]}: {error.filename}: {error.strerror}\n"

    def install(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        uid, gid = self.host.uid_of(options["-o"]), self.host.gid_of(options["-g"])
        if uid is None or gid is None:
            return 1, "", f"install: invalid user or group {options['-o']}:{options['-g']}\n"
        if "-d" in options:
            [path] = operands
            entry = self.host.files.get(path) or FakeFile(directory=True)
            access.check_write(path)
            self.host.files[path] = entry
        else:
            source, path = operands
            entry = access.create(path, access.check_read(source).data)
        entry.mode, entry.uid, entry.gid = int(options["-m"], 8), uid, gid
        return 0, "", ""

    def mv(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        access.rename(*operands)
        return 0, "", ""

    def rm(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        for path in operands:
            if path in self.host.files:
                access.remove(path)
        return 0, "", ""

    def chmod(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        mode, path = operands
        access.chmod(path, int(mode, 8))
        return 0, "", ""

    def chown(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        owner, path = operands
        user, _, group = owner.partition(":")
        uid, gid = self.host.uid_of(user), self.host.gid_of(group or user)
        if uid is None or gid is None:
            return 1, "", f"chown: invalid user: {owner!r}\n"
        access.chown(path, uid, gid)
        return 0, "", ""

    def cat(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        return 0, b"".join(access.check_read(path).data for path in operands).decode(), ""

    def cp(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        """Into an existing file it keeps that file's owner and mode, as cp does."""
        source, path = operands
        access.create(path, access.check_read(source).data)
        return 0, "", ""

    def test(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        """`test -e PATH`: exit 1, silently, when it is missing or out of the user's reach."""
        try:
            access.entry(operands[-1])
        except OSError:
            return 1, "", ""
        return 0, "", ""

    def stat(self, access: Access, options: dict[str, str], operands: list[str]) -> Reply:
        """`stat -c FORMAT -- PATH` with %a %U %G %F %n."""
        form, [path] = options["-c"], operands
        entry = access.entry(path)
        names = {v: k for k, v in _database(self.host.passwd).items()}
        groups = {v: k for k, v in _database(self.host.groups).items()}
        fields = {
            "%a": f"{entry.mode:o}",
            "%U": names.get(entry.uid, "UNKNOWN"),
            "%G": groups.get(entry.gid, "UNKNOWN"),
            "%F": "directory" if entry.directory else "regular file",
            "%n": path,
        }
        return 0, re.sub(r"%[aUGFn]", lambda m: fields[m.group()], form) + "\n", ""


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Options (-m 0644, -d, ...) and operands (all of them after `--`)."""
    options: dict[str, str] = {}
    operands: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            operands += rest
        elif arg.startswith("-"):
            options[arg] = next(rest) if arg in ("-m", "-o", "-g", "-c") else ""
        else:
            operands.append(arg)
    return options, operands


class FakeChannel:
    """One exec channel, ordered as OpenSSH sends: the exit status as soon as the command ends,
    possibly before its output; EOF after the last output. Its clock ticks once per `recv`:
    one chunk of output arrives per tick (stdout and stderr interleaved); a read that finds
    no stdout times out at once (after the channel's timeout for a hanging command)."""

    def __init__(self, host: FakeHost, user: str) -> None:
        self.host, self.user = host, user
        self.line: str | None = None
        self.stdin = bytearray()
        self._pending: list[tuple[bytearray, bytes]] = []
        self._out, self._err = bytearray(), bytearray()
        self._rc: int | None = None
        self.status_event = threading.Event()
        self.timeout: float | None = None
        self.closed = False
        host.open_channels += 1

    def exec_command(self, line: str) -> None:
        assert self.line is None, "one command per exec channel"
        self.line = line

    def sendall(self, data: bytes) -> None:
        self.stdin += data

    def shutdown_write(self) -> None:
        assert self.line is not None, "shutdown_write before exec_command"
        self.host.commands.append((self.line, bytes(self.stdin)))
        self.host.events.append(("run", self.line))
        if self.line in self.host.hang:
            return
        rc, stdout, stderr = self.host.reply(self.line, bytes(self.stdin), self.user)
        size = self.host.chunk
        outs = [stdout.encode()[i : i + size] for i in range(0, len(stdout.encode()), size)]
        errs = [stderr.encode()[i : i + size] for i in range(0, len(stderr.encode()), size)]
        for index in range(max(len(outs), len(errs))):
            self._pending += [(self._out, outs[index])] if index < len(outs) else []
            self._pending += [(self._err, errs[index])] if index < len(errs) else []
        self._rc = rc
        self.status_event.set()

    def recv_ready(self) -> bool:
        return bool(self._out)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        if self._pending:
            buffer, chunk = self._pending.pop(0)
            buffer += chunk
        if not self._out and not self.eof_received:
            if self.line in self.host.hang:
                time.sleep(self.timeout or 0)
            raise TimeoutError("timed out")
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def recv_stderr_ready(self) -> bool:
        return bool(self._err)

    def recv_stderr(self, size: int) -> bytes:
        data = bytes(self._err[:size])
        del self._err[:size]
        return data

    @property
    def eof_received(self) -> bool:
        return self._rc is not None and not self._pending

    def exit_status_ready(self) -> bool:
        return self._rc is not None

    def recv_exit_status(self) -> int:
        assert self._rc is not None, f"recv_exit_status() would block forever on {self.line!r}"
        return self._rc

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.host.open_channels -= 1


class FakeRemoteFile:
    """An open SFTP file; writes land in the host's file as they happen, like a remote file."""

    def __init__(self, host: FakeHost, path: str, entry: FakeFile, writing: bool) -> None:
        self.host, self.path, self.entry, self.writing = host, path, entry, writing
        self.position = 0

    def __enter__(self) -> FakeRemoteFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prefetch(self, file_size: int | None = None) -> None:
        return None

    def set_pipelined(self, pipelined: bool = True) -> None:
        return None

    def read(self, size: int | None = None) -> bytes:
        end = len(self.entry.data) if size is None else self.position + size
        data = self.entry.data[self.position : end]
        self.position += len(data)
        return data

    def write(self, data: bytes) -> None:
        assert self.writing, "write to a file opened for reading"
        limit = self.host.fail_write_after
        if limit is not None and self.position + len(data) > limit:
            self._put(data[: max(0, limit - self.position)])
            raise OSError("Socket is closed")
        self._put(data)

    def _put(self, data: bytes) -> None:
        # Logged in `events` only, with the mode the data landed under.
        landed = f"{len(data)} bytes at {oct(self.entry.mode)}"
        self.host.events.append(("write", self.path, landed))
        self.entry.data = self.entry.data[: self.position] + data
        self.position += len(data)

    def close(self) -> None:
        return None


@dataclass
class FakeAttributes:
    st_mode: int
    st_uid: int
    st_gid: int
    st_size: int


class FakeSFTP:
    """An SFTP client logged in as `user`."""

    def __init__(self, host: FakeHost, user: str) -> None:
        self.host, self.access = host, Access(host, user)

    def _log(self, *operation: str) -> None:
        self.host.sftp_log.append(operation)
        self.host.events.append(operation)

    def open(self, path: str, mode: str = "r", bufsize: int = -1) -> FakeRemoteFile:
        self._log("open", path, mode)
        if any(flag in mode for flag in "wax+"):
            return FakeRemoteFile(self.host, path, self.access.create(path), writing=True)
        return FakeRemoteFile(self.host, path, self.access.check_read(path), writing=False)

    def stat(self, path: str) -> FakeAttributes:
        self.host.events.append(("stat", path))
        entry = self.access.entry(path)
        kind = stat.S_IFDIR if entry.directory else stat.S_IFREG
        return FakeAttributes(kind | entry.mode, entry.uid, entry.gid, len(entry.data))

    def chmod(self, path: str, mode: int) -> None:
        self._log("chmod", path, oct(mode))
        self.access.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._log("chown", path, f"{uid}:{gid}")
        self.access.chown(path, uid, gid)

    def posix_rename(self, old: str, new: str) -> None:
        self._log("rename", old, new)
        self.access.rename(old, new)

    def remove(self, path: str) -> None:
        self._log("remove", path)
        self.access.remove(path)


class FakeSocket:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.host.sockopts.append((level, option, value))


class FakeTransport:
    def __init__(self, host: FakeHost, user: str) -> None:
        self.host, self.user = host, user
        self.sock = FakeSocket(host)
        self.active = True  # False: this one connection dropped
        host.transports.append(self)

    def is_active(self) -> bool:
        return self.active and self.host.transport_active

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        self.host.session_timeouts.append(timeout)
        return FakeChannel(self.host, self.user)

    def open_sftp_client(self) -> FakeSFTP:
        self.host.sftp_clients += 1
        return FakeSFTP(self.host, self.user)


class FakeSSHClient:
    def __init__(self, host: FakeHost, user: str) -> None:
        self.transport = FakeTransport(host, user)

    def get_transport(self) -> FakeTransport:
        return self.transport


class FakeNetmiko:
    """Stands in for netmiko's BaseConnection: kubenorn only uses `remote_conn_pre`."""

    def __init__(self, host: FakeHost, user: str) -> None:
        self.remote_conn_pre = FakeSSHClient(host, user)


class FakeConnection:
    """The Nornir connection plugin registered as "netmiko"; subclassed per fleet."""

    fleet: ClassVar[Fleet]

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
        host = self.fleet.at(hostname or "")
        host.opened.append(
            {"hostname": hostname, "username": username, "port": port, "extras": extras or {}}
        )
        if host.connect_error is not None:
            raise host.connect_error
        self.host = host
        self.connection = FakeNetmiko(host, username or "root")
        host.open_connections += 1

    def close(self) -> None:
        self.host.open_connections -= 1


@dataclass
class Fleet:
    """The fake hosts of one test, by inventory name, and the address each one answers on."""

    hosts: dict[str, FakeHost]
    addresses: dict[str, str]  # address -> inventory name

    def __getitem__(self, name: str) -> FakeHost:
        return self.hosts[name]

    def at(self, address: str) -> FakeHost:
        return self.hosts[self.addresses[address]]

    def plugin(self) -> type[FakeConnection]:
        return type("FakeNetmikoConnection", (FakeConnection,), {"fleet": self})

    def problems(self) -> list[str]:
        """What the test should fail on even if its assertions passed."""
        hosts = self.hosts.values()
        found = [f"{h.name}: unscripted command {line!r}" for h in hosts for line in h.unscripted]
        found += [
            f"{h.name}: {h.open_channels} channel(s) left open" for h in hosts if h.open_channels
        ]
        return found


def run_on(nr: Nornir, host: str, task: Callable[..., Any], **kwargs: Any) -> MultiResult:
    """Run a Nornir task on one host (even one that failed before) and return its results."""
    return nr.filter(name=host).run(task=task, on_failed=True, **kwargs)[host]


def call(nr: Nornir, host: str, function: Callable[[Task], Any]) -> Any:
    """What `function(task)` returns on `host`, or the exception it raised, re-raised."""

    def wrapper(task: Task) -> Result:
        return Result(host=task.host, result=function(task))

    result = run_on(nr, host, wrapper)[0]
    if result.exception is not None:
        raise result.exception
    return result.result


# The unit-test inventory: two root hosts in group etcd, one host logging in as "deploy".
ADDRESSES = {"h1": "192.0.2.1", "h2": "192.0.2.2", "deployer": "192.0.2.3"}
INVENTORY = {
    "hosts.yaml": (
        "h1:\n  hostname: 192.0.2.1\n  groups: [etcd]\n"
        "h2:\n  hostname: 192.0.2.2\n  groups: [etcd]\n"
        "deployer:\n  hostname: 192.0.2.3\n  username: deploy\n  groups: [nodes]\n"
    ),
    "groups.yaml": "etcd: {}\nnodes: {}\n",
    "defaults.yaml": "username: root\nplatform: linux\ndata:\n  ssh:\n    command_timeout: 5\n",
}


def write_inventory(directory: Path, **files: str) -> Path:
    """The unit-test inventory in `directory`, with `files` ("hosts.yaml"=...) replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {**INVENTORY, **{k.replace("_", "."): v for k, v in files.items()}}.items():
        (directory / name).write_text(text)
    return directory
