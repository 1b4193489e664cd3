"""tasks.files on the fake connection: given a host's files, expect these writes and this diff."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes import FakeFile, FakeHost, Fleet, call, run_on
from nornir.core import Nornir

from tasks.files import (
    MAX_DIFF_BYTES,
    FileMeta,
    content_diff,
    ensure_absent,
    ensure_directory,
    ensure_file,
    file_meta,
    files_in_place,
    read_file,
)
from tasks.ssh import RemoteError

PATH, TEMP = "/etc/app.conf", "/etc/.app.conf.kubenorn-tmp"
READS = ["getent passwd", "getent group"]  # the accounts, read once per connection
ATOMIC_PUT: list[tuple[str, ...]] = [
    ("open", TEMP, "wb"),
    ("chmod", TEMP, "0o600"),
    ("chown", TEMP, "110:115"),
    ("chmod", TEMP, "0o640"),
    ("rename", TEMP, PATH),
]


@dataclass
class Case:
    """Given `before` at PATH, ensure_file(**args) says `changed` and `diff`, makes `writes`."""

    before: FakeFile | None
    args: dict[str, Any]
    changed: bool
    diff: str
    writes: list[tuple[str, ...]]
    after: FakeFile | None = None  # default: as before
    commands: list[str] = field(default_factory=lambda: list(READS))


CASES = {
    "created": Case(
        before=None,
        args={"content": "a=1\n", "mode": "0640", "owner": "etcd"},
        changed=True,
        diff=f"--- /dev/null\n+++ {PATH}\n@@ -0,0 +1 @@\n+a=1\n",
        writes=ATOMIC_PUT,
        after=FakeFile(b"a=1\n", 0o640, 110, 115),
    ),
    "already right: nothing written": Case(
        before=FakeFile(b"a=1\n", 0o640, 110, 115),
        args={"content": "a=1\n", "mode": "0640", "owner": "etcd"},
        changed=False,
        diff="",
        writes=[],
    ),
    "content changed": Case(
        before=FakeFile(b"a=1\nb=2\n", 0o640, 110, 115),
        args={"content": "a=1\nb=3\n", "mode": "640", "owner": "etcd"},
        changed=True,
        diff=f"--- {PATH}\n+++ {PATH}\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=3\n",
        writes=ATOMIC_PUT,
        after=FakeFile(b"a=1\nb=3\n", 0o640, 110, 115),
    ),
    "mode only: no rewrite": Case(
        before=FakeFile(b"same\n", 0o600),
        args={"content": "same\n"},
        changed=True,
        diff=f"{PATH}: mode 0600 -> 0644\n",
        writes=[("chown", PATH, "0:0"), ("chmod", PATH, "0o644")],
        after=FakeFile(b"same\n", 0o644),
    ),
    "owner only: no rewrite": Case(
        before=FakeFile(b"same\n", 0o640),
        args={"content": b"same\n", "mode": "0640", "owner": "etcd", "group": "root"},
        changed=True,
        diff=f"{PATH}: owner root -> etcd\n",
        writes=[("chown", PATH, "110:0"), ("chmod", PATH, "0o640")],
        after=FakeFile(b"same\n", 0o640, 110, 0),
    ),
    "content, mode and group": Case(
        before=FakeFile(b"old\n", 0o644, 110, 0),
        args={"content": "new\n", "mode": "0640", "owner": "etcd"},
        changed=True,
        diff=f"--- {PATH}\n+++ {PATH}\n@@ -1 +1 @@\n-old\n+new\n"
        f"{PATH}: mode 0644 -> 0640, group root -> etcd\n",
        writes=ATOMIC_PUT,
        after=FakeFile(b"new\n", 0o640, 110, 115),
    ),
    "empty file created": Case(
        before=None,
        args={"content": ""},
        changed=True,
        diff=f"--- /dev/null\n+++ {PATH}\n(empty file created)\n",
        writes=[
            ("open", TEMP, "wb"),
            ("chmod", TEMP, "0o600"),
            ("chown", TEMP, "0:0"),
            ("chmod", TEMP, "0o644"),
            ("rename", TEMP, PATH),
        ],
        after=FakeFile(b"", 0o644, 0, 0),
    ),
    "secret created: content never shown": Case(
        before=None,
        args={"content": "KEY-MATERIAL\n", "mode": "0600", "secret": True},
        changed=True,
        diff=f"--- {PATH}\n+++ {PATH}\n(secret content created; not shown)\n",
        writes=[
            ("open", TEMP, "wb"),
            ("chmod", TEMP, "0o600"),
            ("chown", TEMP, "0:0"),
            ("chmod", TEMP, "0o600"),
            ("rename", TEMP, PATH),
        ],
        after=FakeFile(b"KEY-MATERIAL\n", 0o600),
    ),
    "secret changed: content never shown": Case(
        before=FakeFile(b"OLD-KEY\n", 0o644),
        args={"content": "NEW-KEY\n", "mode": "0600", "secret": True},
        changed=True,
        diff=f"--- {PATH}\n+++ {PATH}\n(secret content changed; not shown)\n"
        f"{PATH}: mode 0644 -> 0600\n",
        writes=[
            ("open", TEMP, "wb"),
            ("chmod", TEMP, "0o600"),
            ("chown", TEMP, "0:0"),
            ("chmod", TEMP, "0o600"),
            ("rename", TEMP, PATH),
        ],
        after=FakeFile(b"NEW-KEY\n", 0o600),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_ensure_file(nr: Nornir, fleet: Fleet, case: Case) -> None:
    host = fleet["h1"]
    if case.before is not None:
        host.files[PATH] = FakeFile(**vars(case.before))
    result = run_on(nr, "h1", ensure_file, path=PATH, **case.args)
    assert not result.failed, result[0].exception
    assert (result[0].changed, result[0].diff) == (case.changed, case.diff)
    assert host.writes() == case.writes
    assert host.lines() == case.commands
    assert host.files.get(PATH) == (case.after or case.before)
    assert ("open", PATH, "wb") not in host.sftp_log, "the target was opened for writing"
    assert TEMP not in host.files


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_ensure_file_dry_run_tells_the_same_diff_and_writes_nothing(
    make_nr: Callable[..., Nornir], fleet: Fleet, case: Case
) -> None:
    host = fleet["h1"]
    if case.before is not None:
        host.files[PATH] = FakeFile(**vars(case.before))
    result = run_on(make_nr(dry_run=True), "h1", ensure_file, path=PATH, **case.args)
    assert (result[0].changed, result[0].diff) == (case.changed, case.diff)
    assert host.writes() == []
    assert host.files.get(PATH) == case.before


def test_the_task_argument_overrides_dry_run_both_ways(
    nr: Nornir, make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    assert run_on(nr, "h1", ensure_file, path=PATH, content="x\n", dry_run=True)[0].changed
    assert PATH not in fleet["h1"].files
    dry = make_nr(dry_run=True)
    assert run_on(dry, "h1", ensure_file, path=PATH, content="x\n", dry_run=False)[0].changed
    assert fleet["h1"].files[PATH].data == b"x\n"


def test_a_second_run_changes_nothing_and_writes_nothing(nr: Nornir, fleet: Fleet) -> None:
    args = {"path": PATH, "content": "a=1\n", "mode": "0640", "owner": "etcd"}
    assert run_on(nr, "h1", ensure_file, **args)[0].changed
    fleet["h1"].sftp_log.clear()
    again = run_on(nr, "h1", ensure_file, **args)[0]
    assert (again.changed, again.diff) == (False, "")
    assert fleet["h1"].writes() == []
    assert fleet["h1"].lines() == READS  # the accounts were read once, for both runs
    assert fleet["h1"].sftp_clients == 1


def test_a_user_created_mid_run_is_found_by_reading_the_accounts_once_more(
    nr: Nornir, fleet: Fleet
) -> None:
    host = fleet["h1"]
    run_on(nr, "h1", ensure_file, path="/etc/a", content="a")  # accounts read and cached
    host.passwd += "kube:x:200:200::/var/lib/kube:/usr/sbin/nologin\n"  # a package made it
    host.groups += "kube:x:200:\n"
    result = run_on(nr, "h1", ensure_file, path="/etc/b", content="b", owner="kube")
    assert not result.failed, result[0].exception
    assert (host.files["/etc/b"].uid, host.files["/etc/b"].gid) == (200, 200)
    assert host.lines() == READS * 2


def test_a_file_owned_by_a_user_created_mid_run_is_not_a_change(nr: Nornir, fleet: Fleet) -> None:
    host = fleet["h1"]
    run_on(nr, "h1", ensure_file, path="/etc/a", content="a")  # accounts read and cached
    # A package creates its user and ships a file owned by it.
    host.passwd += "kube:x:200:200::/var/lib/kube:/usr/sbin/nologin\n"
    host.groups += "kube:x:200:\n"
    host.files["/etc/kube.conf"] = FakeFile(b"k\n", 0o644, 200, 200)
    host.sftp_log.clear()
    result = run_on(nr, "h1", ensure_file, path="/etc/kube.conf", content="k\n", owner="kube")
    assert (result[0].changed, result[0].diff) == (False, "")
    assert host.writes() == []


@pytest.mark.parametrize(
    ("owner", "group", "message"),
    [
        ("nobody-here", None, "h1: no user named 'nobody-here'"),
        ("etcd", "no-such-group", "h1: no group named 'no-such-group'"),
    ],
)
def test_an_unknown_owner_fails_naming_it_and_writes_nothing(
    nr: Nornir, fleet: Fleet, owner: str, group: str | None, message: str
) -> None:
    result = run_on(nr, "h1", ensure_file, path=PATH, content="x", owner=owner, group=group)
    assert result.failed
    assert isinstance(result[0].exception, RemoteError)
    assert str(result[0].exception) == message
    assert fleet["h1"].writes() == []
    assert fleet["h1"].lines() == READS * 2  # read again once, in case it was just created


def test_a_write_failing_midway_leaves_the_old_content_at_the_target(
    nr: Nornir, fleet: Fleet
) -> None:
    host = fleet["h1"]
    host.files[PATH] = FakeFile(b"old content\n", 0o640, 110, 115)
    host.fail_write_after = 4
    result = run_on(nr, "h1", ensure_file, path=PATH, content="new content\n", owner="etcd")
    assert str(result[0].exception) == f"h1: cannot write {PATH}: Socket is closed"
    assert host.files[PATH] == FakeFile(b"old content\n", 0o640, 110, 115)
    assert host.files[TEMP].data == b"new ", "the fake did not fail midway"
    assert host.writes() == [("open", TEMP, "wb"), ("chmod", TEMP, "0o600")]
    host.fail_write_after = None
    assert not run_on(nr, "h1", ensure_file, path=PATH, content="new content\n").failed
    assert host.files[PATH].data == b"new content\n"
    assert TEMP not in host.files


@pytest.fixture
def deployer(fleet: Fleet) -> FakeHost:
    """The host reached as "deploy": SFTP may write under /tmp only; coreutils act on files."""
    fleet["deployer"].coreutils = True
    return fleet["deployer"]


def staged_paths(host: FakeHost) -> list[str]:
    return [op[1] for op in host.sftp_log if op[0] == "open" and op[1].startswith("/tmp/")]


def test_a_non_root_user_stages_privately_then_installs_and_renames_with_sudo(
    nr: Nornir, deployer: FakeHost
) -> None:
    result = run_on(nr, "deployer", ensure_file, path="/etc/y", content="y\n", owner="etcd")
    assert not result.failed, result[0].exception
    [staged] = staged_paths(deployer)
    assert staged.startswith("/tmp/.kubenorn-") and staged.endswith("-y")
    assert deployer.lines() == [
        f"sudo -n -- install -m 0644 -o etcd -g etcd -- {staged} /etc/.y.kubenorn-tmp",
        f"rm -f -- {staged}",
        "sudo -n -- mv -f -T -- /etc/.y.kubenorn-tmp /etc/y",
    ]
    # The staged copy is private before any content reaches it.
    assert [event for event in deployer.events if event[1] == staged] == [
        ("open", staged, "wb"),
        ("chmod", staged, "0o600"),
        ("write", staged, "2 bytes at 0o600"),
    ]
    assert deployer.files == {"/etc/y": FakeFile(b"y\n", 0o644, 110, 115)}
    again = run_on(nr, "deployer", ensure_file, path="/etc/y", content="y\n", owner="etcd")
    assert not again[0].changed


def test_a_non_root_user_removes_its_staged_copy_when_the_install_fails(
    nr: Nornir, deployer: FakeHost
) -> None:
    result = run_on(nr, "deployer", ensure_file, path="/etc/y", content="y\n", owner="nobody")
    assert result.failed
    assert "install: invalid user" in str(result[0].exception)
    assert deployer.files == {}, "the staged copy was left in /tmp"


def test_a_non_root_user_fixes_mode_and_owner_with_sudo(nr: Nornir, deployer: FakeHost) -> None:
    deployer.files["/etc/y"] = FakeFile(b"y\n", 0o644)
    result = run_on(nr, "deployer", ensure_file, path="/etc/y", content="y\n", mode="0600")
    assert result[0].changed
    assert deployer.lines()[2:] == [
        "sudo -n -- chown root:root -- /etc/y",
        "sudo -n -- chmod 0600 -- /etc/y",
    ]
    assert deployer.files["/etc/y"] == FakeFile(b"y\n", 0o600)
    assert deployer.writes() == []


def test_a_non_root_user_reads_a_private_file_through_sudo(nr: Nornir, deployer: FakeHost) -> None:
    deployer.files["/etc/key"] = FakeFile(b"secret\n", 0o600)
    result = run_on(nr, "deployer", ensure_file, path="/etc/key", content="secret\n", mode="0600")
    assert (result[0].changed, result[0].diff) == (False, "")
    assert "sudo -n -- cat -- /etc/key" in deployer.lines()


def test_read_file_returns_the_content_or_none(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].files["/etc/hostname"] = FakeFile(b"node01\n")
    assert call(nr, "h1", lambda task: read_file(task, "/etc/hostname")) == b"node01\n"
    assert call(nr, "h1", lambda task: read_file(task, "/etc/absent")) is None
    assert fleet["h1"].lines() == []


def test_file_meta_names_owner_and_group_or_none(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].files["/etc/x"] = FakeFile(b"", 0o4750, 110, 0)
    assert call(nr, "h1", lambda task: file_meta(task, "/etc/x")) == FileMeta(
        "4750", "etcd", "root"
    )
    assert call(nr, "h1", lambda task: file_meta(task, "/etc/absent")) is None


@pytest.mark.parametrize(
    ("current", "desired", "secret", "diff"),
    [
        (b"same", b"same", False, ""),
        (b"same", b"same", True, ""),
        (None, b"a\n", True, "--- /p\n+++ /p\n(secret content created; not shown)\n"),
        (b"\x00\xff", b"\x00\xfe", False, "--- /p\n+++ /p\n(binary content changed, 2 bytes)\n"),
        (
            None,
            b"x" * (MAX_DIFF_BYTES + 1),
            False,
            f"--- /p\n+++ /p\n(large content changed: absent -> {MAX_DIFF_BYTES + 1} bytes)\n",
        ),
        (b"a", b"a\n", False, "--- /p\n+++ /p\n@@ -1 +1 @@\n-a+a\n"),
    ],
)
def test_content_diff(current: bytes | None, desired: bytes, secret: bool, diff: str) -> None:
    assert content_diff("/p", current, desired, secret=secret) == diff


@dataclass
class DirectoryCase:
    before: FakeFile | None
    changed: bool
    diff: str
    commands: list[str]
    after: FakeFile | None = None


DIRECTORY = "/etc/etcd/ssl"
INSTALL_D = "install -d -m 0750 -o root -g etcd -- /etc/etcd/ssl"
DIRECTORY_CASES = {
    "created": DirectoryCase(
        before=None,
        changed=True,
        diff="/etc/etcd/ssl/: created\n",
        commands=[INSTALL_D],
        after=FakeFile(b"", 0o750, 0, 115, directory=True),
    ),
    "already right": DirectoryCase(
        before=FakeFile(b"", 0o750, 0, 115, directory=True),
        changed=False,
        diff="",
        commands=READS,
    ),
    "mode and group fixed": DirectoryCase(
        before=FakeFile(b"", 0o755, 0, 0, directory=True),
        changed=True,
        diff="/etc/etcd/ssl: mode 0755 -> 0750, group root -> etcd\n",
        commands=[*READS, INSTALL_D],
        after=FakeFile(b"", 0o750, 0, 115, directory=True),
    ),
}


@pytest.mark.parametrize("case", DIRECTORY_CASES.values(), ids=DIRECTORY_CASES.keys())
def test_ensure_directory(nr: Nornir, fleet: Fleet, case: DirectoryCase) -> None:
    host = fleet["h1"]
    host.coreutils = True
    if case.before is not None:
        host.files[DIRECTORY] = FakeFile(**vars(case.before))
    result = run_on(nr, "h1", ensure_directory, path=DIRECTORY, mode="0750", group="etcd")
    assert not result.failed, result[0].exception
    assert (result[0].changed, result[0].diff or "") == (case.changed, case.diff)
    assert host.lines() == case.commands
    assert host.files.get(DIRECTORY) == (case.after or case.before)
    again = run_on(nr, "h1", ensure_directory, path=DIRECTORY, mode="0750", group="etcd")
    assert not again[0].changed


def test_ensure_directory_dry_run_runs_nothing(
    make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    dry = make_nr(dry_run=True)
    result = run_on(dry, "h1", ensure_directory, path=DIRECTORY, mode="0750", group="etcd")
    assert (result[0].changed, result[0].diff) == (True, "/etc/etcd/ssl/: created\n")
    assert fleet["h1"].lines() == []


def test_ensure_directory_refuses_a_file_in_the_way(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].files["/etc/etcd"] = FakeFile(b"not a directory\n")
    result = run_on(nr, "h1", ensure_directory, path="/etc/etcd")
    assert str(result[0].exception) == "h1: /etc/etcd exists and is not a directory"
    assert fleet["h1"].files["/etc/etcd"] == FakeFile(b"not a directory\n")


def test_ensure_absent_shows_what_goes_and_removes_it_once(
    nr: Nornir, make_nr: Callable[..., Nornir], fleet: Fleet
) -> None:
    host = fleet["h1"]
    host.coreutils = True
    host.files[PATH] = FakeFile(b"a=1\n")
    dry = run_on(make_nr(dry_run=True), "h1", ensure_absent, path=PATH)
    removal = f"--- {PATH}\n+++ /dev/null\n@@ -1 +0,0 @@\n-a=1\n"
    assert (dry[0].changed, dry[0].diff) == (True, removal)
    assert PATH in host.files, "dry-run removes nothing"
    removed = run_on(nr, "h1", ensure_absent, path=PATH)
    assert removed[0].changed and PATH not in host.files
    again = run_on(nr, "h1", ensure_absent, path=PATH)
    assert not again[0].changed


def test_files_in_place_surveys_many_files_in_one_round_trip(nr: Nornir, fleet: Fleet) -> None:
    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    survey = (
        "644 root root /etc/a\n600 etcd etcd /etc/b\n640 root root /etc/c\n==\n"
        f"{sha(b'a')}  /etc/a\n{sha(b'old')}  /etc/b\n{sha(b'c')}  /etc/c\n"
    )
    stat_error = "stat: cannot statx '/etc/d': No such file or directory\n"
    fleet["h1"].script[re.compile(r"sh -c .*")] = (1, survey, stat_error)
    wanted = {
        "/etc/a": (b"a", FileMeta("0644", "root", "root")),  # in place
        "/etc/b": (b"new", FileMeta("0600", "etcd", "etcd")),  # content differs
        "/etc/c": (b"c", FileMeta("0600", "root", "root")),  # mode differs
        "/etc/d": (b"d", FileMeta("0644", "root", "root")),  # missing
    }
    in_place = call(nr, "h1", lambda task: files_in_place(task, wanted))
    assert in_place == {"/etc/a"}
    [line] = fleet["h1"].lines()
    assert line.endswith(" sh /etc/a /etc/b /etc/c /etc/d")
