"""Back up etcd: `python -m runbooks.etcd_backup -i INVENTORY [--dest DIR] [--keep N] [--quiet]`.

Takes a snapshot on a healthy member, fetches it to the control machine, proves it with
`snapshot status` and a trial restore, and keeps the newest N. Exit 0 OK, 2 CRITICAL (no
verified snapshot was made), 3 UNKNOWN (could not run); quiet on success with --quiet, for cron.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import EXIT_CODES
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.snapshots import (
    SnapshotInvalid,
    SnapshotStatus,
    prune,
    snapshot_name,
    verify_snapshot,
)
from kubenorn.text import for_console
from tasks.etcd_backup import fetch_snapshot
from tasks.etcd_verify import observe_etcd_member


def backup(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "")
    parser.add_argument(
        "--dest", type=Path, help="where snapshots go (default: INVENTORY/.backups)"
    )
    parser.add_argument("--keep", type=int, default=7, help="how many snapshots to keep")
    args = parser.parse_args(argv)
    inventory = (args.inventory or default_inventory_dir()).resolve()
    cluster = load_cluster(inventory)
    destination = cli.output_dir((args.dest or inventory / ".backups").resolve(), "--dest")
    with exclusive("etcd_backup", inventory):
        return backup_locked(args, cli.Options.parsed(args, argv), cluster, destination)


class BackupFailed(Exception):
    """No verified snapshot was made; the message says why ("" when the run's summary does)."""


def take_snapshot(
    run: Run, cluster: Cluster, destination: Path
) -> tuple[Path, str, SnapshotStatus]:
    """A snapshot from a healthy member, fetched into `destination` and verified: its path,
    the member and its status; BackupFailed otherwise."""
    views = run.step("observe", observe_etcd_member, only=cli.in_group("etcd"), cluster=cluster)
    healthy = [h for h, r in sorted(views.items()) if not r.failed and r[0].result.healthy]
    if not healthy:
        raise BackupFailed("no healthy etcd member to take a snapshot from")
    path = destination / snapshot_name(cluster.name)
    fetched = run.step(
        "snapshot",
        fetch_snapshot,
        only=lambda h: h.name == healthy[0],
        cluster=cluster,
        destination=path,
        run_id=run.info.run_id,
    )
    if fetched.failed:
        raise BackupFailed("")
    try:
        return path, healthy[0], verify_snapshot(path)
    except SnapshotInvalid as error:
        raise BackupFailed(str(error)) from None


def backup_locked(args: Any, options: cli.Options, cluster: Cluster, destination: Path) -> int:
    console = make_console()
    run = cli.new_run(options, "etcd_backup", progress=console)
    try:
        path, member, status = take_snapshot(run, cluster, destination)
    except BackupFailed as error:
        if str(error):
            console.print(for_console(f"CRITICAL: {error}"))
        return cli.finish(run, options, EXIT_CODES["CRITICAL"], console)
    pruned = prune(destination, cluster.name, args.keep)
    if not args.quiet:
        console.print(
            f"OK: {path} from {member}: revision {status.revision}, "
            f"{status.total_keys} keys, {status.total_size} bytes; trial restore passed; "
            f"{len(pruned)} old snapshots removed"
        )
    return cli.finish(run, options, EXIT_CODES["OK"], console)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(backup, argv)


if __name__ == "__main__":
    sys.exit(main())
