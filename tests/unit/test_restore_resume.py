"""etcd_restore never leaves etcd stopped everywhere, and a re-run finishes what a run began.

The three lab members are fake hosts (tests/unit/fakes.py) whose data directories are entries
that mv, rm, mkdir and rmdir move about, and whose etcd runs or not; `etcdctl snapshot restore`
writes a directory tagged with its cluster token. A member is "healthy" only when a majority of
members run on data with the same tag as its own, so a cluster split between original and
restored data fails the test. The control plane, the upload and the waits for leaders are
recorded fakes; the runbook, its Run, the journal and the restore tasks are the real ones.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeFile, FakeHost, Fleet, Reply
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.core.task import Result, Task

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.restore_journal import journal_path, load_journal, save_journal
from runbooks import etcd_restore
from tasks.ssh import RemoteError

MEMBERS = ["kube.controller01", "kube.controller02", "kube.controller03"]
DATA = "/var/lib/etcd/kubenorn"
ORIGINAL = b"original"
RESTORE = re.compile(r"env ETCDCTL_API=3 etcdctl snapshot restore .*")


class Member:
    """One fake etcd member's unit and data."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.running = True
        self.failure: str | None = None  # what `etcdctl snapshot restore` answers, if it fails
        self.restores = 0  # restores written
        host.coreutils = True
        host.files[DATA] = FakeFile(ORIGINAL, 0o700, 110, 115, directory=True)
        host.script.update(
            {
                "systemctl is-enabled --quiet etcd.service": (0, "", ""),
                "systemctl is-active --quiet etcd.service": lambda line, stdin: (
                    0 if self.running else 3,
                    "",
                    "",
                ),
                "systemctl show --property=UnitFileState,ActiveState -- etcd.service": self.show,
                "systemctl stop etcd.service": self.stop,
                "systemctl start --no-block etcd.service": self.start,
                re.compile(r"test -e \S+"): self.test,
                re.compile(r"mkdir -m 0700 -- \S+"): self.mkdir,
                re.compile(r"rmdir -- \S+"): self.rmdir,
                RESTORE: self.restore,
            }
        )

    @property
    def data(self) -> bytes | None:
        entry = self.host.files.get(DATA)
        return None if entry is None else entry.data

    def show(self, line: str, stdin: bytes) -> Reply:
        return 0, f"ActiveState={'active' if self.running else 'inactive'}\n", ""

    def stop(self, line: str, stdin: bytes) -> Reply:
        self.running = False
        return 0, "", ""

    def start(self, line: str, stdin: bytes) -> Reply:
        self.running = DATA in self.host.files
        return 0, "", ""

    def test(self, line: str, stdin: bytes) -> Reply:
        return (0 if shlex.split(line)[-1] in self.host.files else 1), "", ""

    def mkdir(self, line: str, stdin: bytes) -> Reply:
        self.host.files[shlex.split(line)[-1]] = FakeFile(b"", 0o700, directory=True)
        return 0, "", ""

    def rmdir(self, line: str, stdin: bytes) -> Reply:
        path = shlex.split(line)[-1]
        if self.host.files[path].data:  # not empty
            return 1, "", f"rmdir: failed to remove '{path}': Directory not empty\n"
        del self.host.files[path]
        return 0, "", ""

    def restore(self, line: str, stdin: bytes) -> Reply:
        if self.failure:
            return 1, "", self.failure
        options = dict(arg[2:].split("=", 1) for arg in shlex.split(line) if arg.startswith("--"))
        self.host.files[options["data-dir"]] = FakeFile(
            options["initial-cluster-token"].encode(), 0o755, directory=True
        )
        self.restores += 1
        return 0, "", ""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    # The inventory alone: a lab run leaves its restore journal and backups beside it.
    state = shutil.ignore_patterns(".restore", ".backups")
    return Path(
        shutil.copytree(REPO_ROOT / "lab" / "inventory", tmp_path / "inventory", ignore=state)
    )


@pytest.fixture
def members(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, Member]]:
    """The three lab members as fake hosts; control plane, upload and leader waits faked."""
    cluster = load_cluster(inventory)
    addresses = {str(h.address): h.name for h in cluster.hosts}
    fleet = Fleet(hosts={name: FakeHost(name=name) for name in MEMBERS}, addresses=addresses)
    ConnectionPluginRegister.auto_register()
    monkeypatch.setitem(ConnectionPluginRegister.available, "netmiko", fleet.plugin())
    monkeypatch.setattr(ConnectionPluginRegister, "auto_register", lambda: None)
    fakes = {name: Member(fleet[name]) for name in MEMBERS}

    def healthy(task: Task, **kwargs: Any) -> Result:
        mine = fakes[task.host.name]
        alike = [m for m in fakes.values() if m.running and m.data == mine.data]
        if not mine.running or len(alike) < 2:
            raise RemoteError(f"{task.host.name}: etcd not healthy (no quorum on its data)")
        return Result(host=task.host)

    def recorded(name: str) -> Any:
        def fake(task: Task, **kwargs: Any) -> Result:
            CONTROL_PLANE.append((task.host.name, name))
            return Result(host=task.host, changed=True)

        return fake

    CONTROL_PLANE.clear()
    monkeypatch.setattr(etcd_restore, "verify_snapshot", lambda path: None)
    monkeypatch.setattr(etcd_restore, "upload_snapshot", recorded("upload"))
    monkeypatch.setattr(etcd_restore, "stop_components", recorded("stop"))
    monkeypatch.setattr(etcd_restore, "start_components", recorded("start"))
    monkeypatch.setattr(etcd_restore, "restart_components", recorded("restart"))
    monkeypatch.setattr(etcd_restore, "restart_dns_addon", recorded("restart-dns"))
    monkeypatch.setattr(etcd_restore, "wait_etcd", healthy)
    monkeypatch.setattr(etcd_restore, "wait_control_plane_healthy", lambda nr, c, t: (0.0, []))
    yield fakes
    if problems := fleet.problems():
        pytest.fail("\n".join(problems), pytrace=False)


CONTROL_PLANE: list[tuple[str, str]] = []


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "etcd-snapshot.db"
    path.write_bytes(b"snapshot one")
    return path


def restore(inventory: Path, snapshot: Path) -> int:
    return etcd_restore.main(["-i", str(inventory), str(snapshot), "--yes", "--quiet"])


def assert_on_original_data_and_running(members: dict[str, Member]) -> None:
    for name, member in members.items():
        assert member.running, name
        assert member.data == ORIGINAL, name
        assert not [p for p in member.host.files if ".before-restore-" in p], name


def assert_restored_and_running(members: dict[str, Member], token: str) -> None:
    for name, member in members.items():
        assert member.running, name
        assert member.data == token.encode(), name
        [aside] = [p for p in member.host.files if ".before-restore-" in p]
        assert member.host.files[aside].data == ORIGINAL, name


def committed(inventory: Path) -> None:
    """The journal as a run killed after the commit point left it."""
    journal = load_journal(inventory)
    assert journal is not None
    journal.phase = "committed"
    save_journal(inventory, journal)


def started_control_plane() -> list[str]:
    return sorted(host for host, what in CONTROL_PLANE if what == "start")


def restarted(what: str) -> list[str]:
    return sorted(host for host, done in CONTROL_PLANE if done == what)


def test_a_restore_completes_with_one_new_token_for_every_member(
    members: dict[str, Member], inventory: Path, snapshot: Path
) -> None:
    assert restore(inventory, snapshot) == 0
    journal = load_journal(inventory)
    assert journal is not None and journal.phase == "done"
    assert journal.token != f"{load_cluster(inventory).name}-etcd", "the deploy's token again"
    assert_restored_and_running(members, journal.token)
    assert started_control_plane() == MEMBERS
    assert journal_path(inventory).stat().st_mode & 0o777 == 0o600
    # Watches from before the restore hold resourceVersions from the future: all restarted.
    assert restarted("restart") == ["kube.node01", "kube.node02", "kube.node03"]
    assert restarted("restart-dns") == ["kube.controller01"]


def test_a_restore_failing_on_member_2_starts_every_member_back_and_a_rerun_completes(
    members: dict[str, Member], inventory: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members["kube.controller02"].failure = "Error: open /var/lib/etcd: permission denied\n"
    assert restore(inventory, snapshot) == 1
    assert_on_original_data_and_running(members)
    assert started_control_plane() == MEMBERS
    out = capsys.readouterr().out
    assert out.count("running on its original data: the restore did not take effect") == 3
    assert restarted("restart") == restarted("restart-dns") == [], "nothing was restored"
    first = load_journal(inventory)
    assert first is not None and first.phase == "staging"

    members["kube.controller02"].failure = None
    assert restore(inventory, snapshot) == 0
    journal = load_journal(inventory)
    assert journal is not None and journal.phase == "done"
    assert journal.restore_id == first.restore_id, "the re-run finished the same restore"
    assert_restored_and_running(members, journal.token)
    # Members 1 and 3 had staged their restore: the re-run used it, restoring only member 2.
    assert [m.restores for m in members.values()] == [1, 1, 1]


def test_a_swap_failing_on_one_member_puts_the_swapped_ones_back(
    members: dict[str, Member], inventory: Path, snapshot: Path
) -> None:
    refused = re.compile(rf"mv -T -- {DATA} {DATA}\.before-restore-\S+")
    members["kube.controller02"].host.script[refused] = (1, "", "mv: Operation not permitted\n")
    assert restore(inventory, snapshot) == 1
    assert_on_original_data_and_running(members)
    journal = load_journal(inventory)
    assert journal is not None and journal.phase == "staging", "rolled back: not committed"
    for member in members.values():  # the restored data staged again, for the re-run
        assert member.host.files[f"{DATA}.restore-{journal.restore_id}"].data

    del members["kube.controller02"].host.script[refused]
    assert restore(inventory, snapshot) == 0
    assert_restored_and_running(members, journal.token)
    assert [m.restores for m in members.values()] == [1, 1, 1]


def test_a_run_killed_mid_swap_is_finished_by_the_rerun_without_restoring_twice(
    members: dict[str, Member], inventory: Path, snapshot: Path
) -> None:
    """As a run killed (no finally) after swapping two members and half of the third leaves it."""
    assert restore(inventory, snapshot) == 0  # the journal and data of a restore, then undone:
    journal = load_journal(inventory)
    assert journal is not None
    committed(inventory)
    third = members["kube.controller03"]
    files = third.host.files
    files[f"{DATA}.restore-{journal.restore_id}"] = files.pop(DATA)  # mv staged -> live not done
    for member in members.values():
        member.running = False
    before = [m.restores for m in members.values()]

    assert restore(inventory, snapshot) == 0
    assert_restored_and_running(members, journal.token)
    assert [m.restores for m in members.values()] == before, "restored twice"
    assert load_journal(inventory).phase == "done"  # type: ignore[union-attr]


def test_an_unfinished_committed_restore_refuses_another_snapshot(
    members: dict[str, Member],
    inventory: Path,
    snapshot: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert restore(inventory, snapshot) == 0
    committed(inventory)
    other = tmp_path / "other.db"
    other.write_bytes(b"snapshot two")
    lines = sum(len(m.host.lines()) for m in members.values())
    assert restore(inventory, other) == 3
    assert "re-run with that snapshot to finish it" in capsys.readouterr().err
    assert sum(len(m.host.lines()) for m in members.values()) == lines, "a host was touched"


def test_ctrl_c_while_staging_puts_every_member_back_and_exits_130(
    members: dict[str, Member], inventory: Path, snapshot: Path
) -> None:
    third = members["kube.controller03"]

    def interrupted(line: str, stdin: bytes) -> Reply:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while this member restores
        return third.restore(line, stdin)

    third.host.script[RESTORE] = interrupted
    assert restore(inventory, snapshot) == 130
    assert_on_original_data_and_running(members)
    assert started_control_plane() == MEMBERS


def test_a_member_without_data_is_rolled_back_to_none_and_not_started(
    members: dict[str, Member], inventory: Path, snapshot: Path
) -> None:
    empty = members["kube.controller03"]
    del empty.host.files[DATA]
    empty.running = False
    refused = re.compile(rf"mv -T -- {DATA} {DATA}\.before-restore-\S+")
    members["kube.controller02"].host.script[refused] = (1, "", "mv: Operation not permitted\n")
    assert restore(inventory, snapshot) == 1
    assert DATA not in empty.host.files and not empty.running
    assert not [p for p in empty.host.files if ".before-restore-" in p]
    assert [members[n].data for n in MEMBERS[:2]] == [ORIGINAL, ORIGINAL]

    del members["kube.controller02"].host.script[refused]
    assert restore(inventory, snapshot) == 0
    journal = load_journal(inventory)
    assert journal is not None
    assert all(m.running and m.data == journal.token.encode() for m in members.values())


def test_a_limit_leaving_out_a_member_is_refused_before_any_host_is_touched(
    members: dict[str, Member], inventory: Path, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", str(inventory), str(snapshot), "--yes", "--limit", "kube.controller01"]
    assert etcd_restore.main(argv) == 3
    assert "leaves out etcd members kube.controller02, kube.controller03" in capsys.readouterr().err
    assert not any(m.host.commands for m in members.values())
    assert load_journal(inventory) is None
