"""Restore etcd from a snapshot: `python -m runbooks.etcd_restore -i INVENTORY SNAPSHOT --yes`.

Verifies the snapshot, uploads it to every member, stops all members, restores each with its
own name and peer URL (the old data directory kept aside), starts them and waits until the
cluster is healthy with one leader. Everything written after the snapshot is lost: --yes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kubenorn import cli
from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from kubenorn.snapshots import SnapshotInvalid, verify_snapshot
from tasks.components import wait_etcd
from tasks.etcd_backup import restore_member, start_etcd, stop_etcd, upload_snapshot


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
    run = cli.new_run(args, "etcd_restore", argv)
    members = cli.in_group("etcd")
    for name, task, extra in (
        ("upload", upload_snapshot, {"snapshot": args.snapshot.resolve()}),
        ("stop", stop_etcd, {}),
        ("restore", restore_member, {"cluster": cluster}),
        ("start", start_etcd, {}),
        ("health", wait_etcd, {"cluster": cluster, "dry_run": False}),
    ):
        run.step(name, task, only=members, **extra)
        if run.failed:
            break
    console = make_console()
    return cli.finish(run, args, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(restore, argv)


if __name__ == "__main__":
    sys.exit(main())
