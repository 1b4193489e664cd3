"""Upgrade the cluster: `python -m runbooks.upgrade -i INVENTORY --yes [--dry-run] [--limit ...]`.

Upgrades every component to the inventory's cluster.kubernetes_version. First asks each host
which version each component runs (the running process's binary) and refuses (exit 3) what
the version-skew policy forbids: a downgrade, a control-plane component skipping a minor
release, a version no profile holds, package pins that cannot install it, a cluster already
outside the policy, a rollout (--limit) that would leave it so, a node to upgrade that the API
does not know, or a component package held (apt-mark hold) at another version. Then an etcd
snapshot; then the apiservers one controller at a time, the schedulers and controller-managers one
controller at a time, and the nodes one at a time (cordon, drain, kubelet and kube-proxy,
Ready, uncordon), each gated on health: the first gate that fails stops the rollout (exit 1)
and a re-run finishes it. Meanwhile each node's load balancer is asked /version (a request
any client may make; /readyz would count an apiserver that drains, still serving, as down)
every --probe-interval seconds, and each one's availability is printed at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
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
from kubenorn.skew import package_name
from kubenorn.text import for_console
from kubenorn.upgrade_plan import PHASES, nodes_to_upgrade, plan, running
from runbooks.deploy import print_diffs, say
from runbooks.etcd_backup import BackupFailed, take_snapshot
from tasks import host_state
from tasks.drain import DRAIN_TIMEOUT, cordon_node, drain_node, gather_node_marks, uncordon_node
from tasks.facts import gather_facts
from tasks.kube_verify import wait_nodes_ready
from tasks.lb_probe import endpoint_checks
from tasks.upgrade import COMPANIONS, ensure_components_upgraded, gather_held_packages
from tasks.versions import gather_versions

PROBE_PATH = "/version"


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
    run = upgrade_cluster(
        cluster,
        cli.Options.parsed(args, argv),
        make_console(),
        dest=args.dest,
        drain_timeout=args.drain_timeout,
        probe_interval=args.probe_interval,
    )
    return run.exit_code


def upgrade_cluster(
    cluster: Cluster,
    options: cli.Options,
    console: Console,
    *,
    dest: Path | None = None,
    drain_timeout: int = DRAIN_TIMEOUT,
    probe_interval: float = INTERVAL,
) -> Run:
    """The closed run that upgraded the selected hosts of `cluster` to its inventory's version
    under its lock, after an etcd snapshot into `dest` (default INVENTORY/.backups); under
    dry_run the plan and the diffs, nothing changed. UsageError when the policy refuses it."""
    destination = None
    if not options.dry_run:
        destination = (dest or cluster.inventory_dir / ".backups").resolve()
        cli.output_dir(destination, "--dest")
    with exclusive("upgrade", cluster.inventory_dir):
        return upgrade_locked(cluster, options, console, destination, drain_timeout, probe_interval)


def pinned(run: Run, cluster: Cluster) -> list[str]:
    """The Kubernetes package pins of the inventory's controllers and nodes, every host's."""
    specs: list[str] = []
    for hosts, role in ((cluster.controllers, "controller"), (cluster.nodes, "node")):
        for host in hosts:
            specs += run.nr.inventory.hosts[host.name]["kubernetes"]["packages"][role]
    return list(dict.fromkeys(specs))


def held_problems(held: AggregatedResult, hosts: list[str]) -> list[str]:
    """The held packages, from the held step's answers, that the rollout of `hosts` would have
    to change: apt refuses, so the refusal comes before the first node is drained."""
    return [
        f"{host}: package {package_name(spec)} is held (apt-mark hold) at another version than "
        f"{spec}: run `apt-mark unhold {package_name(spec)}` there first"
        for host in dict.fromkeys(hosts)
        for spec in held[host][0].result
    ]


def refuse(run: Run, cluster: Cluster, refusals: list[str]) -> None:
    """UsageError naming every refusal, the run closed; nothing when there is none."""
    if refusals:
        run.close(cli.EXIT_UNKNOWN)
        target = cluster.kubernetes.version
        raise cli.UsageError(f"upgrade to {target} refused:\n  " + "\n  ".join(refusals))


def judge_skew(
    run: Run, cluster: Cluster, answers: AggregatedResult, controllers: list[str], nodes: list[str]
) -> skew.Versions:
    """What every host runs, from the versions step's `answers`; UsageError (the run closed)
    when the policy refuses the rollout of `controllers` and `nodes` to the inventory's version."""
    target = cluster.kubernetes.version
    versions, unreadable = running(answers)
    names = (*CONTROL_PLANE, *WORKER, *(c for cs in COMPANIONS.values() for c in cs))
    refuse(
        run,
        cluster,
        [
            *unreadable,
            *skew.refusals(versions, target, skew.rollout(controllers, nodes)),
            *skew.pin_problems(pinned(run, cluster), target, names),
        ],
    )
    return versions


def upgrade_locked(
    cluster: Cluster,
    options: cli.Options,
    console: Console,
    destination: Path | None,
    drain_timeout: int,
    probe_interval: float,
) -> Run:
    # Every host is asked its versions whatever --limit keeps: the policy is cluster-wide.
    run = cli.new_run(replace(options, limit=()), "upgrade", progress=console)
    limit = options.limit
    selected = set(cli.limit(run.nr, limit).inventory.hosts) if limit else set(run.hosts)
    controllers = [h.name for h in cluster.controllers if h.name in selected]
    nodes = [h.name for h in cluster.nodes if h.name in selected]
    host_state.enable(run.nr)
    run.step("facts", gather_facts)
    answers = run.step("versions", gather_versions)
    held = run.step("held", gather_held_packages)
    if run.failed:
        console.print("cannot judge the version skew: not every host answered; nothing changed")
        return finished(run, options, cli.EXIT_FAILED, console)
    versions = judge_skew(run, cluster, answers, controllers, nodes)
    marks = node_marks(run, cluster, nodes)
    if marks is None:
        console.print("cannot read the nodes' cordons; nothing changed")
        return finished(run, options, cli.EXIT_FAILED, console)
    marked = [node for node, mark in marks.items() if mark == "upgrade"]
    todo = nodes_to_upgrade(nodes, versions, cluster.kubernetes.version, marked)
    refuse(run, cluster, [*unregistered(todo, marks), *held_problems(held, [*controllers, *todo])])
    if not options.quiet:
        for line in plan(cluster, versions, controllers, nodes, todo, destination):
            console.print(for_console(line))
    if destination is not None and not snapshot(run, cluster, destination, options, console):
        return finished(run, options, cli.EXIT_FAILED, console)
    code = roll_out_probed(
        run, cluster, options, controllers, todo, console, drain_timeout, probe_interval
    )
    if options.dry_run and not options.quiet:
        print_diffs(run, console)
    run.steps[:] = list(dict.fromkeys(run.steps))  # each node ran the same steps
    return finished(run, options, code, console)


def finished(run: Run, options: cli.Options, code: int, console: Console) -> Run:
    """`run`, closed with `code` and reported."""
    cli.finish(run, options, code, console)
    return run


def node_marks(run: Run, cluster: Cluster, nodes: list[str]) -> dict[str, str | None] | None:
    """Each registered node's cordon mark (None: the first controller could not say)."""
    if not nodes:
        return {}
    via = cluster.controllers[0].name
    marks = run.step("marks", gather_node_marks, only=cli.named(via), cluster=cluster)
    return None if run.failed else dict(marks[via][0].result)


def unregistered(nodes: list[str], marks: dict[str, str | None]) -> list[str]:
    """Those of `nodes` the API does not know: their cordon would fail after the control plane
    was upgraded (`node remove` deletes the Node and leaves the host in the inventory)."""
    return [
        f"{node} is not a registered node: deploy it first (deploy --limit {node}), or delete it "
        "from the inventory if `node remove` took it away"
        for node in nodes
        if node not in marks
    ]


def roll_out_probed(
    run: Run,
    cluster: Cluster,
    options: cli.Options,
    controllers: list[str],
    nodes: list[str],
    console: Console,
    drain_timeout: int,
    probe_interval: float,
) -> int:
    """`roll_out`, every node's load balancer probed meanwhile (not under dry_run)."""
    checks = {}
    if not options.dry_run and probe_interval > 0:
        checks = endpoint_checks(run.nr, cluster, [h.name for h in cluster.nodes], PROBE_PATH)
    with probing(checks, probe_interval or INTERVAL) as prober:
        code = roll_out(run, cluster, options, controllers, nodes, console, drain_timeout)
    report(prober, options, console)
    return code


def snapshot(
    run: Run, cluster: Cluster, destination: Path, options: cli.Options, console: Console
) -> bool:
    """Whether the etcd snapshot was taken (if not, having said why: nothing has changed)."""
    try:
        path, member, status = take_snapshot(run, cluster, destination)
    except BackupFailed as error:
        why = f": {error}" if str(error) else ""
        console.print(for_console(f"no etcd snapshot{why}; nothing changed"))
        return False
    say(options, console)(f"etcd snapshot: {path} from {member}, revision {status.revision}")
    return True


def roll_out(
    run: Run,
    cluster: Cluster,
    options: cli.Options,
    controllers: list[str],
    nodes: list[str],
    console: Console,
    drain_timeout: int,
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
            dry_run=options.dry_run,
        )
        if run.failed:
            return stopped(console, f"{phase} at {', '.join(sorted(run.failed))}")
    for index, node in enumerate(nodes):
        upgrade_node(run, cluster, node, dry_run=options.dry_run, drain_timeout=drain_timeout)
        if run.failed:
            later = ", ".join(nodes[index + 1 :]) or "none"
            return stopped(console, f"node {node} (later nodes untouched: {later})")
    if not options.dry_run:
        say(options, console)(f"upgraded to Kubernetes {cluster.kubernetes.version}")
    return cli.EXIT_OK


def upgrade_node(
    run: Run, cluster: Cluster, node: str, *, dry_run: bool, drain_timeout: int
) -> None:
    """One node: cordon, drain, upgrade, Ready, uncordon; each step only if the last passed."""
    via = cli.named(cluster.controllers[0].name)
    version = cluster.kubernetes.version
    steps: list[tuple[str, Callable[..., Any], Callable[[Host], bool], dict[str, Any]]] = [
        ("cordon", cordon_node, via, {"node": node}),
        ("drain", drain_node, via, {"node": node, "timeout": drain_timeout}),
        ("node-upgrade", ensure_components_upgraded, cli.named(node), {"components": WORKER}),
        ("node-ready", wait_nodes_ready, via, {"nodes": [node], "kubelet_version": version}),
        ("uncordon", uncordon_node, via, {"node": node}),
    ]
    for name, task, only, kwargs in steps:
        run.step(name, task, only=only, cluster=cluster, dry_run=dry_run, **kwargs)
        if run.failed:
            return


def stopped(console: Console, where: str) -> int:
    console.print(for_console(f"upgrade stopped: a gate failed in {where}; a re-run finishes it"))
    return cli.EXIT_FAILED


def report(prober: Prober, options: cli.Options, console: Console) -> None:
    """Each endpoint's availability during the rollout."""
    entries = prober.report()
    if entries and not (options.quiet and all(entry.failures == 0 for entry in entries)):
        console.print("availability of the apiserver endpoint during the upgrade:")
        for entry in entries:
            console.print(for_console(f"  {entry.line()}"))


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(upgrade, argv)


if __name__ == "__main__":
    sys.exit(main())
