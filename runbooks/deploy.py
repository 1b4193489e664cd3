"""Deploy the cluster: `python -m runbooks.deploy -i INVENTORY [--limit ...] [--dry-run]`.

Order: PKI state, preflight, facts, hosts file, packages, certificates, etcd (configuration,
then a first start in parallel or a quorum-safe rolling restart). A host that fails goes no
further; exit 0 only when every targeted host succeeded.
"""

from __future__ import annotations

import sys
from typing import Any

from nornir.core.inventory import Host
from nornir.core.task import Result, Task
from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, ClusterError, load_cluster
from kubenorn.findings import print_findings, worst
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.pki.issue import init as pki_init
from kubenorn.preflight import preflight
from kubenorn.report import make_console
from kubenorn.run import Run
from tasks import etcd
from tasks.facts import gather_facts
from tasks.hosts_file import ensure_hosts_file
from tasks.packages import ensure_packages
from tasks.pki import ensure_certificates
from tasks.systemd import owe_restart


def role_packages(host: Host) -> list[str]:
    """The packages a host's roles need, from inventory data, each once, in order."""
    wanted: list[str] = []
    roles = {group.name for group in host.groups}
    if "etcd" in roles:
        wanted += host["etcd"]["packages"]
    return list(dict.fromkeys(wanted))


def ensure_role_packages(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure the packages of this host's roles are installed."""
    result = task.run(task=ensure_packages, packages=role_packages(task.host), dry_run=dry_run)
    return Result(host=task.host, changed=result.changed, diff=result[0].diff)


def ensure_etcd_member(
    task: Task, *, cluster: Cluster, certificates_changed: frozenset[str], dry_run: bool | None
) -> Result:
    """Ensure this member's etcd configuration; owe a restart if it or its certificates changed."""
    member = etcd.member_of(cluster, task.host.name)
    settings = task.host["etcd"]
    config = etcd.etcd_config(cluster, member, settings)
    result = task.run(
        task=etcd.ensure_etcd_config,
        config=config,
        config_file=settings["config_file"],
        dry_run=dry_run,
    )
    if task.host.name in certificates_changed:
        task.run(task=owe_restart, unit=etcd.UNIT, dry_run=dry_run)
    return Result(host=task.host, changed=result.changed, diff=result[0].diff)


def rollout_of(cluster: Cluster, host: Host, *, force: bool) -> etcd.EtcdRollout:
    return etcd.EtcdRollout(
        tls=etcd.client_tls(cluster, cluster.host(host.name)),
        endpoints=cluster.etcd.client_urls,
        snapshot_dir=host["etcd"]["snapshot_dir"],
        force=force,
    )


def start_etcd(task: Task, *, cluster: Cluster, force: bool, dry_run: bool | None) -> Result:
    """Start etcd in parallel when no member answers yet; otherwise hand over to the rollout."""
    rollout = rollout_of(cluster, task.host, force=force)
    if etcd.cluster_is_formed(task, rollout):
        return Result(host=task.host, changed=False, result="formed")
    return task.run(task=etcd.start_unformed, dry_run=dry_run)[0]


def restart_etcd(task: Task, *, cluster: Cluster, force: bool, dry_run: bool | None) -> Result:
    """Restart this member if it owes one, health-gated (run one member at a time)."""
    rollout = rollout_of(cluster, task.host, force=force)
    return task.run(task=etcd.restart_member, rollout=rollout, dry_run=dry_run)[0]


def wait_etcd(task: Task, *, cluster: Cluster, dry_run: bool | None) -> Result:
    """Wait for this member to be healthy with one agreed leader."""
    if not task.is_dry_run(dry_run):
        etcd.wait_healthy(task, rollout_of(cluster, task.host, force=False))
    return Result(host=task.host, changed=False)


def check_inputs(args: Any, console: Console) -> Cluster | None:
    """Issue missing PKI state and preflight; None (having said why) when deploy must not run."""
    inventory = args.inventory or default_inventory_dir()
    try:
        cluster = load_cluster(inventory)
    except ClusterError as error:
        console.print(f"[red]inventory {inventory} is not usable:[/]\n{error}")
        return None
    issued = [c for c in pki_init(cluster) if c.action != "kept"] if not args.dry_run else []
    if issued:
        console.print(f"PKI: {len(issued)} items issued or renewed in {cluster.pki.dir}")
    findings = preflight(inventory)
    print_findings(findings, console, title="preflight")
    return None if worst(findings) in ("CRITICAL", "UNKNOWN") else cluster


def deploy_etcd(run: Run, cluster: Cluster, certs: Any, *, force: bool, dry_run: bool) -> None:
    members = cli.in_group("etcd")
    changed_certs = frozenset(h for h, r in certs.items() if r.changed)
    run.step(
        "etcd-config",
        ensure_etcd_member,
        only=members,
        cluster=cluster,
        certificates_changed=changed_certs,
        dry_run=dry_run,
    )
    run.step("etcd-start", start_etcd, only=members, cluster=cluster, force=force, dry_run=dry_run)
    run.step("etcd-health", wait_etcd, only=members, cluster=cluster, dry_run=dry_run)
    run.step(
        "etcd-restart",
        restart_etcd,
        only=members,
        serial=True,
        cluster=cluster,
        force=force,
        dry_run=dry_run,
    )


def deploy(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "", dry_run=True)
    parser.add_argument(
        "--force",
        action="store_true",
        help="restart etcd members even when the cluster is not healthy",
    )
    args = parser.parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("deploy", args.retry_failed)
    console = make_console()
    cluster = check_inputs(args, console)
    if cluster is None:
        return cli.EXIT_UNKNOWN
    run = Run(cli.load(args), "deploy", argv=argv, dry_run=args.dry_run)
    run.step("facts", gather_facts)
    run.step("hosts", ensure_hosts_file, entries=cluster.host_entries(), dry_run=args.dry_run)
    run.step("packages", ensure_role_packages, dry_run=args.dry_run)
    certs = run.step("certificates", ensure_certificates, dry_run=args.dry_run)
    deploy_etcd(run, cluster, certs, force=args.force, dry_run=args.dry_run)
    if args.dry_run and not args.quiet:
        print_diffs(run, console)
    return cli.finish(run, args, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)


def print_diffs(run: Run, console: Console) -> None:
    """Under --dry-run: every change that would be made, host by host."""
    for record in run.records:
        if record.diff and "/" not in record.task:
            console.print(f"[bold]{record.host} {record.task}[/]")
            console.print(record.diff, markup=False, highlight=False, end="")


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(deploy, argv)


if __name__ == "__main__":
    sys.exit(main())
