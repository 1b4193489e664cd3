"""Reset hosts: `python -m runbooks.reset -i INVENTORY [--limit ...] --yes [--purge-data]`.

Stops and removes what a deploy put on the selected hosts, so that a deploy starts afresh:
kubenorn's units (the Kubernetes components, the pod routes) stopped, disabled and removed,
the packaged ones it configured (etcd, containerd or docker, haproxy) stopped and disabled,
their configuration, kubeconfigs, certificates and keys, drop-ins, restart markers and
kubenorn's /etc/hosts block removed. Data (etcd's, the kubelet's, the runtime's images and
containers, snapshots on the hosts, the audit log) only with --purge-data. The packages
kubenorn installed (its ledger on each host lists them, with what they pulled in) are removed,
and with --purge-data purged with the users and groups they made; the host's own packages
stay, and a package installed since that needs one of kubenorn's stops the reset, named,
before anything is removed. --keep-packages leaves them all installed.

Resetting some etcd members but not all leaves them in the member list (the rest lose fault
tolerance, or quorum, until a deploy brings them back): refused unless --partial-etcd;
`runbooks.node remove` takes a member out for good.
--dry-run prints each host's plan and changes nothing. A reset that stops half way is re-run:
what is gone already is not asked for again. Exit 0 every selected host reset, 1 a host
failed, 3 usage (no --yes, a --limit that splits etcd).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult
from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.records import failure_message
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.text import for_console
from runbooks.deploy import print_diffs
from tasks.reset import reset_host, reset_plan


def reset(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "", dry_run=True)
    parser.add_argument("--yes", action="store_true", help="really remove the cluster's files")
    parser.add_argument(
        "--purge-data",
        action="store_true",
        help="remove data too: etcd's, the kubelet's, the runtime's images and containers",
    )
    add_keep_packages(parser)
    parser.add_argument(
        "--partial-etcd",
        action="store_true",
        help="allow a --limit with some etcd members but not all (they stay in the member list)",
    )
    args = parser.parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("reset", args.retry_failed)
    if not (args.yes or args.dry_run):
        raise cli.UsageError(
            "reset stops and removes the cluster on every selected host: add --yes to proceed "
            "(or --dry-run to see the plan)"
        )
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    with exclusive("reset", cluster.inventory_dir):
        return reset_locked(args, cli.Options.parsed(args, argv), cluster)


def add_keep_packages(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-packages",
        action="store_true",
        help="leave installed the packages kubenorn installed (by default removed; purged, "
        "with the users and groups they made, with --purge-data; with --purge-data and this, "
        "the record of them goes with the data: they become the host's)",
    )


def split_etcd(cluster: Cluster, selected: Iterable[str]) -> list[str]:
    """The etcd members a selection leaves out when it takes some but not all; else none."""
    members = [m.host.name for m in cluster.etcd.members]
    taken = [name for name in members if name in set(selected)]
    return [name for name in members if name not in taken] if taken else []


def check_etcd_selection(cluster: Cluster, selected: list[str], *, allowed: bool) -> None:
    """UsageError when `selected` splits the etcd members and the user has not allowed it."""
    left = split_etcd(cluster, selected)
    if not left or allowed:
        return
    taken = [m.host.name for m in cluster.etcd.members if m.host.name in selected]
    raise cli.UsageError(
        f"--limit resets etcd members {', '.join(taken)} but not {', '.join(left)}: the reset "
        "members stay in the member list, so the others lose fault tolerance (or quorum, "
        "when a majority is reset) until a deploy brings them back. Reset every etcd host, "
        "take a member out for good with `runbooks.node remove`, or pass --partial-etcd if "
        "you mean it"
    )


def reset_locked(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    console = make_console()
    run = cli.new_run(options, "reset", progress=console)
    check_etcd_selection(cluster, run.hosts, allowed=args.partial_etcd)
    reset_and_report(run, cluster, lambda host: True, args, console)
    return cli.finish(run, options, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def reset_and_report(
    run: Run,
    cluster: Cluster,
    only: Callable[[Host], bool],
    args: argparse.Namespace,
    console: Console,
) -> None:
    """The reset on the hosts `only` selects (a step of `run`), the plan under --dry-run, and
    what stays on each host."""
    results = run.step(
        "reset",
        reset_host,
        only=only,
        cluster=cluster,
        purge_data=args.purge_data,
        keep_packages=args.keep_packages,
        dry_run=args.dry_run,
    )
    if args.dry_run and not args.quiet:
        print_diffs(run, console)
    report(
        console,
        cluster,
        run,
        results,
        purge_data=args.purge_data,
        keep_packages=args.keep_packages,
        quiet=args.quiet,
    )


def report(
    console: Console,
    cluster: Cluster,
    run: Run,
    results: AggregatedResult,
    *,
    purge_data: bool,
    keep_packages: bool,
    quiet: bool,
) -> None:
    """What stays on each host; on one that failed, everything the plan had left to do."""
    for name in sorted(results):
        plan = reset_plan(cluster, run.nr.inventory.hosts[name])
        if results[name].failed:
            console.print(for_console(f"{name}: NOT cleaned: {failure_message(results[name][0])}"))
            console.print(f"  {name} may still hold (re-run to finish; it resumes):")
            for line in plan.describe():
                console.print(for_console(f"    {line}"))
            continue
        if quiet:
            continue
        data = (
            "removed" if purge_data else "kept (--purge-data removes it): " + ", ".join(plan.data)
        )
        console.print(for_console(f"{name}: data {data}"))
        if keep_packages:
            packages = ", ".join(plan.packages) or "none"
            console.print(for_console(f"{name}: packages left installed: {packages}"))


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(reset, argv)


if __name__ == "__main__":
    sys.exit(main())
