"""Every task that reads or writes root's state, run as a non-root SSH user ("deploy") with sudo.

One table: a task, the fake host's root-owned files and directories (keys and kubeconfigs 0600,
etcd's certificate directory 0750 root:etcd, /var/lib/kubenorn 0700), the commands that touch
root's state (they answer "permission denied" unless run through sudo, as on a real host), and
what the task must have achieved. Each case runs under three sudoers setups (NOPASSWD; a
password from KUBENORN_SUDO_PASSWORD; NOPASSWD with a password set anyway), and the password
must reach sudo's stdin exactly when sudo reads it.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import FakeFile, FakeHost, Fleet, Handler, Reply, run_on
from nornir.core.task import MultiResult
from pki_support import INVENTORIES

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import Finding
from kubenorn.nornir_setup import init_nornir
from kubenorn.pki.placement import placements
from tasks.encryption import rewrite_secrets
from tasks.etcd_backup import fetch_snapshot
from tasks.etcd_restore import upload_snapshot
from tasks.etcd_verify import observe_etcd_member
from tasks.files import ensure_directory, ensure_file
from tasks.images import check_images
from tasks.kube_verify import observe_control_plane
from tasks.pki import check_deployed_certificates
from tasks.pod_network import check_pod_routes
from tasks.runtime import check_runtime
from tasks.security import check_security
from tasks.ssh import SUDO_PASSWORD_ENV
from tasks.systemd import ensure_service

CONTROLLER, NODE = "h1", "h2"
ROOT_ONLY = "permission denied\n"
PASSWORD = "sudo-password-for-tests"
DIRECTORIES = {  # root's directories that a non-root user may not search
    "/etc/etcd/ssl": FakeFile(mode=0o750, gid=115, directory=True),
    "/var/lib/kubenorn": FakeFile(mode=0o700, directory=True),
    "/var/lib/kubenorn/restart-owed": FakeFile(mode=0o755, directory=True),
    "/var/lib/etcd": FakeFile(mode=0o700, uid=110, gid=115, directory=True),
}
SNAPSHOT = b"etcd snapshot \x00\xff bytes"


def deploy_inventory(directory: Path) -> Path:
    """h1 a controller and etcd member, h2 a node; every host logs in as "deploy"."""
    directory.mkdir(parents=True)
    defaults = yaml.safe_load((INVENTORIES / "good" / "defaults.yaml").read_text())
    defaults["username"] = "deploy"
    defaults["data"]["etcd"]["data_dir"] = "/var/lib/etcd"
    defaults["data"]["runtime"]["containerd"] = {"socket": "/run/containerd/containerd.sock"}
    defaults["data"]["ssh"] = {"command_timeout": 5, "verify_host_keys": False}
    hosts: dict[str, dict[str, Any]] = {
        CONTROLLER: {"hostname": "192.0.2.1", "groups": ["etcd", "controllers"]},
        NODE: {"hostname": "192.0.2.2", "groups": ["nodes"], "pod_cidr": "10.200.2.0/24"},
    }
    for host in hosts.values():
        host["data"] = {"address": host["hostname"]} | (
            {"pod_cidr": host.pop("pod_cidr")} if "pod_cidr" in host else {}
        )
    (directory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    (directory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (directory / "groups.yaml").write_text((INVENTORIES / "good" / "groups.yaml").read_text())
    return directory


def is_sudo(line: str) -> bool:
    return line.startswith(("sudo -n -- ", "sudo -S -k -p '' -- "))


def root_only(reply: Reply | Handler) -> Handler:
    """A command that needs root: "permission denied" unless it runs through sudo."""

    def answer(line: str, stdin: bytes) -> Reply:
        if not is_sudo(line):
            return 1, "", ROOT_ONLY
        return reply(line, stdin) if callable(reply) else reply

    return answer


def anyone(reply: Reply) -> Handler:
    return lambda line, stdin: reply


ETCD_HEALTH = json.dumps([{"endpoint": "https://192.0.2.1:2379", "health": True}])
ETCD_STATUS = json.dumps(
    [
        {
            "Endpoint": "https://192.0.2.1:2379",
            "Status": {"header": {"member_id": 17}, "leader": 17, "version": "3.4.23"},
        }
    ]
)
ETCD_MEMBERS = json.dumps({"members": [{"ID": 17, "name": CONTROLLER, "peerURLs": []}]})


def etcdctl(line: str, stdin: bytes) -> Reply:
    for words, output in (
        ("endpoint health", ETCD_HEALTH),
        ("endpoint status", ETCD_STATUS),
        ("member list", ETCD_MEMBERS),
    ):
        if line.endswith(words):
            return 0, output, ""
    raise AssertionError(line)


def etcd_observe(line: str, stdin: bytes) -> Reply:
    """tasks.etcdctl.observe's one command: health, status and member list, in sections."""
    sections = (("health", ETCD_HEALTH), ("status", ETCD_STATUS), ("members", ETCD_MEMBERS))
    return (
        0,
        "".join(
            f"== kubenorn-etcd {name} 0\n{out}\n== kubenorn-etcd-stderr\n" for name, out in sections
        ),
        "",
    )


def api_reads(line: str, stdin: bytes) -> Reply:
    """tasks.kubectl.api_reads' one command: the clock, then each path's object."""
    paths = shlex.split(line)[shlex.split(line).index("/etc/kubernetes/admin.kubeconfig") + 1 :]
    objects: list[dict[str, Any]] = [
        {"items": []} if path == "/api/v1/nodes" else {} for path in paths
    ]
    sections = "".join(f"== kubenorn-api 0\n{json.dumps(o)}\n" for o in objects)
    return 0, "1700000000\n" + sections, ""


def statuses(line: str, stdin: bytes) -> Reply:
    """tasks.http_checks.http_statuses' one command: every URL answering 200."""
    urls = [word for word in shlex.split(line) if word.startswith(("http://", "https://"))]
    return 0, "".join(f"== 0 {url}\nok\n200\n" for url in urls), ""


def snapshot_save(host: FakeHost) -> Handler:
    """etcdctl snapshot save, which leaves root's 0600 snapshot at its path."""

    def save(line: str, stdin: bytes) -> Reply:
        host.files[shlex.split(line)[-1]] = FakeFile(SNAPSHOT, 0o600)
        return 0, "Snapshot saved\n", ""

    return save


def make_directory(host: FakeHost) -> Handler:
    def mkdir(line: str, stdin: bytes) -> Reply:
        host.files.setdefault(shlex.split(line)[-1], FakeFile(mode=0o700, directory=True))
        return 0, "", ""

    return mkdir


SYSTEMCTL_READ = re.compile(r"systemctl (is-enabled|is-active) --quiet \S+")
ETCDCTL = re.compile(r"(sudo .* -- )?env ETCDCTL_API=3 etcdctl .*")
ETCD_OBSERVE = re.compile(r"(sudo .* -- )?sh -c .*kubenorn-etcd.*", re.S)
API_READS = re.compile(r"(sudo .* -- )?sh -c .*kubenorn-api.*", re.S)
STATUSES = re.compile(r"sh -c .*%\{http_code\}.*", re.S)
KUBECTL = re.compile(r"(sudo .* -- )?kubectl --kubeconfig /etc/kubernetes/admin\.kubeconfig .*")
CTR = re.compile(r"(sudo .* -- )?ctr .*")
CURL = re.compile(r"curl .*", re.S)
MKDIR = re.compile(r"(sudo .* -- )?mkdir -p -m 0700 /var/lib/kubenorn")
SURVEY = re.compile(r"(sudo .* -- )?sh -c .*@unit.*", re.S)
REWRITE = re.compile(r"(sudo .* -- )?sh -c .*kubectl --kubeconfig .*admin\.kubeconfig", re.S)
SYSTEMCTL_CHANGE = re.compile(r"(sudo .* -- )?systemctl (restart|start|enable) \S+")


@dataclass
class Case:
    """`task` on `host`, given root's `files` and the `script` (pattern -> reply); `root_state`
    are the commands that touch root's state (each must go through sudo); `check` judges the
    outcome (the task's result, the host, and a scratch directory on the control machine)."""

    host: str
    task: Callable[..., Any]
    kwargs: Callable[[Cluster, Path], dict[str, Any]]
    script: Callable[[FakeHost], dict[str | re.Pattern[str], Reply | Handler]]
    root_state: tuple[re.Pattern[str], ...]
    check: Callable[[MultiResult, FakeHost, Path], None]
    files: Callable[[Cluster], dict[str, FakeFile]] = lambda cluster: {}


def findings_of(outcome: MultiResult) -> list[Finding]:
    return list(outcome[0].result)


def said(outcome: MultiResult, expected: object) -> None:
    assert expected and outcome[0].result == expected


def all_ok(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    assert [f for f in findings_of(outcome) if f.status != "OK"] == []


def etcd_healthy(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    view = outcome[0].result
    assert (view.healthy, view.error, view.status.leader_id) == (True, "", 17)
    assert [m.name for m in view.members] == [CONTROLLER]


def apiserver_read(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    view = outcome[0].result
    assert (view.api_error, view.nodes) == ("", {})


def keys_read(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    keys = [p for p in host.files if p.startswith("/etc/etcd/ssl/") and p.endswith(".key")]
    about_keys = [f for f in findings_of(outcome) if f.detail.split(":")[0] in keys]
    # Read through sudo, with the mode and owner they have: only the content is not the state's.
    assert {f.detail.split(": ", 1)[1] for f in about_keys} == {
        "differs from the state directory (distribute again)"
    }
    assert len(about_keys) == len(keys)


def key_placements(cluster: Cluster) -> dict[str, FakeFile]:
    """Every key h1 holds, 0600 and owned as the plan says (not the state's content)."""
    uids, gids = {"root": 0, "etcd": 110}, {"root": 0, "etcd": 115}
    return {
        p.path: FakeFile(b"not the state's key\n", 0o600, uids[p.owner], gids[p.group])
        for p in placements(cluster, cluster.host(CONTROLLER))
        if p.kind == "key"
    }


def rewritten(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    assert outcome[0].changed
    assert host.files["/etc/etcd/ssl/server.key"] == FakeFile(b"new key\n", 0o600, 110, 115)
    assert not [p for p in host.files if p.startswith("/tmp/")], "a staged copy was left"


def made_private(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    assert outcome[0].diff == "/var/lib/kubenorn/restart-owed: mode 0755 -> 0700\n"
    assert host.files["/var/lib/kubenorn/restart-owed"].mode == 0o700


def restarted(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    assert "restart etcd.service" in (outcome[0].diff or "")
    assert "/var/lib/kubenorn/restart-owed/etcd.service" not in host.files


def fetched(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    local = scratch / "backup.db"
    assert local.read_bytes() == SNAPSHOT
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert not [p for p in host.files if p.startswith("/tmp/") or p.endswith(".db")]


def uploaded(outcome: MultiResult, host: FakeHost, scratch: Path) -> None:
    assert host.files["/var/lib/kubenorn/restore-r1.db"] == FakeFile(SNAPSHOT, 0o600, 0, 0)
    assert not [p for p in host.files if p.startswith("/tmp/")], "a staged copy was left"


def snapshot_file(scratch: Path) -> Path:
    (scratch / "upload.db").write_bytes(SNAPSHOT)
    return scratch / "upload.db"


OWED = "/var/lib/kubenorn/restart-owed/etcd.service"

CASES = {
    "verify etcd: etcdctl presents root's 0600 client key": Case(
        CONTROLLER,
        observe_etcd_member,
        lambda cluster, scratch: {"cluster": cluster},
        lambda host: {SYSTEMCTL_READ: anyone((0, "", "")), ETCD_OBSERVE: root_only(etcd_observe)},
        (ETCD_OBSERVE,),
        etcd_healthy,
    ),
    "verify kube: kubectl reads root's 0600 admin kubeconfig": Case(
        CONTROLLER,
        observe_control_plane,
        lambda cluster, scratch: {"cluster": cluster},
        lambda host: {
            SYSTEMCTL_READ: anyone((0, "", "")),
            STATUSES: statuses,
            API_READS: root_only(api_reads),
        },
        (API_READS,),
        apiserver_read,
    ),
    "encryption rewrite: kubectl reads root's 0600 admin kubeconfig": Case(
        CONTROLLER,
        rewrite_secrets,
        lambda cluster, scratch: {"cluster": cluster},
        lambda host: {REWRITE: root_only((0, "secret/a replaced\n", ""))},
        (REWRITE,),
        lambda outcome, host, scratch: said(outcome, "rewrote 1 Secrets"),
    ),
    "verify certificates: keys in etcd's 0750 directory, read and stat'ed": Case(
        CONTROLLER,
        check_deployed_certificates,
        lambda cluster, scratch: {},
        lambda host: {},
        (re.compile(r".* -- (cat|stat|test) .*"),),
        keys_read,
        files=key_placements,
    ),
    "verify security: the survey reads /proc and root's files": Case(
        CONTROLLER,
        check_security,
        lambda cluster, scratch: {"cluster": cluster},
        lambda host: {SURVEY: root_only((0, "@unit etcd.service\n@pid 0\n", ""))},
        (SURVEY,),
        lambda outcome, host, scratch: said(outcome, findings_of(outcome)),
    ),
    "verify images: ctr on containerd's root-only socket": Case(
        NODE,
        check_images,
        lambda cluster, scratch: {"digests": {}},
        lambda host: {CTR: root_only((0, "REF TYPE DIGEST\n", ""))},
        (CTR,),
        all_ok,
    ),
    "verify runtime: ctr version on containerd's root-only socket": Case(
        NODE,
        check_runtime,
        lambda cluster, scratch: {},
        lambda host: {CTR: root_only((0, "Server:\n  Version: 1.7.0\n", ""))},
        (CTR,),
        all_ok,
    ),
    "verify pod-routes: the kernel's routes, readable by anyone (no sudo)": Case(
        NODE,
        check_pod_routes,
        lambda cluster, scratch: {"cluster": cluster},
        lambda host: {"ip -4 route show": (0, "default via 192.0.2.254 dev eth0\n", "")},
        (),
        lambda outcome, host, scratch: None,
    ),
    "deploy file step: a 0600 key in etcd's 0750 directory rewritten": Case(
        CONTROLLER,
        ensure_file,
        lambda cluster, scratch: {
            "path": "/etc/etcd/ssl/server.key",
            "content": "new key\n",
            "mode": "0600",
            "owner": "etcd",
            "secret": True,
        },
        lambda host: {},
        (re.compile(r".* -- /etc/etcd/ssl/.*"),),
        rewritten,
        files=lambda cluster: {"/etc/etcd/ssl/server.key": FakeFile(b"old key\n", 0o600, 110, 115)},
    ),
    "deploy directory step: a directory inside root's 0700 one": Case(
        CONTROLLER,
        ensure_directory,
        lambda cluster, scratch: {"path": "/var/lib/kubenorn/restart-owed", "mode": "0700"},
        lambda host: {},
        (re.compile(r".* -- /var/lib/kubenorn/.*"),),
        made_private,
    ),
    "deploy unit step: a restart owed in root's 0700 /var/lib/kubenorn is paid": Case(
        CONTROLLER,
        ensure_service,
        lambda cluster, scratch: {"unit": "etcd.service"},
        lambda host: {
            SYSTEMCTL_READ: anyone((0, "", "")),
            SYSTEMCTL_CHANGE: root_only((0, "", "")),
        },
        (SYSTEMCTL_CHANGE, re.compile(r".*/var/lib/kubenorn/.*")),
        restarted,
        files=lambda cluster: {OWED: FakeFile(b"", 0o644)},
    ),
    "backup fetch: root's 0600 snapshot in a 0700 directory": Case(
        CONTROLLER,
        fetch_snapshot,
        lambda cluster, scratch: {
            "cluster": cluster,
            "destination": scratch / "backup.db",
            "run_id": "r1",
        },
        lambda host: {
            MKDIR: root_only(make_directory(host)),
            ETCDCTL: root_only(snapshot_save(host)),
        },
        (MKDIR, ETCDCTL, re.compile(r".*/var/lib/kubenorn/.*")),
        fetched,
    ),
    "restore upload: into root's 0700 directory, root's and 0600": Case(
        CONTROLLER,
        upload_snapshot,
        lambda cluster, scratch: {"snapshot": snapshot_file(scratch), "restore_id": "r1"},
        lambda host: {MKDIR: root_only(make_directory(host))},
        (MKDIR, re.compile(r".*/var/lib/kubenorn/.*")),
        uploaded,
    ),
}


SUDOERS = {  # how sudo lets "deploy" in, and whether the run sets KUBENORN_SUDO_PASSWORD
    "NOPASSWD, no password set": (True, False),
    "a password, set": (False, True),
    "NOPASSWD, a password set anyway": (True, True),
}


@pytest.fixture(params=list(SUDOERS.values()), ids=list(SUDOERS))
def sudoers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    """(NOPASSWD, password set); the run's environment set to match."""
    nopasswd, password = request.param
    if password:
        monkeypatch.setenv(SUDO_PASSWORD_ENV, PASSWORD)
    else:
        monkeypatch.delenv(SUDO_PASSWORD_ENV, raising=False)
    return nopasswd, password


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_non_root_user_runs_every_task_on_root_state_through_sudo(
    fleet: Fleet, tmp_path: Path, sudoers: tuple[bool, bool], case: Case
) -> None:
    nopasswd, password = sudoers
    inventory = deploy_inventory(tmp_path / "inventory")
    cluster = load_cluster(inventory)
    host = fleet[case.host]
    host.coreutils, host.sudo_nopasswd = True, nopasswd
    host.files.update({path: FakeFile(**vars(entry)) for path, entry in DIRECTORIES.items()})
    host.files.update(case.files(cluster))
    host.script.update(case.script(host))
    nr = init_nornir(inventory)
    try:
        outcome = run_on(nr, case.host, case.task, **case.kwargs(cluster, tmp_path))
    finally:
        nr.close_connections(on_good=True, on_failed=True)

    assert not outcome.failed, outcome[0].exception
    case.check(outcome, host, tmp_path)
    touching = [line for line in host.lines() if any(p.fullmatch(line) for p in case.root_state)]
    assert [line for line in touching if not is_sudo(line)] == []
    assert bool(touching) == bool(case.root_state), "the case ran none of its root commands"
    for line, stdin in host.commands:
        # Only a sudo that reads it is fed the password: never the command, nor NOPASSWD's sudo.
        fed = PASSWORD.encode() in stdin
        assert fed == (password and not nopasswd and is_sudo(line)), line
        assert fed == line.startswith("sudo -S "), line
    assert "/etc/etcd/ssl" in host.files, "the case removed a directory it had no business with"
