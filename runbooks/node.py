"""Nodes leaving the cluster: `python -m runbooks.node remove HOST -i INVENTORY [--dry-run]`.

`remove HOST`: on the first controller, through the API, cordons the node, drains it
(`kubectl drain --ignore-daemonsets --delete-emptydir-data`, PodDisruptionBudgets respected,
at most --timeout seconds) and deletes its Node object; then resets the host itself as
`runbooks.reset` does (units stopped and removed, files removed; data with --purge-data). A
host that cannot be reached is still removed from the API, and the run names what stays on
it. Only a worker: a controller or etcd member is refused. No certificate is revoked (kubenorn
has no CRL): the node's kubelet certificate stays valid until it expires. Afterwards, delete
the host from the inventory's hosts.yaml and deploy, so the other hosts forget it (its pod
route, its /etc/hosts line). Exit 0 removed, 1 a step failed (a drain that could not finish
leaves the node cordoned and deletes nothing), 3 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from nornir.core.inventory import Host

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.inventory_model import FILES
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from kubenorn.text import for_console
from runbooks.deploy import print_diffs
from runbooks.reset import report, reset_step
from tasks.node_removal import ensure_node_removed

DRAIN_TIMEOUT = 300
NO_CRL = (
    "no certificate was revoked: kubenorn keeps no CRL, so {host}'s kubelet certificate "
    "stays valid until it expires (pki rotate renews no CA: only a new PKI ends it sooner)"
)


def seconds(value: str) -> int:
    """--timeout: a whole number of seconds, at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of seconds, at least 1")
    return int(value)


def arguments(argv: list[str]) -> argparse.Namespace:
    """`node ACTION ...`, each action with every runbook's options."""
    parser = cli.ArgumentParser(description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common: Any = cli.parser("", dry_run=True)
    for action in common._actions:  # one host and one controller: no selection, no retry
        if action.dest in ("limit", "retry_failed"):
            action.help = argparse.SUPPRESS
    remove = actions.add_parser(
        "remove",
        parents=[common],
        add_help=False,
        help="drain a worker, delete its Node object, reset the host",
        description=__doc__,
    )
    remove.add_argument("host", help="the inventory name of a worker (group nodes)")
    remove.add_argument(
        "--timeout",
        type=seconds,
        default=DRAIN_TIMEOUT,
        metavar="S",
        help=f"seconds the drain may take (default {DRAIN_TIMEOUT})",
    )
    remove.add_argument(
        "--purge-data",
        action="store_true",
        help="remove the kubelet's and the runtime's data on the host too",
    )
    return parser.parse_args(argv)


def node(argv: list[str]) -> int:
    args = arguments(argv)
    if args.limit or args.retry_failed:
        raise cli.UsageError("node remove works on HOST and one controller: no --limit, no retry")
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    check_removable(cluster, args.host)
    args.limit = [cluster.controllers[0].name, args.host]
    with exclusive("node", cluster.inventory_dir):
        return remove_locked(args, argv, cluster)


def check_removable(cluster: Cluster, name: str) -> None:
    """UsageError unless `name` is a worker and nothing else."""
    hosts = {host.name: host for host in cluster.hosts}
    if name not in hosts:
        raise cli.UsageError(f"{name}: no such host in the inventory")
    host = hosts[name]
    if not host.has_role("nodes"):
        raise cli.UsageError(
            f"{name} is not in group nodes: it runs no kubelet and has no Node object to drain "
            "(runbooks.reset takes a host of another role apart)"
        )
    if host.has_role("controllers") or host.has_role("etcd"):
        raise cli.UsageError(
            f"{name} is also in {', '.join(g for g in host.groups if g != 'nodes')}: removing it "
            "would take an apiserver or an etcd member with it (the others' certificates, "
            "load balancers and the etcd member list still name it); not done here"
        )


def remove_locked(args: argparse.Namespace, argv: list[str], cluster: Cluster) -> int:
    console = make_console()
    run = cli.new_run(args, "node", argv)
    controller = cluster.controllers[0].name
    api = run.step(
        "leave-api",
        ensure_node_removed,
        only=named(controller),
        cluster=cluster,
        node=args.host,
        timeout=args.timeout,
        dry_run=args.dry_run,
    )
    if api.failed:
        return cli.finish(run, args, cli.EXIT_FAILED, console)
    results = reset_step(run, cluster, named(args.host), args)
    if args.dry_run and not args.quiet:
        print_diffs(run, console)
    report(console, cluster, run, results, purge_data=args.purge_data, quiet=args.quiet)
    console.print(for_console(NO_CRL.format(host=args.host)))
    hosts_file = cluster.inventory_dir / FILES[0]  # hosts.yaml: every host's entry
    console.print(
        for_console(
            f"now delete {args.host} from {hosts_file} and deploy: the other hosts still "
            "route its pods and name it in /etc/hosts"
        )
    )
    return cli.finish(run, args, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def named(name: str) -> Callable[[Host], bool]:
    """A host filter: the host `name`."""
    return lambda host: host.name == name


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(node, argv)


if __name__ == "__main__":
    sys.exit(main())
