"""Verify the cluster: `python -m runbooks.verify -i INVENTORY [--limit ...] [--quiet]`.

A monitoring plugin (Nagios, Icinga, Sensu): the first line of its output is the verdict with
performance data (`KUBENORN OK - 128 checks (128 OK) | duration=12.34s;; hosts=6;; ...`), then
the problems (every finding with --verbose); progress goes to stderr. --quiet prints nothing
when all is OK. When verify cannot run at all, that line is `KUBENORN UNKNOWN - could not run:
see the error on stderr`, and the error is there; when Ctrl-C stops it, `KUBENORN UNKNOWN -
interrupted: no verdict`. Exit codes: 0 OK, 1 WARNING (for example one etcd member of three
down, quorum kept), 2 CRITICAL (quorum lost), 3 UNKNOWN (could not verify), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult
from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, ClusterError, load_cluster
from kubenorn.findings import EXIT_CODES, Finding, print_finding_lines, worst
from kubenorn.lock import exclusive
from kubenorn.monitoring import could_not_run_line, interrupted_line, status_line
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from kubenorn.run import Run, RunInterrupted
from tasks import host_state
from tasks.components import check_drift
from tasks.etcd_verify import MemberView, judge_etcd, observe_etcd_member
from tasks.images import check_images, image_digests
from tasks.kube_verify import (
    ControllerView,
    check_worker,
    judge_control_plane,
    observe_control_plane,
)
from tasks.load_balancer import check_load_balancer, load_balanced
from tasks.pki import check_deployed_certificates
from tasks.pod_network import check_pod_routes
from tasks.runtime import check_runtime
from tasks.security import check_security
from tasks.smoke import (
    new_namespace,
    probe_from_node,
    probe_pods,
    remove_smoke_test,
    start_smoke_test,
)


def failure_cause(result: MultiResult) -> str:
    """The first line of why a host's task failed; its exception's type when it said nothing."""
    error = result[0].exception
    lines = str(error or "").strip().splitlines()
    if lines:
        return lines[0]
    return type(error).__name__ if error is not None else "failed without a cause"


def etcd_findings(
    cluster: Cluster, results: AggregatedResult, selected: set[str] | None = None
) -> list[Finding]:
    views: dict[str, MemberView] = {}
    for host, result in results.items():
        if result.failed:
            views[host] = MemberView(host, reachable=False, error=failure_cause(result))
        else:
            views[host] = result[0].result
    members = {m.host.name for m in cluster.etcd.members}
    return judge_etcd(cluster, {h: v for h, v in views.items() if h in members}, selected)


def control_plane_findings(
    cluster: Cluster, results: AggregatedResult, selected: set[str] | None = None
) -> list[Finding]:
    """The controllers' views judged together; UNKNOWN for a controller that could not look."""
    views: list[ControllerView] = []
    unknown: list[Finding] = []
    for host, result in results.items():
        if result.failed:
            detail = f"could not check: {failure_cause(result)}"
            unknown.append(Finding("control-plane", host, "UNKNOWN", detail))
        else:
            views.append(result[0].result)
    return unknown + judge_control_plane(cluster, views, selected)


def step_findings(results: AggregatedResult, check: str) -> list[Finding]:
    """The findings each host's task returned; UNKNOWN for a host where it could not run."""
    findings: list[Finding] = []
    for host, result in results.items():
        if result.failed:
            detail = f"could not check: {failure_cause(result)}"
            findings.append(Finding(check, host, "UNKNOWN", detail))
        else:
            findings += result[0].result
    return findings


def verify(argv: list[str]) -> int:
    """Verify from the command line; when it cannot run at all, or Ctrl-C stops it, an UNKNOWN
    verdict line all the same."""
    try:
        return verify_command(argv)
    except SystemExit as stop:  # argparse: --help (0), or a usage error (3)
        if stop.code == EXIT_CODES["UNKNOWN"]:
            print(could_not_run_line())
        raise
    except cli.COULD_NOT_RUN:
        print(could_not_run_line())
        raise
    except (RunInterrupted, KeyboardInterrupt):
        print(interrupted_line())
        raise


def verify_command(argv: list[str]) -> int:
    """The options parsed, the inventory loaded, then `verify_cluster`."""
    parser = cli.parser(__doc__ or "")
    parser.add_argument(
        "--no-smoke-test",
        dest="smoke_test",
        action="store_false",
        help="skip the workload smoke test (pods, pod network, a Service, DNS), e.g. from cron",
    )
    args = parser.parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("verify", args.retry_failed)
    inventory = (args.inventory or default_inventory_dir()).resolve()
    try:
        cluster = load_cluster(inventory)
    except ClusterError as error:
        cli.error_message(f"inventory {inventory} is not usable (UNKNOWN):\n{error}")
        print(could_not_run_line())
        return EXIT_CODES["UNKNOWN"]
    options = cli.Options.parsed(args, argv)
    return verify_cluster(cluster, options, make_console(), smoke_test=args.smoke_test).exit_code


def verify_cluster(
    cluster: Cluster, options: cli.Options, console: Console, *, smoke_test: bool = True
) -> Run:
    """The closed run that verified `cluster` under its lock, its findings kept with it; the
    verdict line and the problems printed (nothing under quiet when all is OK)."""
    with exclusive("verify", cluster.inventory_dir):
        return verify_locked(cluster, options, console, smoke_test=smoke_test)


def workload_findings(
    run: Run,
    cluster: Cluster,
    controllers: AggregatedResult,
    digests: dict[str, str],
    unhealthy: set[str],
    *,
    smoke_test: bool,
    limited: bool,
) -> list[Finding]:
    """Where the inventory has them: pod routes, loaded images, and the smoke test, the last
    two on the nodes not already found failing."""
    findings: list[Finding] = []
    if any(node.pod_cidr for node in cluster.nodes):
        routes = run.step("pod-routes", check_pod_routes, cluster=cluster)
        findings += step_findings(routes, "pod-routes")
    healthy = [node.name for node in cluster.nodes if node.name not in unhealthy]
    if digests:
        images = run.step(
            "images", check_images, only=lambda host: host.name in healthy, digests=digests
        )
        findings += step_findings(images, "images")
    if smoke_test and cluster.kubernetes.smoke_test is not None:
        note = "skipped: the node is failing already (its other findings say how)"
        findings += [Finding("smoke-test", node, "OK", note) for node in sorted(unhealthy)]
        findings += run_smoke_test(run, cluster, controllers, healthy, limited=limited)
    return findings


def api_answered(result: MultiResult) -> bool:
    """Whether a controller's view came through its own apiserver (kubectl goes there)."""
    return not result.failed and not result[0].result.api_error


def run_smoke_test(
    run: Run, cluster: Cluster, controllers: AggregatedResult, nodes: list[str], *, limited: bool
) -> list[Finding]:
    """The workload smoke test, driven from the first controller that could look; its
    namespace removed however it ends."""
    if limited:
        note = "skipped: --limit (the smoke test puts a pod on every node)"
        return [Finding("smoke-test", "cluster", "OK", note)]
    if not nodes:
        return [Finding("smoke-test", "cluster", "OK", "skipped: no healthy node to run it on")]
    driver = next((host for host, result in controllers.items() if api_answered(result)), None)
    if driver is None:
        return [Finding("smoke-test", "cluster", "UNKNOWN", "no apiserver to run it through")]
    namespace = new_namespace()
    on_driver: Callable[[Host], bool] = lambda host: host.name == driver  # noqa: E731
    try:
        started = run.step(
            "smoke-pods",
            start_smoke_test,
            only=on_driver,
            cluster=cluster,
            namespace=namespace,
            nodes=nodes,
        )
        if started.failed:
            return step_findings(started, "smoke-test")
        setup = started[driver][0].result
        probed = run.step("smoke-probe", probe_pods, only=on_driver, cluster=cluster, setup=setup)
        from_nodes = run.step(
            "smoke-service",
            probe_from_node,
            only=lambda host: host.name in nodes,
            cluster=cluster,
            setup=setup,
        )
        return (
            setup.findings
            + step_findings(probed, "smoke-test")
            + step_findings(from_nodes, "smoke-service")
        )
    finally:
        run.nr.filter(name=driver).run(task=remove_smoke_test, cluster=cluster, namespace=namespace)


def verify_locked(
    cluster: Cluster, options: cli.Options, console: Console, *, smoke_test: bool
) -> Run:
    digests = image_digests(cluster)
    # Progress on stderr: a monitoring plugin's first line on stdout is its verdict.
    run = cli.new_run(options, "verify", progress=make_console(stderr=True))
    host_state.enable(run.nr)  # each host read in one survey, judged here
    etcd = run.step("etcd", observe_etcd_member, only=cli.in_group("etcd"), cluster=cluster)
    certs = run.step("certificates", check_deployed_certificates)
    runtime = run.step("runtime", check_runtime, only=cli.in_group("nodes"))
    balancer = run.step("load-balancer", check_load_balancer, only=load_balanced)
    controllers = run.step(
        "control-plane", observe_control_plane, only=cli.in_group("controllers"), cluster=cluster
    )
    workers = run.step("workers", check_worker, only=cli.in_group("nodes"), cluster=cluster)
    drift = run.step("drift", check_drift, cluster=cluster)
    # The running components against the profile's CIS Benchmark table (README: Security).
    security = run.step("security", check_security, cluster=cluster)
    # --limit (and --retry-failed, which limits to the failed hosts): judge only those.
    selected = set(run.hosts) if options.limit else None
    findings = etcd_findings(cluster, etcd, selected) + step_findings(certs, "certificates")
    findings += step_findings(runtime, "runtime") + step_findings(balancer, "load-balancer")
    findings += control_plane_findings(cluster, controllers, selected)
    findings += step_findings(workers, "workers")
    findings += step_findings(drift, "drift")
    # A node already found failing (runtime, kubelet, not Ready) gets no image or smoke pod:
    # one cause, named once, and the smoke test judges the healthy rest.
    nodes = {node.name for node in cluster.nodes}
    unhealthy = {f.host for f in findings if f.host in nodes and f.status != "OK"}
    findings += workload_findings(
        run,
        cluster,
        controllers,
        digests,
        unhealthy,
        smoke_test=smoke_test,
        limited=bool(options.limit),
    )
    findings += step_findings(security, "security")
    run.findings = [f.as_dict() for f in findings]
    code = EXIT_CODES[worst(findings)]
    if not (options.quiet and code == 0):
        line = status_line(
            findings, duration=run.elapsed(), hosts=len(run.hosts), steps=run.step_seconds
        )
        console.print(line, markup=False, soft_wrap=True)
        print_finding_lines(findings, console, verbose=options.verbose)
    # Findings say it all; the hosts x steps table only when asked to be verbose.
    cli.finish(run, options, code, console, summary=options.verbose)
    return run


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(verify, argv)


if __name__ == "__main__":
    sys.exit(main())
