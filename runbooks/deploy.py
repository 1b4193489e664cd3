"""Deploy the cluster: `python -m runbooks.deploy -i INVENTORY [--limit ...] [--dry-run]`.

Order: PKI state, preflight, facts, hosts file, packages, certificates, etcd (configuration,
then a first start in parallel or a quorum-safe rolling restart), the nodes' container runtime
(and CNI configuration) and load balancer, the control plane (configured in parallel, then
started or restarted one controller at a time, each healthy before the next), the workers
(kubelet, kube-proxy). A host that fails goes no further; exit 0 only when every targeted host
succeeded. What the facts show that works but should change (a node on cgroup v1 where the
kubelet refuses it by default) is printed as WARNING findings and kept with the run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, ClusterError, load_cluster
from kubenorn.findings import Finding, print_findings, problems, worst
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.pki.rehearsal import deploy_pki
from kubenorn.preflight import preflight
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.text import for_console
from runbooks.pki import finish_encryption
from tasks import host_state
from tasks.addons import ensure_dns_addon
from tasks.components import (
    ensure_etcd_member,
    ensure_role_packages,
    restart_etcd,
    start_etcd,
    wait_etcd,
)
from tasks.etcd_membership import check_founding_whole, probe_etcd
from tasks.facts import gather_facts
from tasks.hosts_file import ensure_hosts_file
from tasks.images import ensure_images, image_digests
from tasks.kube_units import cgroup_warnings, ensure_components_config, start_components
from tasks.kube_verify import wait_nodes_ready
from tasks.load_balancer import ensure_load_balancer, load_balanced
from tasks.pki import PKI_DIR_SETTING, ensure_certificates, trust_changed
from tasks.pod_network import ensure_pod_routes
from tasks.runtime import ensure_runtime


class PreflightFailed(cli.UsageError):
    """Preflight found what stops the deploy (its findings printed): no host was touched."""

    def __init__(self, findings: list[Finding]) -> None:
        lines = [f"{f.status} {f.host} {f.check}: {f.detail}" for f in problems(findings)]
        super().__init__("\n".join(["preflight stopped the deploy:", *lines]))


def check_preflight(cluster: Cluster, options: cli.Options, console: Console) -> None:
    """Preflight on the inventory and the PKI the deploy will use; PreflightFailed to stop."""
    findings = preflight(cluster.inventory_dir, pki_dir=cluster.pki.dir)
    if not (options.quiet and worst(findings) == "OK"):
        print_findings(findings, console, title="preflight")
    if worst(findings) in ("CRITICAL", "UNKNOWN"):
        raise PreflightFailed(findings)


def deploy_etcd(run: Run, cluster: Cluster, certs: Any, *, force: bool, dry_run: bool) -> None:
    members = cli.in_group("etcd")
    changed_certs = frozenset(h for h, r in certs.items() if r.changed)
    probes = run.step("etcd-probe", probe_etcd, only=members, cluster=cluster)
    healthy = frozenset().union(*(r[0].result for r in probes.values() if not r.failed))
    formed = bool(healthy)
    if not formed:
        run.step(
            "etcd-founding",
            check_founding_whole,
            only=members,
            cluster=cluster,
            in_run=frozenset(run.hosts),
        )
    config: dict[str, Any] = {
        "cluster": cluster,
        "certificates_changed": changed_certs,
        "dry_run": dry_run,
    }
    run.step("etcd-config", ensure_etcd_member, only=members, formed=formed, **config)
    # Formed: a member that must join does so alone (etcd takes one learner at a time).
    run.step(
        "etcd-start",
        start_etcd,
        only=members,
        serial=formed,
        cluster=cluster,
        healthy=healthy,
        dry_run=dry_run,
    )
    run.step("etcd-health", wait_etcd, only=members, cluster=cluster, dry_run=dry_run)
    if not formed and not dry_run:  # from now on a member that lost its data joins, never founds
        run.step("etcd-formed", ensure_etcd_member, only=members, formed=True, **config)
    run.step(
        "etcd-restart",
        restart_etcd,
        only=members,
        serial=True,
        cluster=cluster,
        force=force,
        dry_run=dry_run,
    )


def deploy_components(
    run: Run, cluster: Cluster, certs: Any, *, role: str, serial: bool, dry_run: bool
) -> None:
    """Configure a role's components in parallel, then start them (`serial`: host by host)."""
    components = CONTROL_PLANE if role == "controllers" else WORKER
    hosts = cli.in_group(role)
    run.step(
        f"{role}-config",
        ensure_components_config,
        only=hosts,
        cluster=cluster,
        components=components,
        certificates_changed=frozenset(h for h, r in certs.items() if r.changed),
        dry_run=dry_run,
    )
    run.step(
        role,
        start_components,
        only=hosts,
        serial=serial,
        cluster=cluster,
        components=components,
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
    inventory = args.inventory or default_inventory_dir()
    try:
        cluster = load_cluster(inventory)
    except ClusterError as error:
        cli.error_message(f"inventory {inventory} is not usable:\n{error}")
        return cli.EXIT_UNKNOWN
    options = cli.Options.parsed(args, argv)
    try:
        return deploy_cluster(cluster, options, make_console(), force=args.force).exit_code
    except PreflightFailed:  # its findings, printed, say why
        return cli.EXIT_UNKNOWN


def deploy_cluster(
    cluster: Cluster, options: cli.Options, console: Console, *, force: bool = False
) -> Run:
    """The closed run that deployed `cluster` to the selected hosts under its lock (changing
    nothing under dry_run); PreflightFailed, before any host, when preflight finds it cannot."""
    images = image_digests(cluster)  # each archive read once, before any host
    with (
        exclusive("deploy", cluster.inventory_dir),
        deploy_pki(cluster, dry_run=options.dry_run) as (with_pki, issued),
    ):
        if issued:
            done = "would be issued or renewed" if options.dry_run else "issued or renewed"
            console.print(f"PKI: {len(issued)} items {done} in {cluster.pki.dir}")
        check_preflight(with_pki, options, console)
        return deploy_run(with_pki, options, console, images, force=force)


TRUST_CHANGED = (
    "the cluster CA or the service-account key changed: deploy restarts CoreDNS; restart your "
    "own pods that call the API (they trust the old CA and hold tokens of the old key)"
)


def deploy_run(
    cluster: Cluster, options: cli.Options, console: Console, images: dict[str, str], *, force: bool
) -> Run:
    """Every step of the deploy, in order, on the hosts the options select; the run closed."""
    dry_run = options.dry_run
    run = cli.new_run(options, "deploy", progress=console)
    host_state.enable(run.nr)  # each host read in one survey, kept true by the writes
    run.nr.config.user_defined[PKI_DIR_SETTING] = str(cluster.pki.dir)
    facts = run.step("facts", gather_facts)
    warnings = cgroup_warnings(
        cluster, {host: r[0].result.cgroup_version for host, r in facts.items() if not r.failed}
    )
    run.findings = [f.as_dict() for f in warnings]
    run.step("hosts", ensure_hosts_file, entries=cluster.host_entries(), dry_run=dry_run)
    run.step("packages", ensure_role_packages, dry_run=dry_run)
    if any(node.pod_cidr for node in cluster.nodes):
        run.step("pod-network", ensure_pod_routes, cluster=cluster, dry_run=dry_run)
    certs = run.step("certificates", ensure_certificates, dry_run=dry_run)
    if trust_changed(certs):
        warnings.append(Finding("pki", "cluster", "WARNING", TRUST_CHANGED))
        run.findings = [f.as_dict() for f in warnings]
    deploy_etcd(run, cluster, certs, force=force, dry_run=dry_run)
    run.step("runtime", ensure_runtime, only=cli.in_group("nodes"), dry_run=dry_run)
    if images:
        run.step(
            "images",
            ensure_images,
            only=cli.in_group("nodes"),
            images=cluster.kubernetes.images,
            digests=images,
            dry_run=dry_run,
        )
    run.step(
        "load-balancer",
        ensure_load_balancer,
        only=load_balanced,
        cluster=cluster,
        dry_run=dry_run,
    )
    # The control plane one controller at a time: the others keep serving meanwhile.
    deploy_components(run, cluster, certs, role="controllers", serial=True, dry_run=dry_run)
    # Secrets encryption turned on (or a key rotation finished): the same rolling restarts.
    for line in finish_encryption(run, cluster, say(options, console), dry_run=dry_run):
        # A rotation that could not finish is said even under --quiet (its host failed too).
        (console.print if line.startswith(("could not", "did not")) else say(options, console))(
            for_console(line)
        )
    deploy_components(run, cluster, certs, role="nodes", serial=False, dry_run=dry_run)
    first = cluster.controllers[0].name  # add-ons and node readiness go through one apiserver
    if cluster.kubernetes.dns is not None:
        run.step(
            "dns",
            ensure_dns_addon,
            only=cli.named(first),
            cluster=cluster,
            trust_changed=trust_changed(certs),
            dry_run=dry_run,
        )
    # Done means every node it deployed runs workloads: Ready, not just its kubelet started.
    deployed = [h.name for h in cluster.nodes if h.name in run.hosts and h.name not in run.failed]
    run.step(
        "nodes-ready",
        wait_nodes_ready,
        only=cli.named(first),
        cluster=cluster,
        nodes=deployed,
        dry_run=dry_run,
    )
    if dry_run and not options.quiet:
        print_diffs(run, console)
    if warnings:  # even under --quiet: something to act on, though the deploy went on
        print_findings(warnings, console, title="deploy warnings")
    cli.finish(run, options, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)
    return run


def say(options: cli.Options, console: Console) -> Callable[[str], None]:
    """Progress lines, unless quiet."""
    return (lambda text: None) if options.quiet else (lambda text: console.print(for_console(text)))


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
