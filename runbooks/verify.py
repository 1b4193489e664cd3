"""Verify the cluster: `python -m runbooks.verify -i INVENTORY [--limit ...] [--quiet]`.

Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING (for example one etcd
member of three down, quorum kept), 2 CRITICAL (quorum lost), 3 UNKNOWN (could not verify).
"""

from __future__ import annotations

import sys
from typing import Any

from nornir.core.task import AggregatedResult, MultiResult

from kubenorn import cli
from kubenorn.cluster import Cluster, ClusterError, load_cluster
from kubenorn.findings import EXIT_CODES, Finding, print_findings, worst
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from tasks.components import check_drift
from tasks.etcd_verify import MemberView, judge_etcd, observe_etcd_member
from tasks.kube_verify import (
    ControllerView,
    check_worker,
    judge_control_plane,
    observe_control_plane,
)
from tasks.load_balancer import check_load_balancer, load_balanced
from tasks.pki import check_deployed_certificates
from tasks.runtime import check_runtime


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
    parser = cli.parser(__doc__ or "")
    args = parser.parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("verify", args.retry_failed)
    inventory = (args.inventory or default_inventory_dir()).resolve()
    try:
        cluster = load_cluster(inventory)
    except ClusterError as error:
        cli.error_message(f"inventory {inventory} is not usable (UNKNOWN):\n{error}")
        return EXIT_CODES["UNKNOWN"]
    with exclusive("verify", inventory):
        return verify_locked(args, argv, cluster)


def verify_locked(args: Any, argv: list[str], cluster: Cluster) -> int:
    run = cli.new_run(args, "verify", argv)
    etcd = run.step("etcd", observe_etcd_member, only=cli.in_group("etcd"), cluster=cluster)
    certs = run.step("certificates", check_deployed_certificates)
    runtime = run.step("runtime", check_runtime, only=cli.in_group("nodes"))
    balancer = run.step("load-balancer", check_load_balancer, only=load_balanced)
    controllers = run.step(
        "control-plane", observe_control_plane, only=cli.in_group("controllers"), cluster=cluster
    )
    workers = run.step("workers", check_worker, only=cli.in_group("nodes"), cluster=cluster)
    drift = run.step("drift", check_drift, cluster=cluster)
    # --limit (and --retry-failed, which limits to the failed hosts): judge only those.
    selected = set(run.hosts) if args.limit else None
    findings = etcd_findings(cluster, etcd, selected) + step_findings(certs, "certificates")
    findings += step_findings(runtime, "runtime") + step_findings(balancer, "load-balancer")
    findings += control_plane_findings(cluster, controllers, selected)
    findings += step_findings(workers, "workers")
    findings += step_findings(drift, "drift")
    run.findings = [f.as_dict() for f in findings]
    code = EXIT_CODES[worst(findings)]
    console = make_console()
    if not (args.quiet and code == 0):
        print_findings(findings, console, title="verify", verbose=args.verbose)
    # Findings say it all; the hosts x steps table only when asked to be verbose.
    return cli.finish(run, args, code, console, summary=args.verbose)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(verify, argv)


if __name__ == "__main__":
    sys.exit(main())
