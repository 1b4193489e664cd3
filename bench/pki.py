"""Time the PKI on a large inventory: 3 controllers (etcd members) + 200 nodes, no hosts needed.

`.venv/bin/python bench/pki.py [--nodes 200] [--key-algorithm ecdsa-p256|rsa-2048|rsa-4096]`
writes a temporary inventory (deleted afterwards) and prints the wall time of a first init,
a check of every certificate, a second init (nothing to issue), preflight, and the time to
compute every host's file placements. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kubenorn.cluster import KEY_ALGORITHMS, load_cluster
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.pki.issue import init
from kubenorn.pki.local import check_state
from kubenorn.pki.placement import placements
from kubenorn.preflight import preflight


def write_inventory(directory: Path, nodes: int, algorithm: str) -> None:
    """The lab inventory's groups and defaults with 3 controllers and `nodes` workers."""
    source = REPO_ROOT / "lab" / "inventory"
    shutil.copy(source / "groups.yaml", directory / "groups.yaml")
    defaults = yaml.safe_load((source / "defaults.yaml").read_text())
    defaults["data"]["pki"]["key_algorithm"] = algorithm
    (directory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    hosts: dict[str, Any] = {}
    for i in range(1, 4):
        hosts[f"kube.controller{i:02d}"] = _host(f"10.240.0.{10 + i}", ["etcd", "controllers"])
    for i in range(1, nodes + 1):
        hosts[f"kube.node{i:03d}"] = _host(f"10.241.{i // 250}.{i % 250 + 1}", ["nodes"])
    (directory / "hosts.yaml").write_text(yaml.safe_dump(hosts))


def _host(address: str, groups: list[str]) -> dict[str, Any]:
    return {"hostname": address, "groups": groups, "data": {"address": address}}


def timed(label: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    outcome = action()
    print(f"{label:<34} {time.perf_counter() - started:8.3f} s")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--key-algorithm", choices=KEY_ALGORITHMS, default="ecdsa-p256")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubenorn-bench-") as temporary:
        inventory = Path(temporary)
        write_inventory(inventory, args.nodes, args.key_algorithm)
        cluster = timed("load the inventory", lambda: load_cluster(inventory))
        print(f"{len(cluster.hosts)} hosts, key algorithm {args.key_algorithm}")
        changes = timed("init (first: issue everything)", lambda: init(cluster))
        issued = sum(1 for c in changes if c.action != "kept")
        findings = timed("check (every certificate)", lambda: check_state(cluster))
        again = timed("init (second: nothing to issue)", lambda: init(cluster))
        timed("preflight (inventory and PKI)", lambda: preflight(inventory))
        timed("placements of every host", lambda: [placements(cluster, h) for h in cluster.hosts])
        problems = sum(1 for f in findings if not f.ok)
        reissued = sum(1 for c in again if c.action != "kept")
        print(
            f"items issued {issued}, findings {len(findings)} ({problems} not OK), "
            f"issued by the second init {reissued}"
        )


if __name__ == "__main__":
    main()
