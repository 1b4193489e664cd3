"""A whole cluster of fake hosts that look deployed and healthy, for whole-runbook runs.

`write_inventory` writes the lab's inventory (its defaults, without image archives) with 3
controllers and N nodes at documentation-like addresses, a made-up known_hosts, and the PKI
state. `healthy_fleet` gives every host a `FakeHost` whose commands answer as a deployed,
healthy host does (packages installed, units enabled and active, etcd healthy with one leader,
the apiserver's nodes Ready, leases held, health endpoints 200) and whose files are those a
deploy wrote: `settle` runs one deploy on the fleet and then forgets what it recorded.

Used by tests/unit/test_round_trips.py (round trips per host) and bench/scale_fake.py (the
control machine's CPU per host); nothing here opens a socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from fakes import Coreutils, FakeFile, FakeHost, Fleet, Reply
from nornir.core.plugins.connections import ConnectionPluginRegister

from tasks.install_ledger import CENSUS, MARK_REMOVED, READ, RECORD

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "lab" / "inventory"
GOOD_INVENTORY = REPO / "tests" / "data" / "inventories" / "good"
CONTROLLERS = 3
SUDO = ("sudo", "-n", "--")


def controller_address(index: int) -> str:
    return f"10.99.0.{10 + index}"


def node_address(index: int) -> str:
    return f"10.99.{1 + index // 250}.{index % 250 + 1}"


def write_inventory(directory: Path, *, nodes: int = 3) -> Path:
    """The lab's inventory with 3 controllers and `nodes` nodes, its known_hosts, key, PKI."""
    from kubenorn.cluster import load_cluster
    from kubenorn.pki.issue import init

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(LAB_INVENTORY / "groups.yaml", directory / "groups.yaml")
    defaults = yaml.safe_load((LAB_INVENTORY / "defaults.yaml").read_text())
    defaults["data"]["kubernetes"].pop("images", None)  # archives on the lab machine only
    # Fake load balancers take a stopped apiserver out at once: restarts wait 30 ms, not 6 s.
    defaults["data"]["load_balancer"]["check_interval_ms"] = 10
    (directory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    hosts: dict[str, Any] = {}
    for i in range(1, CONTROLLERS + 1):
        address = controller_address(i)
        hosts[f"kube.controller{i:02d}"] = {
            "hostname": address,
            "groups": ["etcd", "controllers"],
            "data": {"address": address},
        }
    for i in range(1, nodes + 1):
        address = node_address(i)
        data = {"address": address, "pod_cidr": f"10.200.{i % 256}.0/24"}
        hosts[f"kube.node{i:02d}"] = {"hostname": address, "groups": ["nodes"], "data": data}
    (directory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    write_ssh_files(directory)
    init(load_cluster(directory))
    return directory


def write_ssh_files(directory: Path) -> None:
    """The test data's SSH key, and a known_hosts entry of its host key for each host of the
    inventory in `directory`."""
    shutil.copy(GOOD_INVENTORY / "id_ed25519", directory / "id_ed25519")
    (directory / "id_ed25519").chmod(0o600)
    entry = next(
        line
        for line in (GOOD_INVENTORY / "known_hosts").read_text().splitlines()
        if line and not line.startswith("#")
    )
    key = entry.split(" ", 1)[1]
    hosts = yaml.safe_load((directory / "hosts.yaml").read_text())
    known = "".join(f"{h['hostname']},{name} {key}\n" for name, h in hosts.items())
    (directory / "known_hosts").write_text(known)


# CPU seconds the fakes spent answering (their own cost, not the control machine's).
FAKE_CPU = [0.0]
_cpu_lock = threading.Lock()


class HealthyHost:
    """The answers of one deployed, healthy host, for `FakeHost.script`."""

    def __init__(self, host: FakeHost, cluster: Any) -> None:
        self.host, self.cluster = host, cluster
        self.me = cluster.host(host.name)

    def __call__(self, line: str, stdin: bytes) -> Reply:
        started = time.thread_time()
        try:
            return self.answer(line, stdin)
        finally:
            spent = time.thread_time() - started
            with _cpu_lock:
                FAKE_CPU[0] += spent

    def answer(self, line: str, stdin: bytes) -> Reply:
        argv = shlex.split(line)
        if tuple(argv[:3]) == SUDO:
            argv = argv[3:]
        head = argv[0]
        if head == "getent":
            return 0, self.host.passwd if argv[1] == "passwd" else self.host.groups, ""
        if head in ("install", "mv", "rm", "chmod", "chown", "cat"):
            return Coreutils(self.host, "root").run(line) or self.unscripted(line)
        handler: Callable[[list[str], bytes], Reply] | None = getattr(
            self, "do_" + head.replace("-", "_"), None
        )
        if handler is None:
            return self.unscripted(line)
        return handler(argv, stdin)

    def unscripted(self, line: str) -> Reply:
        self.host.unscripted.append(line)
        return 127, "", f"fake: no answer for {line[:80]}\n"

    # --- commands -----------------------------------------------------------------------
    def do_sh(self, argv: list[str], stdin: bytes) -> Reply:
        script = argv[2]
        if "== os-release" in script:
            return 0, self.facts(), ""
        if "== units" in script:
            return 0, self.host_survey(argv[4:]), ""
        if "sha256sum" in script:
            return self.file_survey(argv[4:])
        if "kubenorn-api" in script:  # the clock, then API reads
            sections = [f"== kubenorn-api 0\n{json.dumps(self.api(path))}\n" for path in argv[5:]]
            return 0, self.do_date([], b"")[1] + "".join(sections), ""
        if "kubenorn-etcd" in script:  # etcdctl endpoint health, status, member list
            return 0, self.etcd_survey(argv[4:]), ""
        if "%{http_code}" in script:  # curl for each URL
            urls = argv[5::2]
            return 0, "".join(f"== 0 {url}\nok\n200\n" for url in urls), ""
        if "get secrets" in script:
            return 0, "secret/x replaced\n", ""  # a key rotation's rewrite of every Secret
        if "@unit" in script:
            return 0, self.security_survey(argv[4:]), ""
        if script in (*CENSUS.values(), RECORD) or script.startswith(READ):
            return self.install_ledger(script, argv[4:], stdin)
        return self.unscripted(shlex.join(argv))

    def etcd_survey(self, base: list[str]) -> str:
        parts = []
        for name, action in (
            ("health", ["endpoint", "health"]),
            ("status", ["endpoint", "status"]),
            ("members", ["member", "list"]),
        ):
            rc, out, err = self.do_env([*base, *action], b"")
            parts.append(f"== kubenorn-etcd {name} {rc}\n{out}\n== kubenorn-etcd-stderr\n{err}")
        return "".join(parts)

    def install_ledger(self, script: str, paths: list[str], stdin: bytes) -> Reply:
        """The census (after the ledger, when asked), or an append to the ledger."""
        ledger = self.host.files.get(paths[0]) if paths else None
        if script.startswith(READ):
            listed = ledger.data.decode().splitlines() if ledger else []
            return 0, "".join(f"ledger {line}\n" for line in listed) + self.census(), ""
        if script != RECORD:
            return 0, self.census(), ""
        old = self.host.files.get(paths[0], FakeFile(b"")).data
        self.host.files[paths[0]] = FakeFile(old + stdin)
        return 0, "", ""

    def packages(self) -> list[str]:
        """The packages the host has installed (a plain fake: none it would be asked of)."""
        return []

    def census(self) -> str:
        """`package`, `user` and `group` lines, as the install ledger's census prints them."""
        lines = [f"package {name}" for name in self.packages()]
        lines += [f"user {entry.split(':')[0]}" for entry in self.host.passwd.splitlines()]
        lines += [f"group {entry.split(':')[0]}" for entry in self.host.groups.splitlines()]
        return "".join(f"{line}\n" for line in lines)

    def do_dpkg_query(self, argv: list[str], stdin: bytes) -> Reply:
        names = argv[4:]
        return 0, "".join(f"{n}\t1.37.2-1\tii \n" for n in names), ""

    def do_systemctl(self, argv: list[str], stdin: bytes) -> Reply:
        action = argv[1]
        if action == "show":
            properties = [a.split("=", 1)[1] for a in argv if a.startswith("--property=")]
            if properties == ["MainPID"]:
                return 0, "4242\n", ""
            return 0, self.show(argv), ""
        return 0, "", ""  # is-enabled, is-active, daemon-reload, enable, start, restart

    def show(self, argv: list[str]) -> str:
        units = [a for a in argv[2:] if not a.startswith("-")]
        return "".join(
            f"Id={u}\nLoadState=loaded\nUnitFileState=enabled\nActiveState=active\n\n"
            for u in units
        )

    def do_test(self, argv: list[str], stdin: bytes) -> Reply:
        return (0 if argv[-1] in self.host.files else 1), "", ""

    def do_mkdir(self, argv: list[str], stdin: bytes) -> Reply:
        return 0, "", ""

    def do_sed(self, argv: list[str], stdin: bytes) -> Reply:
        """The ledger's packages marked removed (a reset that kept their configuration)."""
        if argv != MARK_REMOVED:
            return self.unscripted(shlex.join(argv))
        ledger = self.host.files.get(argv[-1])
        if ledger:
            marked = re.sub(rb"(?m)^package ", b"removed ", ledger.data)
            self.host.files[argv[-1]] = FakeFile(marked)
        return 0, "", ""

    def do_touch(self, argv: list[str], stdin: bytes) -> Reply:
        for path in argv[1:]:
            self.host.files[path] = FakeFile(b"")
        return 0, "", ""

    def do_date(self, argv: list[str], stdin: bytes) -> Reply:
        return 0, f"{int(datetime.now(UTC).timestamp())}\n", ""

    def do_curl(self, argv: list[str], stdin: bytes) -> Reply:
        return 0, "ok\n200", ""

    def do_haproxy(self, argv: list[str], stdin: bytes) -> Reply:
        return 0, "", ""

    def do_ctr(self, argv: list[str], stdin: bytes) -> Reply:
        return 0, "Client:\n  Version: 2.1.0\nServer:\n  Version:  2.1.0\n", ""

    def do_ip(self, argv: list[str], stdin: bytes) -> Reply:
        routes = [
            f"{node.pod_cidr} via {node.address} dev eth0 proto static\n"
            for node in self.cluster.nodes
            if node.pod_cidr and node.name != self.me.name
        ]
        return 0, "".join(routes), ""

    def do_env(self, argv: list[str], stdin: bytes) -> Reply:
        endpoints = next(a for a in argv if a.startswith("--endpoints=")).split("=", 1)[1]
        urls = endpoints.split(",")
        what = argv[-2:] if argv[-2] in ("endpoint", "member") else argv[-1:]
        members = self.cluster.etcd.members
        if "move-leader" in argv:
            return 0, "", ""
        if "snapshot" in argv:
            return 0, "Snapshot saved\n", ""
        if what == ["endpoint", "health"]:
            return 0, json.dumps([{"endpoint": u, "health": True} for u in urls]), ""
        if what == ["endpoint", "status"]:
            index = {m.client_url: i + 1 for i, m in enumerate(members)}
            entries = [
                {
                    "Endpoint": u,
                    "Status": {
                        "header": {"member_id": index.get(u, 1), "raft_term": 2},
                        "leader": 1,
                        "raftIndex": 100,
                        "dbSize": 4096,
                        "version": self.cluster.etcd.version,
                    },
                }
                for u in urls
            ]
            return 0, json.dumps(entries), ""
        if what == ["member", "list"]:
            listed = [
                {
                    "ID": i + 1,
                    "name": m.name,
                    "peerURLs": [m.peer_url],
                    "clientURLs": [m.client_url],
                }
                for i, m in enumerate(members)
            ]
            return 0, json.dumps({"members": listed}), ""
        return self.unscripted(shlex.join(argv))

    def do_kubectl(self, argv: list[str], stdin: bytes) -> Reply:
        args = argv[3:]
        if "--raw" in args:
            return 0, json.dumps(self.api(args[-1])), ""
        if args[:2] == ["apply", "-f"]:
            return 0, "deployment.apps/coredns unchanged\n", ""
        if "rollout" in args:
            return 0, 'deployment "coredns" successfully rolled out\n', ""
        if "kube-root-ca.crt" in args:  # the controller-manager published the deployed CA
            ca = self.host.files.get(f"{self.cluster.kubernetes.cert_dir}/ca.crt")
            return 0, ca.data.decode() if ca else "", ""
        if args[:2] == ["diff", "-f"]:
            return 0, "", ""
        return self.unscripted(shlex.join(argv))

    # --- what the host holds ----------------------------------------------------------------
    def facts(self) -> str:
        address = self.me.address
        return (
            "== os-release\nID=debian\nVERSION_ID=13\n== kernel\n6.12.0\n"
            f"== hostname\n{self.host.name}\n== init\nsystemd\n== managers\n/usr/bin/apt-get\n"
            f"== addresses\n2: eth0    inet {address}/16 brd 10.99.255.255 scope global eth0\n"
            "== cgroup\ncgroup2fs\n"
        )

    def file_survey(self, paths: list[str]) -> Reply:
        """tasks.files' batched survey: `stat -c "%a %U %G %n"`, `==`, `sha256sum`."""
        users = {v: k for k, v in _ids(self.host.passwd).items()}
        groups = {v: k for k, v in _ids(self.host.groups).items()}
        present = [p for p in paths if p in self.host.files]
        stats = [
            f"{stat.S_IMODE(f.mode):o} {users.get(f.uid, f.uid)} {groups.get(f.gid, f.gid)} {p}"
            for p in present
            for f in [self.host.files[p]]
        ]
        sums = [
            f"{hashlib.sha256(self.host.files[p].data).hexdigest()}  {p}"
            for p in present
            if not self.host.files[p].directory
        ]
        missing = "".join(f"stat: cannot stat '{p}'\n" for p in paths if p not in present)
        return (1 if missing else 0), "\n".join([*stats, "==", *sums]) + "\n", missing

    def host_survey(self, args: list[str]) -> str:
        """tasks.host_state's survey: each root's entries (depth 2), then the units."""
        cut = args.index("--")
        users = {v: k for k, v in _ids(self.host.passwd).items()}
        groups = {v: k for k, v in _ids(self.host.groups).items()}
        lines: list[str] = []
        for depth, root in zip(args[:cut:2], args[1:cut:2], strict=True):
            for path, f in sorted(self.host.files.items()):
                rest = path[len(root) + 1 :] if path.startswith(root + "/") else None
                if path != root and (rest is None or rest.count("/") >= int(depth)):
                    continue
                kind = "d" if f.directory else "f"
                owner, group = users.get(f.uid, f.uid), groups.get(f.gid, f.gid)
                mode = f"{stat.S_IMODE(f.mode):o}"
                lines.append(f"H\t{kind}\t{mode}\t{owner}\t{group}\t{len(f.data)}\t{path}")
                if kind == "f":
                    lines.append(base64.b64encode(f.data).decode())
        lines.append("== units")
        show = self.show(["systemctl", "show", *args[cut + 1 :]])
        return "\n".join(lines) + "\n" + show

    def security_survey(self, args: list[str]) -> str:
        """The security survey's lines: no process seen; the mode and owner of each path."""
        cut = args.index("--")
        users = {v: k for k, v in _ids(self.host.passwd).items()}
        groups = {v: k for k, v in _ids(self.host.groups).items()}
        lines: list[str] = []
        for path in sorted(set(args[cut + 1 :])):
            f = self.host.files.get(path)
            if f is None:
                lines.append(f"@missing {path}\n")
            else:
                owner, group = users.get(f.uid, f.uid), groups.get(f.gid, f.gid)
                lines.append(f"@stat {stat.S_IMODE(f.mode):o} {owner} {group} {path}\n")
        return "".join(lines)

    def api(self, path: str) -> dict[str, Any]:
        if path == "/api/v1/nodes":
            ready = [{"type": "Ready", "status": "True"}]
            items = [
                {"metadata": {"name": node.name}, "status": {"conditions": ready}}
                for node in self.cluster.nodes
            ]
            return {"items": items}
        if "/leases/" in path:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            holder = f"{self.cluster.controllers[0].name}_0a1b"
            return {
                "spec": {"holderIdentity": holder, "renewTime": now, "leaseDurationSeconds": 15}
            }
        return {"items": []}


def _ids(database: str) -> dict[str, int]:
    return {f[0]: int(f[2]) for f in (line.split(":") for line in database.splitlines()) if f[0]}


ANYTHING = re.compile(".*", re.DOTALL)


def healthy_fleet(inventory: Path) -> Fleet:
    """A FakeHost per inventory host, answering as a deployed, healthy host."""
    from kubenorn.cluster import load_cluster

    cluster = load_cluster(inventory)
    hosts: dict[str, FakeHost] = {}
    for host in cluster.hosts:
        fake = FakeHost(name=host.name, coreutils=True, chunk=1 << 16)
        fake.script[ANYTHING] = HealthyHost(fake, cluster)
        hosts[host.name] = fake
    return Fleet(hosts=hosts, addresses={str(h.address): h.name for h in cluster.hosts})


@contextmanager
def serving(fleet: Fleet) -> Iterator[Fleet]:
    """The fleet served as the "netmiko" connection for the duration (the real one after)."""
    ConnectionPluginRegister.auto_register()
    available = ConnectionPluginRegister.available
    real, auto = available.get("netmiko"), ConnectionPluginRegister.auto_register
    available["netmiko"] = fleet.plugin()
    ConnectionPluginRegister.auto_register = lambda: None  # type: ignore[method-assign]
    try:
        yield fleet
    finally:
        ConnectionPluginRegister.auto_register = auto  # type: ignore[method-assign]
        if real is not None:
            available["netmiko"] = real


def forget(fleet: Fleet) -> None:
    """Clear what the hosts recorded (their files stay)."""
    for host in fleet.hosts.values():
        host.commands.clear()
        host.sftp_log.clear()
        host.events.clear()
        host.unscripted.clear()


def round_trips(host: FakeHost) -> int:
    """Commands plus SFTP requests (open, stat, chmod, chown, rename, remove) on `host`."""
    return len(host.events) - sum(1 for event in host.events if event[0] == "write")


@contextmanager
def no_network() -> Iterator[None]:
    """The one check verify makes from the control machine itself (the kubelet's API refuses
    a stranger) answered OK without a socket; any other connection attempt fails loudly."""
    import socket

    import tasks.kube_verify
    from kubenorn.findings import Finding
    from tasks.kubelet_api import CHECK

    def refused(host: str, profile: Any, address: Any) -> list[Finding]:
        return [Finding(CHECK, host, "OK", "fake: refuses a stranger")]

    def no_socket(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a fake run opened a connection: {args[:1]}")

    saved = tasks.kube_verify.kubelet_anonymous, socket.create_connection
    tasks.kube_verify.kubelet_anonymous = lambda profile, host, address: refused(  # type: ignore[assignment]
        host, profile, address
    )
    socket.create_connection = no_socket  # type: ignore[assignment]
    try:
        yield
    finally:
        tasks.kube_verify.kubelet_anonymous, socket.create_connection = saved  # type: ignore[assignment]


@contextmanager
def deployed_fleet(directory: Path, *, nodes: int = 3) -> Iterator[tuple[Path, Fleet]]:
    """3 controllers and `nodes` nodes after one deploy (files in place, all healthy), served
    with no network until the block ends."""
    from runbooks import deploy

    inventory = write_inventory(directory / "inventory", nodes=nodes)
    fleet = healthy_fleet(inventory)
    with serving(fleet), no_network():
        assert deploy.main(["-i", str(inventory), "--quiet"]) == 0, "the first deploy settles"
        yield inventory, fleet
