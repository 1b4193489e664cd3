"""Restore etcd from a snapshot: `python -m runbooks.etcd_restore -i INVENTORY SNAPSHOT --yes`.

Verifies the snapshot, uploads it to every member, stops the control plane where it runs (an
apiserver must not write, nor a leader renew, while the data changes under it), stops all
members, restores each with its own name and peer URL (the old data directory kept aside),
starts them, waits until the cluster is healthy with one leader, then starts the control plane
again one controller at a time, each healthy before the next. Everything written after the
snapshot is lost: --yes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import print_problems
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.profiles import CONTROL_PLANE
from kubenorn.report import make_console
from kubenorn.snapshots import SnapshotInvalid, verify_snapshot
from tasks.components import wait_etcd
from tasks.etcd_backup import restore_member, start_etcd, stop_etcd, upload_snapshot
from tasks.kube_units import start_components, stop_components
from tasks.kube_verify import wait_control_plane_healthy

LEADERS_TIMEOUT = 120.0


def restore(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "")
    parser.add_argument("snapshot", type=Path, help="a snapshot made by runbooks.etcd_backup")
    parser.add_argument("--yes", action="store_true", help="really replace the cluster's data")
    args = parser.parse_args(argv)
    if not args.yes:
        raise cli.UsageError("restore replaces every member's data: add --yes to proceed")
    try:
        verify_snapshot(args.snapshot)
    except SnapshotInvalid as error:
        raise cli.UsageError(str(error)) from None
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    with exclusive("etcd_restore", cluster.inventory_dir):
        return restore_locked(args, argv, cluster)


def restore_locked(args: argparse.Namespace, argv: list[str], cluster: Cluster) -> int:
    run = cli.new_run(args, "etcd_restore", argv)
    members = cli.in_group("etcd")
    run.step("upload", upload_snapshot, only=members, snapshot=args.snapshot.resolve())
    if run.failed:
        return cli.finish(run, args, cli.EXIT_FAILED, make_console())
    stopped = run.step(
        "stop-control-plane",
        stop_components,
        only=cli.in_group("controllers"),
        components=CONTROL_PLANE,
    )
    for name, task, extra in (
        ("stop", stop_etcd, {}),
        ("restore", restore_member, {"cluster": cluster}),
        ("start", start_etcd, {}),
        ("health", wait_etcd, {"cluster": cluster, "dry_run": False}),
    ):
        if run.failed:
            break
        run.step(name, task, only=members, **extra)
    run.step(
        "control-plane",
        start_components,
        only=lambda host: host.name in {h for h, r in stopped.items() if r.changed},
        serial=True,
        cluster=cluster,
        components=CONTROL_PLANE,
        dry_run=False,
    )
    console = make_console()
    if any(r.changed for r in stopped.values()) and not run.failed:
        # Leader leases restored from the snapshot are stale: wait for fresh elections.
        _, problems = wait_control_plane_healthy(run.nr, cluster, LEADERS_TIMEOUT)
        print_problems(console, problems)
        if problems:
            return cli.finish(run, args, cli.EXIT_FAILED, console)
    return cli.finish(run, args, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(restore, argv)


if __name__ == "__main__":
    sys.exit(main())
