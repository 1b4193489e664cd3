"""Fake hosts a real deploy can set up and a reset can take apart again.

`ResettableHost` is a `HealthyHost` (tests/unit/fake_cluster.py) with state where a reset
acts: units that stop and are disabled (and start again when a deploy says so), `rm -rf`
that removes a directory with everything below it, the reset's own shell snippets (which
paths exist, remove the empty directories), and on a controller an API that holds the nodes'
Node objects for cordon, drain and delete. `deployed_fleet` runs one real deploy on such a
fleet; `restore` puts every host back as the deploy left it, between tests.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fake_cluster import ANYTHING, HealthyHost, forget, no_network, serving, write_inventory
from fakes import FakeFile, FakeHost, Fleet, Reply

from kubenorn.cluster import load_cluster
from runbooks import deploy
from tasks.kube_units import KUBELET_ROOT_DIR
from tasks.reset import (
    NETFILTER_LEFTOVERS,
    PRESENT,
    REMOVE,
    REMOVE_EMPTY,
    RUNTIME_LEFTOVERS,
    UNMOUNT,
)
from tasks.runtime import CONTAINERD_ROOT

SUDO = ["sudo", "-n", "--"]
HOSTS_BEFORE = b"127.0.0.1 localhost\n"
BEFORE_DEPLOY = ("/etc/hosts", "/etc/systemd/system")  # what a host holds before any deploy
MUTATING: tuple[str, ...] = (
    "systemctl stop",
    "systemctl disable",
    "rm ",
    "rmdir",
    "umount",
    "mv ",
    "install ",
)
MUTATING += ("kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig cordon",)
MUTATING += ("kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig drain",)
MUTATING += ("kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig delete",)
MUTATING += (shlex.join(["sh", "-c", REMOVE]),)


class ResettableHost(HealthyHost):
    """A deployed, healthy host whose units stop and whose files go."""

    def __init__(self, host: FakeHost, cluster: Any) -> None:
        super().__init__(host, cluster)
        self.units: dict[str, list[bool]] = {}  # unit -> [enabled, active]; unseen: both
        self.api_nodes = {node.name for node in cluster.nodes}
        self.drain_error = ""  # what a failing `kubectl drain` says; "" drains
        self.unmounted: list[str] = []
        self.mount_points: set[str] = set()  # directories a volume is mounted on
        self.installed: list[str] = []  # packages the census lists (the ledger's, when set)
        self.dependents: list[str] = []  # installed since: apt would remove them too
        self.leftovers: dict[str, list[str]] = {}  # cleanup script -> what it prints
        self.busy = ""  # what a failing umount says; "" unmounts
        self.on_delete: Callable[[], None] = lambda: None  # called as a Node is deleted
        self.cordoned: set[str] = set()
        self.annotations: dict[str, dict[str, str]] = {}  # node -> its annotations

    def answer(self, line: str, stdin: bytes) -> Reply:
        return super().answer(line, stdin)

    def state(self, unit: str) -> list[bool]:
        return self.units.setdefault(unit, [not unit.endswith(".slice"), True])

    def show(self, argv: list[str]) -> str:
        blocks = []
        for unit in (a for a in argv[2:] if not a.startswith("-")):
            enabled, active = self.state(unit)
            blocks.append(
                f"Id={unit}\nLoadState=loaded\n"
                f"UnitFileState={'enabled' if enabled else 'disabled'}\n"
                f"ActiveState={'active' if active else 'inactive'}\n\n"
            )
        return "".join(blocks)

    def do_systemctl(self, argv: list[str], stdin: bytes) -> Reply:
        action, unit = argv[1], argv[-1]
        effects = {"stop": (1, False), "disable": (0, False), "enable": (0, True)}
        effects |= {"start": (1, True), "restart": (1, True)}
        if action in effects:
            index, value = effects[action]
            self.state(unit)[index] = value
            return 0, "", ""
        if action in ("is-enabled", "is-active"):
            return (0 if self.state(unit)[action == "is-active"] else 3), "", ""
        return super().do_systemctl(argv, stdin)

    def do_sh(self, argv: list[str], stdin: bytes) -> Reply:
        script, paths = argv[2], argv[4:]
        files = self.host.files
        if script == PRESENT:
            found = [
                p + ("\tmount" if p in self.mount_points else "") for p in paths if self.present(p)
            ]
            return 0, "".join(f"{line}\n" for line in found), ""
        if script == REMOVE:
            return self.remove_trees(paths)
        if script in (RUNTIME_LEFTOVERS, NETFILTER_LEFTOVERS):
            return 0, "".join(f"{line}\n" for line in self.leftovers.get(script, [])), ""
        if script == UNMOUNT:
            self.unmounted += paths
            return (1, "", self.busy) if self.busy else (0, "", "")
        if script == REMOVE_EMPTY:
            removed = []
            for path in paths:  # one after the other, as rmdir does: a parent may empty
                if path in self.mount_points:  # rmdir: busy
                    continue
                if path in files and files[path].directory and not self.below(path):
                    del files[path]
                    removed.append(path)
            return 0, "".join(f"{p}\n" for p in removed), ""
        return super().do_sh(argv, stdin)

    def below(self, directory: str) -> list[str]:
        return [path for path in self.host.files if path.startswith(directory + "/")]

    def packages(self) -> list[str]:
        return self.installed

    def do_env(self, argv: list[str], stdin: bytes) -> Reply:
        if "apt-get" not in argv:
            return super().do_env(argv, stdin)
        names = [a for a in argv[3:] if not a.startswith("-")][1:]  # after remove or purge
        if "-s" in argv:
            return 0, "".join(f"Remv {name} [1]\n" for name in names + self.dependents), ""
        self.installed = [name for name in self.installed if name not in names]
        return 0, "", ""

    def present(self, path: str) -> bool:
        if path in self.mount_points:
            return bool(self.below(path))
        return path in self.host.files

    def remove_trees(self, paths: list[str]) -> Reply:
        for path in paths:
            kept = [path] if path in self.mount_points else []
            for gone in [path, *self.below(path)]:
                if gone not in kept:
                    self.host.files.pop(gone, None)
        return 0, "", ""

    def do_kubectl(self, argv: list[str], stdin: bytes) -> Reply:
        args = argv[3:]
        if args[:2] == ["get", "node"] and args[3:] == ["-o", "json"]:
            return 0, json.dumps(self.node_object(args[2])), ""
        if args[:2] == ["get", "node"]:
            return 0, f"node/{args[2]}\n" if args[2] in self.api_nodes else "", ""
        if args[:3] == ["annotate", "--overwrite", "node"]:
            key, _, value = args[4].partition("=")
            self.annotations.setdefault(args[3], {})[key] = value
            return 0, f"node/{args[3]} annotated\n", ""
        if args[:2] == ["annotate", "node"]:
            self.annotations.get(args[2], {}).pop(args[3].rstrip("-"), None)
            return 0, f"node/{args[2]} annotated\n", ""
        if args[0] in ("cordon", "uncordon"):
            (self.cordoned.add if args[0] == "cordon" else self.cordoned.discard)(args[1])
            return 0, f"node/{args[1]} {args[0]}ed\n", ""
        if args[0] == "drain":
            return (1, "", self.drain_error) if self.drain_error else (0, "drained\n", "")
        if args[:2] == ["delete", "node"]:
            self.on_delete()
            self.api_nodes.discard(args[2])
            return 0, f'node "{args[2]}" deleted\n', ""
        return super().do_kubectl(argv, stdin)

    def node_object(self, node: str) -> dict[str, Any]:
        """The Node as `kubectl get node NODE -o json` shows it: its cordon and annotations."""
        metadata = {"name": node, "annotations": dict(self.annotations.get(node, {}))}
        return {"metadata": metadata, "spec": {"unschedulable": node in self.cordoned}}


@dataclass
class Deployed:
    """A fleet after one deploy, and how to put it back as the deploy left it."""

    inventory: Path
    fleet: Fleet
    fakes: dict[str, ResettableHost]
    saved: dict[str, tuple[dict[str, FakeFile], dict[str, list[bool]]]] = field(
        default_factory=dict
    )

    def save(self) -> None:
        for name, fake in self.fakes.items():
            self.saved[name] = (copy.deepcopy(fake.host.files), copy.deepcopy(fake.units))

    def restore(self) -> None:
        """Every host as the deploy left it, with nothing recorded."""
        for name, fake in self.fakes.items():
            files, units = self.saved[name]
            fake.host.files, fake.units = copy.deepcopy(files), copy.deepcopy(units)
            fake.api_nodes = {node.name for node in fake.cluster.nodes}
            fake.drain_error, fake.unmounted, fake.on_delete = "", [], lambda: None
            fake.busy, fake.cordoned, fake.annotations = "", set(), {}
            fake.mount_points, fake.installed, fake.leftovers = set(), [], {}
            fake.host.connect_error = None
        forget(self.fleet)

    def lines(self, name: str) -> list[str]:
        """The command lines run on `name`, sudo's prefix dropped."""
        prefix = shlex.join(SUDO) + " "
        return [line.removeprefix(prefix) for line in self.fleet[name].lines()]


def resettable_fleet(inventory: Path) -> tuple[Fleet, dict[str, ResettableHost]]:
    cluster = load_cluster(inventory)
    hosts: dict[str, FakeHost] = {}
    fakes: dict[str, ResettableHost] = {}
    for host in cluster.hosts:
        fake = FakeHost(name=host.name, coreutils=True, chunk=1 << 16)
        fake.files["/etc/hosts"] = FakeFile(HOSTS_BEFORE)
        fake.files["/etc/systemd/system"] = FakeFile(mode=0o755, directory=True)
        fakes[host.name] = ResettableHost(fake, cluster)
        fake.script[ANYTHING] = fakes[host.name]
        hosts[host.name] = fake
    return Fleet(hosts, {str(h.address): h.name for h in cluster.hosts}), fakes


def deployed_fleet(directory: Path) -> Deployed:
    """3 controllers and 2 nodes (an inventory written in `directory`) after a real deploy."""
    inventory = write_inventory(directory / "inventory", nodes=2)
    fleet, fakes = resettable_fleet(inventory)
    with serving(fleet), no_network():
        assert deploy.main(["-i", str(inventory), "--quiet"]) == 0, "the deploy settles"
    for node in load_cluster(inventory).nodes:  # what the kubelet and containerd write
        files = fleet[node.name].files
        for root in (KUBELET_ROOT_DIR, CONTAINERD_ROOT):
            files[root] = FakeFile(mode=0o700, directory=True)
        files[f"{KUBELET_ROOT_DIR}/pods/uid/volumes/token"] = FakeFile(b"a pod's volume")
        files[f"{CONTAINERD_ROOT}/io.containerd.content.v1.content/blob"] = FakeFile(b"image")
    done = Deployed(inventory, fleet, fakes)
    done.save()
    return done


def mutating(lines: list[str]) -> list[str]:
    """The command lines that change something on a host or in the API."""
    return [line for line in lines if line.startswith(MUTATING)]


@contextmanager
def served(deployed: Deployed) -> Iterator[Deployed]:
    """The deployed fleet as the deploy left it, served for one test; fails the test on an
    unscripted command or a channel left open."""
    deployed.restore()
    with serving(deployed.fleet), no_network():
        yield deployed
    if problems := deployed.fleet.problems():
        pytest.fail("\n".join(problems), pytrace=False)
