"""Nodes joining and leaving: `python -m runbooks.node add|remove HOST -i INVENTORY [--dry-run]`.

`add HOST`: a worker added to the inventory's hosts.yaml (group nodes) joins: deploy runs on
it alone (`deploy --limit HOST`: its certificates, runtime, load balancer, kubelet, kube-proxy,
pod routes), then every other host learns of it without a restart (its /etc/hosts line, a route
to its pods), and the run ends once the apiserver counts it Ready and schedulable (a cordon of
kubenorn's own, left by a removal that stopped half way, is lifted; anyone else's stays).
Exit 0 joined and Ready, 1 a step failed (a re-run finishes it), 3 usage.

A controller (and etcd member) joins with `deploy` of the whole inventory instead: its etcd
member is added as a learner and promoted once caught up, and the other controllers'
apiservers (--etcd-servers) and every node's load balancer learn of it, one at a time.

`remove HOST`: a worker first leaves the API: on a controller, cordoned, drained (`kubectl
drain --ignore-daemonsets --delete-emptydir-data`, PodDisruptionBudgets respected, at most
--timeout seconds) and its Node object deleted. An etcd member leaves etcd's member list
(leadership handed over first; refused when the members left would lose quorum). Then the host
is reset as `runbooks.reset` does (units stopped and removed, files removed; data with
--purge-data). A host that cannot be reached is still removed from the API and from etcd, and
the run names what stays on it. The last controller or etcd member is refused. No certificate
is revoked (kubenorn has no CRL): the host's certificates stay valid until they expire.
Afterwards, delete the host from the inventory's hosts.yaml and deploy, so the other hosts
forget it (its pod route, its /etc/hosts line, apiservers' --etcd-servers, load balancer
backends). Exit 0 removed, 1 a step failed (a drain that could not finish leaves the node
cordoned and deletes nothing), 3 usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from nornir.core.task import Result

from kubenorn import cli
from kubenorn.cluster import Cluster, Host, load_cluster
from kubenorn.inventory_model import FILES
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from kubenorn.text import for_console
from runbooks import deploy
from runbooks.deploy import print_diffs
from runbooks.reset import add_keep_packages, reset_and_report
from tasks import host_state
from tasks.drain import uncordon_node
from tasks.etcd_membership import ensure_member_left
from tasks.facts import gather_facts
from tasks.hosts_file import ensure_hosts_file
from tasks.kube_verify import wait_nodes_ready
from tasks.node_removal import ensure_node_removed
from tasks.pod_network import ensure_pod_routes

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
    for action in common._actions:  # HOST and the hosts it touches: no selection, no retry
        if action.dest in ("limit", "retry_failed"):
            action.help = argparse.SUPPRESS
    add = actions.add_parser(
        "add",
        parents=[common],
        add_help=False,
        help="deploy a worker added to the inventory, route the others to it, wait for Ready",
        description=__doc__,
    )
    add.add_argument("host", help="the inventory name of the new worker (group nodes)")
    remove = actions.add_parser(
        "remove",
        parents=[common],
        add_help=False,
        help="drain a worker (or take an etcd member out of etcd), reset the host",
        description=__doc__,
    )
    remove.add_argument("host", help="the inventory name of a worker, controller or etcd member")
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
        help="remove the kubelet's and the runtime's data on the host too, and purge the "
        "packages kubenorn installed (their configuration, users and groups)",
    )
    add_keep_packages(remove)
    return parser.parse_args(argv)


def node(argv: list[str]) -> int:
    args = arguments(argv)
    if args.limit or args.retry_failed:
        raise cli.UsageError(f"node {args.action} works on HOST: no --limit, no retry")
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    if args.action == "add":
        check_worker(cluster, args.host)
        return add(args, cli.Options.parsed(args, argv), cluster)
    check_removable(cluster, args.host)
    args.limit = [args.host, *helpers(cluster, args.host).values()]
    with exclusive("node", cluster.inventory_dir):
        return remove_locked(args, cli.Options.parsed(args, argv), cluster)


def add(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    """deploy on HOST alone, then the others learn of it; exit as the first that failed."""
    # The history keeps the deploy's own command line: its --retry-failed reruns a deploy.
    command = ["-i", str(cluster.inventory_dir), "--limit", args.host]
    command += ["--workers", str(args.workers)] if args.workers else []
    command += [flag for flag, on in (("--dry-run", args.dry_run), ("--quiet", args.quiet)) if on]
    on_host = dataclasses.replace(options, limit=(args.host,), argv=tuple(command))
    try:
        deployed = deploy.deploy_cluster(cluster, on_host, make_console()).exit_code
    except deploy.PreflightFailed:  # its findings, printed, say why
        return cli.EXIT_UNKNOWN
    if deployed != cli.EXIT_OK:
        return deployed
    with exclusive("node", cluster.inventory_dir):
        return neighbours_locked(args, options, cluster)


def neighbours_locked(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    """Every other host: HOST in /etc/hosts, a route to its pods (no restart); then HOST Ready."""
    console = make_console()
    run = cli.new_run(options, "node", progress=console)
    host_state.enable(run.nr)
    others = cli.all_but(args.host)
    run.step("facts", gather_facts, only=others)
    entries = cluster.host_entries()
    run.step("hosts", ensure_hosts_file, only=others, entries=entries, dry_run=args.dry_run)
    if any(node.pod_cidr for node in cluster.nodes):
        run.step(
            "pod-network", ensure_pod_routes, only=others, cluster=cluster, dry_run=args.dry_run
        )
    run.step(
        "node-ready",
        wait_nodes_ready,
        only=cli.named(cluster.controllers[0].name),
        cluster=cluster,
        nodes=[args.host],
        dry_run=args.dry_run,
    )
    # Schedulable, unless someone else cordoned it (a removal that stopped half way: kubenorn's).
    run.step(
        "uncordon",
        uncordon_node,
        only=cli.named(cluster.controllers[0].name),
        cluster=cluster,
        node=args.host,
        dry_run=args.dry_run,
    )
    if args.dry_run and not args.quiet:
        print_diffs(run, console)
    return cli.finish(run, options, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def check_worker(cluster: Cluster, name: str) -> None:
    """UsageError unless `name` is a worker and nothing else."""
    host = inventory_host(cluster, name)
    if not host.has_role("nodes"):
        raise cli.UsageError(
            f"{name} is not in group nodes: a controller or etcd member joins with `deploy` "
            "of the whole inventory (the others' apiservers and load balancers learn of it)"
        )
    if host.has_role("controllers") or host.has_role("etcd"):
        raise cli.UsageError(
            f"{name} is also in {', '.join(g for g in host.groups if g != 'nodes')}: it joins "
            "with `deploy` of the whole inventory"
        )


def inventory_host(cluster: Cluster, name: str) -> Host:
    """The inventory's host `name`; UsageError when there is none."""
    hosts = {host.name: host for host in cluster.hosts}
    if name not in hosts:
        raise cli.UsageError(f"{name}: no such host in the inventory")
    return hosts[name]


def check_removable(cluster: Cluster, name: str) -> None:
    """UsageError when `name` is not in the inventory, or is its last controller or member."""
    host = inventory_host(cluster, name)
    for role, members in (("controllers", cluster.controllers), ("etcd", cluster.etcd.members)):
        if host.has_role(role) and len(members) == 1:
            raise cli.UsageError(
                f"{name} is the last of group {role}: the cluster would go with it"
            )


def helpers(cluster: Cluster, name: str) -> dict[str, str]:
    """The hosts that take `name` out: a controller for the API, an etcd member for etcd."""
    host = inventory_host(cluster, name)
    chosen = {}
    if host.has_role("nodes"):
        chosen["api"] = next(c.name for c in cluster.controllers if c.name != name)
    if host.has_role("etcd"):
        chosen["etcd"] = next(m.host.name for m in cluster.etcd.members if m.host.name != name)
    return chosen


def remove_locked(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    console = make_console()
    run = cli.new_run(options, "node", progress=console)
    chosen = helpers(cluster, args.host)
    leave_etcd = {"leaving": args.host, "dry_run": args.dry_run}
    # Each leaves the cluster only once the one before passed: (step, task, where, arguments).
    gates: list[tuple[str, Callable[..., Result], str, dict[str, Any]]] = []
    if "api" in chosen and "etcd" in chosen:  # a stacked host: etcd's quorum before the drain
        quorum_only = {**leave_etcd, "dry_run": True}
        gates.append(("etcd-quorum", ensure_member_left, chosen["etcd"], quorum_only))
    if "api" in chosen:
        drain = {"node": args.host, "timeout": args.timeout, "dry_run": args.dry_run}
        gates.append(("leave-api", ensure_node_removed, chosen["api"], drain))
    if "etcd" in chosen:
        gates.append(("leave-etcd", ensure_member_left, chosen["etcd"], leave_etcd))
    for name, task, where, arguments in gates:
        if run.step(name, task, only=cli.named(where), cluster=cluster, **arguments).failed:
            return cli.finish(run, options, cli.EXIT_FAILED, console)
    reset_and_report(run, cluster, cli.named(args.host), args, console)
    console.print(for_console(NO_CRL.format(host=args.host)))
    hosts_file = cluster.inventory_dir / FILES[0]  # hosts.yaml: every host's entry
    console.print(
        for_console(
            f"now delete {args.host} from {hosts_file} and deploy: the other hosts still "
            "route its pods and name it in /etc/hosts"
        )
    )
    return cli.finish(run, options, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(node, argv)


if __name__ == "__main__":
    sys.exit(main())
