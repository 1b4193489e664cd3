"""Distribution and remote check, on fake hosts that keep the primitives' contract.

The fakes stand in for tasks.files (atomic put, `changed` only on a difference, dry-run
honoured) and record every call, so these tests see exactly what each host is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nornir.core import Nornir
from nornir.core.task import Result, Task
from pki_support import Leaf, inventory_copy, make_ca, new_key, write_cert

import tasks.pki
from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import init_nornir
from kubenorn.pki.issue import init
from kubenorn.pki.placement import placements
from kubenorn.pki.rotate import rotate
from runbooks.pki import main
from tasks.files import FileMeta
from tasks.ssh import RemoteError


@dataclass
class FakeHosts:
    """Every fake host's files: (host, path) -> (content, mode, owner, group)."""

    files: dict[tuple[str, str], tuple[bytes, str, str, str]] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    owed: dict[str, set[str]] = field(default_factory=dict)  # host -> units owing a restart

    def ensure_file(self, task: Task, *, path: str, content: bytes | str, **options) -> Result:  # noqa: ANN003
        data = content.encode() if isinstance(content, str) else content
        self.calls.append({"host": task.host.name, "path": path, "content": data, **options})
        group = options.get("group") or options["owner"]
        return self._converge(task, path, (data, options["mode"], options["owner"], group), options)

    def ensure_directory(self, task: Task, *, path: str, **options) -> Result:  # noqa: ANN003
        self.calls.append({"host": task.host.name, "path": path, "directory": True, **options})
        wanted = (b"", options["mode"], options["owner"], options.get("group") or options["owner"])
        return self._converge(task, path, wanted, options)

    def _converge(self, task: Task, path: str, wanted: tuple, options: dict) -> Result:  # type: ignore[type-arg]
        changed = self.files.get((task.host.name, path)) != wanted
        if changed and not task.is_dry_run(options.get("dry_run")):
            self.files[(task.host.name, path)] = wanted
        return Result(host=task.host, changed=changed, diff=f"{path}\n" if changed else "")

    def files_in_place(self, task: Task, wanted: dict) -> set[str]:  # type: ignore[type-arg]
        host = task.host.name
        return {
            path
            for path, (data, meta) in wanted.items()
            if self.files.get((host, path)) == (data, meta.mode, meta.owner, meta.group)
        }

    def owe_restarts(self, task: Task, *, units: list[str], dry_run: bool | None = None) -> Result:
        if not task.is_dry_run(dry_run):
            self.owed.setdefault(task.host.name, set()).update(units)
        return Result(host=task.host)

    def read_file(self, task: Task, path: str) -> bytes | None:
        if task.host.name in self.unreachable:
            raise RemoteError(f"{task.host.name}: cannot connect: timed out")
        entry = self.files.get((task.host.name, path))
        return entry[0] if entry else None

    def file_meta(self, task: Task, path: str) -> FileMeta | None:
        entry = self.files.get((task.host.name, path))
        return FileMeta(*entry[1:]) if entry else None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    hosts = FakeHosts()
    for name in (
        "ensure_file",
        "ensure_directory",
        "read_file",
        "file_meta",
        "files_in_place",
        "owe_restarts",
    ):
        monkeypatch.setattr(tasks.pki, name, getattr(hosts, name))
    return hosts


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = inventory_copy("good", tmp_path)
    init(load_cluster(path))
    return path


@pytest.fixture
def nr(inventory: Path) -> Iterator[Nornir]:
    nornir = init_nornir(inventory)
    yield nornir
    nornir.close_connections(on_good=True, on_failed=True)


def distribute(nr: Nornir, *, dry_run: bool | None = None) -> dict[str, bool]:
    results = nr.run(task=tasks.pki.ensure_certificates, dry_run=dry_run)
    assert not results.failed, {h: r.exception for h, r in results.items()}
    return {host: result.changed for host, result in results.items()}


def test_each_host_gets_exactly_its_files_with_modes_owners_and_content(
    nr: Nornir, inventory: Path, fake: FakeHosts
) -> None:
    assert set(distribute(nr).values()) == {True}
    cluster, pki = load_cluster(inventory), inventory / ".pki"
    for host in cluster.hosts:
        got = {c["path"]: c for c in fake.calls if c["host"] == host.name and "content" in c}
        assert set(got) == {p.path for p in placements(cluster, host)}
    member = {c["path"]: c for c in fake.calls if c["host"] == "kube.controller01"}
    key = member["/etc/etcd/ssl/peer.key"]
    assert (key["mode"], key["owner"], key["secret"]) == ("0600", "etcd", True)
    assert key["content"] == (pki / "etcd-peer-kube.controller01.key").read_bytes()
    assert member["/etc/etcd/ssl/ca.crt"]["content"] == (pki / "etcd-ca.crt").read_bytes()
    assert member["/etc/etcd/ssl/ca.crt"]["secret"] is False
    assert (member["/etc/etcd/ssl"]["mode"], member["/etc/etcd/ssl"]["group"]) == ("0750", "etcd")
    assert not any(
        c["content"] == (pki / "ca.key").read_bytes() for c in fake.calls if "content" in c
    )


def test_a_second_distribution_changes_nothing(nr: Nornir, fake: FakeHosts) -> None:
    distribute(nr)
    assert set(distribute(nr).values()) == {False}


def test_dry_run_reports_changes_and_writes_nothing(nr: Nornir, fake: FakeHosts) -> None:
    assert set(distribute(nr, dry_run=True).values()) == {True}
    assert fake.files == {}
    assert {c["dry_run"] for c in fake.calls} == {True}


def test_after_rotating_one_node_only_that_node_changes(
    nr: Nornir, inventory: Path, fake: FakeHosts
) -> None:
    distribute(nr)
    rotate(load_cluster(inventory), ["kube.node02"])
    changed = distribute(nr)
    assert [h for h, c in changed.items() if c] == ["kube.node02"]


def test_without_a_pki_state_the_hosts_fail_before_any_write(
    tmp_path: Path, fake: FakeHosts
) -> None:
    nornir = init_nornir(inventory_copy("good", tmp_path))
    results = nornir.run(task=tasks.pki.ensure_certificates)
    assert set(results.failed_hosts) == set(nornir.inventory.hosts)
    assert "run `python -m runbooks.pki init` first" in str(results["kube.node01"].exception)
    assert fake.calls == []


def remote_check(inventory: Path, tmp_path: Path) -> int:
    return main(["-i", str(inventory), "check", "--remote", "--json", str(tmp_path / "r.json")])


def test_remote_check_of_correctly_deployed_files_is_ok(
    nr: Nornir, inventory: Path, fake: FakeHosts, tmp_path: Path
) -> None:
    distribute(nr)
    assert remote_check(inventory, tmp_path) == 0


def test_remote_check_finds_what_is_wrong_on_a_host(
    nr: Nornir, inventory: Path, fake: FakeHosts, tmp_path: Path
) -> None:
    distribute(nr)
    leaf = Leaf("kube.node01", dns=["kube.node01"], ips=["10.99.0.21"])
    key = new_key()
    write_cert(tmp_path, "foreign", leaf.sign(make_ca(), key))
    _, mode, owner, group = fake.files[("kube.node01", "/etc/kubernetes/ssl/kubelet.crt")]
    fake.files[("kube.node01", "/etc/kubernetes/ssl/kubelet.crt")] = (
        (tmp_path / "foreign.crt").read_bytes(),
        mode,
        owner,
        group,
    )
    del fake.files[("kube.node02", "/etc/kubernetes/kube-proxy.kubeconfig")]
    content, _, owner, group = fake.files[("kube.controller03", "/etc/etcd/ssl/server.key")]
    fake.files[("kube.controller03", "/etc/etcd/ssl/server.key")] = (content, "0644", owner, group)
    content, mode, _, group = fake.files[("kube.controller02", "/etc/etcd/ssl/peer.key")]
    fake.files[("kube.controller02", "/etc/etcd/ssl/peer.key")] = (content, mode, "root", group)
    assert remote_check(inventory, tmp_path) == 2
    findings = json.loads((tmp_path / "r.json").read_text())["findings"]
    problems = {(f["host"], f["check"], f["status"]) for f in findings if f["status"] != "OK"}
    assert ("kube.node01", "pki.chain", "CRITICAL") in problems
    assert ("kube.node01", "pki.key", "CRITICAL") in problems  # the deployed key is not its key
    assert ("kube.node02", "pki.deployed", "CRITICAL") in problems
    assert ("kube.controller03", "pki.key_mode", "CRITICAL") in problems
    assert ("kube.controller02", "pki.deployed", "CRITICAL") in problems  # owned by root
    assert {h for h, _, _ in problems} == {
        "kube.node01",
        "kube.node02",
        "kube.controller02",
        "kube.controller03",
    }


def test_remote_check_warns_of_a_rotation_not_yet_distributed(
    nr: Nornir, inventory: Path, fake: FakeHosts, tmp_path: Path
) -> None:
    distribute(nr)
    rotate(load_cluster(inventory), ["apiserver"])
    assert remote_check(inventory, tmp_path) == 1


def test_a_host_that_cannot_be_read_is_unknown(
    nr: Nornir,
    inventory: Path,
    fake: FakeHosts,
    tmp_path: Path,
    capsys,  # noqa: ANN001
) -> None:
    distribute(nr)
    fake.unreachable.add("kube.node02")
    assert remote_check(inventory, tmp_path) == 3
    assert "kube.node02" in capsys.readouterr().out


CONTROLLER_READERS = {
    "etcd.service",
    "kube-apiserver.service",
    "kube-scheduler.service",
    "kube-controller-manager.service",
}


def test_new_files_owe_their_readers_a_restart_that_outlives_the_run(
    nr: Nornir, fake: FakeHosts
) -> None:
    distribute(nr)
    assert fake.owed["kube.controller01"] == CONTROLLER_READERS
    assert fake.owed["kube.node01"] == {"kubelet.service", "kube-proxy.service"}
    distribute(nr)  # nothing changed, but the restarts are still owed until paid
    assert fake.owed["kube.controller01"] == CONTROLLER_READERS


def test_no_change_owes_nothing_and_a_dry_run_records_no_debt(
    nr: Nornir, inventory: Path, fake: FakeHosts
) -> None:
    dry = init_nornir(inventory, dry_run=True)
    distribute(dry)
    assert not any(fake.owed.values())
    distribute(nr)
    fake.owed.clear()  # the restarts were paid
    distribute(nr)
    assert not any(fake.owed.values())
