"""Upgrade the cluster: `python -m runbooks.upgrade -i INVENTORY --yes [--dry-run] [--limit ...]`.

Upgrades every component to the inventory's cluster.kubernetes_version. First asks each host
which version each component runs (the running process's binary) and refuses (exit 3) what
the version-skew policy forbids: a downgrade, a control-plane component skipping a minor
release, a version no profile holds, package pins that cannot install it, a cluster already
outside the policy, or a rollout (--limit) that would leave it so. Then an etcd snapshot;
then the apiservers one controller at a time, the schedulers and controller-managers one
controller at a time, and the nodes one at a time (cordon, drain, kubelet and kube-proxy,
Ready, uncordon), each gated on health: the first gate that fails stops the rollout (exit 1)
and a re-run finishes it. Meanwhile each node's load balancer is asked /readyz every
--probe-interval seconds, and each one's availability is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult
from rich.console import Console

from kubenorn import cli, skew
from kubenorn.availability import INTERVAL, Prober, probing
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.text import for_console
from kubenorn.upgrade_plan import PHASES, nodes_to_upgrade, plan, running
from runbooks.deploy import print_diffs, say
from runbooks.etcd_backup import BackupFailed, take_snapshot
from tasks import host_state
from tasks.drain import DRAIN_TIMEOUT, cordon_node, drain_node, gather_marked_nodes, uncordon_node
from tasks.facts import gather_facts
from tasks.kube_verify import wait_nodes_ready
from tasks.lb_probe import endpoint_checks
from tasks.upgrade import COMPANIONS, ensure_components_upgraded
from tasks.versions import gather_versions

PROBE_PATH = "/readyz"


def upgrade(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "", dry_run=True)
    parser.add_argument("--yes", action="store_true", help="really restart every component")
    parser.add_argument(
        "--drain-timeout",
        type=int,
        default=DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"how long kubectl drain may take per node (default {DRAIN_TIMEOUT})",
    )
    parser.add_argument(
        "--probe-interval",
        type=float,
        default=INTERVAL,
        metavar="SECONDS",
        help=f"ask each node's load balancer every SECONDS (default {INTERVAL}; 0: not at all)",
    )
    parser.add_argument(
        "--dest", type=Path, help="where the etcd snapshot goes (default: INVENTORY/.backups)"
    )
    args = parser.parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("upgrade", args.retry_failed)
    if not (args.yes or args.dry_run):
        raise cli.UsageError("upgrade restarts every component: add --yes")
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    destination = None
    if not args.dry_run:
        destination = (args.dest or cluster.inventory_dir / ".backups").resolve()
        cli.output_dir(destination, "--dest")
    with exclusive("upgrade", cluster.inventory_dir):
        return upgrade_locked(args, argv, cluster, destination)


def pinned(run: Run, cluster: Cluster) -> list[str]:
    """The Kubernetes package pins of the inventory's controllers and nodes."""
    specs: list[str] = []
    for hosts, role in ((cluster.controllers, "controller"), (cluster.nodes, "node")):
        if hosts:
            specs += run.nr.inventory.hosts[hosts[0].name]["kubernetes"]["packages"][role]
    return specs


def judge_skew(
    run: Run, cluster: Cluster, answers: AggregatedResult, controllers: list[str], nodes: list[str]
) -> skew.Versions:
    """What every host runs, from the versions step's `answers`; UsageError (the run closed)
    when the policy refuses the rollout of `controllers` and `nodes` to the inventory's version."""
    target = cluster.kubernetes.version
    versions, unreadable = running(answers)
    names = (*CONTROL_PLANE, *WORKER, *(c for cs in COMPANIONS.values() for c in cs))
    refusals = [
        *unreadable,
        *skew.refusals(versions, target, skew.rollout(controllers, nodes)),
        *skew.pin_problems(pinned(run, cluster), target, names),
    ]
    if refusals:
        run.close(cli.EXIT_UNKNOWN)
        raise cli.UsageError(f"upgrade to {target} refused:\n  " + "\n  ".join(refusals))
    return versions


def upgrade_locked(
    args: argparse.Namespace, argv: list[str], cluster: Cluster, destination: Path | None
) -> int:
    console = make_console()
    # Every host is asked its versions whatever --limit keeps: the policy is cluster-wide.
    run = cli.new_run(argparse.Namespace(**{**vars(args), "limit": []}), "upgrade", argv)
    selected = set(cli.limit(run.nr, args.limit).inventory.hosts) if args.limit else set(run.hosts)
    controllers = [h.name for h in cluster.controllers if h.name in selected]
    nodes = [h.name for h in cluster.nodes if h.name in selected]
    host_state.enable(run.nr)
    run.step("facts", gather_facts)
    answers = run.step("versions", gather_versions)
    if run.failed:
        console.print("cannot judge the version skew: not every host answered; nothing changed")
        return cli.finish(run, args, cli.EXIT_FAILED, console)
    versions = judge_skew(run, cluster, answers, controllers, nodes)
    marked = cordoned_by_upgrade(run, cluster, nodes)
    if marked is None:
        console.print("cannot read the nodes' cordons; nothing changed")
        return cli.finish(run, args, cli.EXIT_FAILED, console)
    todo = nodes_to_upgrade(nodes, versions, cluster.kubernetes.version, marked)
    if not args.quiet:
        for line in plan(cluster, versions, controllers, nodes, todo, destination):
            console.print(for_console(line))
    if destination is not None and (code := snapshot(run, cluster, destination, args, console)):
        return code
    code = roll_out_probed(run, cluster, args, controllers, todo, console)
    if args.dry_run and not args.quiet:
        print_diffs(run, console)
    run.steps[:] = list(dict.fromkeys(run.steps))  # each node ran the same steps
    return cli.finish(run, args, code, console)


def cordoned_by_upgrade(run: Run, cluster: Cluster, nodes: list[str]) -> list[str] | None:
    """The nodes an earlier upgrade left cordoned (None: the first controller could not say)."""
    if not nodes:
        return []
    via = cluster.controllers[0].name
    marked = run.step("marked", gather_marked_nodes, only=cli.named(via), cluster=cluster)
    return None if run.failed else list(marked[via][0].result)


def roll_out_probed(
    run: Run,
    cluster: Cluster,
    args: argparse.Namespace,
    controllers: list[str],
    nodes: list[str],
    console: Console,
) -> int:
    """`roll_out`, every node's load balancer probed meanwhile (not under --dry-run)."""
    checks = {}
    if not args.dry_run and args.probe_interval > 0:
        checks = endpoint_checks(run.nr, cluster, [h.name for h in cluster.nodes], PROBE_PATH)
    with probing(checks, args.probe_interval or INTERVAL) as prober:
        code = roll_out(run, cluster, args, controllers, nodes, console)
    report(prober, args, console)
    return code


def snapshot(
    run: Run, cluster: Cluster, destination: Path, args: argparse.Namespace, console: Console
) -> int | None:
    """Take the etcd snapshot; an exit code when there is none (nothing has changed)."""
    try:
        path, member, status = take_snapshot(run, cluster, destination)
    except BackupFailed as error:
        why = f": {error}" if str(error) else ""
        console.print(for_console(f"no etcd snapshot{why}; nothing changed"))
        return cli.finish(run, args, cli.EXIT_FAILED, console)
    say(args, console)(f"etcd snapshot: {path} from {member}, revision {status.revision}")
    return None


def roll_out(
    run: Run,
    cluster: Cluster,
    args: argparse.Namespace,
    controllers: list[str],
    nodes: list[str],
    console: Console,
) -> int:
    """The control plane's phases, then node by node; stop at the first gate that fails."""
    for phase, components in PHASES:
        run.step(
            phase,
            ensure_components_upgraded,
            only=cli.named(*controllers),
            serial=True,
            cluster=cluster,
            components=components,
            dry_run=args.dry_run,
        )
        if run.failed:
            return stopped(console, f"{phase} at {', '.join(sorted(run.failed))}")
    for index, node in enumerate(nodes):
        upgrade_node(run, cluster, node, args)
        if run.failed:
            later = ", ".join(nodes[index + 1 :]) or "none"
            return stopped(console, f"node {node} (later nodes untouched: {later})")
    if not args.dry_run:
        say(args, console)(f"upgraded to Kubernetes {cluster.kubernetes.version}")
    return cli.EXIT_OK


def upgrade_node(run: Run, cluster: Cluster, node: str, args: argparse.Namespace) -> None:
    """One node: cordon, drain, upgrade, Ready, uncordon; each step only if the last passed."""
    via = cli.named(cluster.controllers[0].name)
    steps: list[tuple[str, Callable[..., Any], Callable[[Host], bool], dict[str, Any]]] = [
        ("cordon", cordon_node, via, {"node": node}),
        ("drain", drain_node, via, {"node": node, "timeout": args.drain_timeout}),
        ("node-upgrade", ensure_components_upgraded, cli.named(node), {"components": WORKER}),
        ("node-ready", wait_nodes_ready, via, {"nodes": [node]}),
        ("uncordon", uncordon_node, via, {"node": node}),
    ]
    for name, task, only, kwargs in steps:
        run.step(name, task, only=only, cluster=cluster, dry_run=args.dry_run, **kwargs)
        if run.failed:
            return


def stopped(console: Console, where: str) -> int:
    console.print(for_console(f"upgrade stopped: a gate failed in {where}; a re-run finishes it"))
    return cli.EXIT_FAILED


def report(prober: Prober, args: argparse.Namespace, console: Console) -> None:
    """Each endpoint's availability during the rollout."""
    entries = prober.report()
    if entries and not (args.quiet and all(entry.failures == 0 for entry in entries)):
        console.print("availability of the apiserver endpoint during the upgrade:")
        for entry in entries:
            console.print(for_console(f"  {entry.line()}"))


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(upgrade, argv)


if __name__ == "__main__":
    sys.exit(main())
