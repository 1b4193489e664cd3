"""Restore etcd from a snapshot: `python -m runbooks.etcd_restore -i INVENTORY SNAPSHOT --yes`.

Verifies the snapshot, uploads it to every member, stops the control plane where it runs (an
apiserver must not write, nor a leader renew, while the data changes under it), stops all
members, restores each with its own name and peer URL beside its data (every member from the
same snapshot, with one new cluster token), and only once every member holds its restored data
puts it in place on each (the original kept aside). Then it starts them, waits until the
cluster is healthy with one leader, and starts the control plane again one controller at a
time. Everything written after the snapshot is lost: --yes.

The restored revision is older than what every watcher has seen, and a watcher holding a
resourceVersion from the future misses every change until it lists again: kubelet, kube-proxy
and CoreDNS are restarted (your own controllers and operators need the same; the run says so).

Whatever stops it (a failing member, an error, Ctrl-C), every member is started again before
it exits, all on one side: on the restored data when every member has it in use, otherwise on
its original data, put back. A journal on the control machine (INVENTORY/.restore) lets a
re-run with the same snapshot finish what a run began; members already restored stay so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nornir.core.task import AggregatedResult

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import Finding, Status, print_problems
from kubenorn.interrupts import ctrl_c_deferred
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.records import failure_message
from kubenorn.report import make_console
from kubenorn.restore_journal import Journal, UnfinishedRestore, begin, save_journal
from kubenorn.run import Run, RunInterrupted
from kubenorn.snapshots import SnapshotInvalid, verify_snapshot
from tasks.addons import restart_dns_addon
from tasks.components import wait_etcd
from tasks.etcd_restore import (
    MemberState,
    clean_up,
    inspect_member,
    stage_member,
    start_etcd,
    stop_etcd,
    swap_member,
    unswap_member,
    upload_snapshot,
)
from tasks.kube_units import restart_components, start_components, stop_components
from tasks.kube_verify import wait_control_plane_healthy

LEADERS_TIMEOUT = 120.0


def restore(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "")
    parser.add_argument("snapshot", type=Path, help="a snapshot made by runbooks.etcd_backup")
    parser.add_argument("--yes", action="store_true", help="really replace the cluster's data")
    args = parser.parse_args(argv)
    if not args.yes:
        raise cli.UsageError("restore replaces every member's data: add --yes to proceed")
    try:
        verify_snapshot(args.snapshot)
    except SnapshotInvalid as error:
        raise cli.UsageError(str(error)) from None
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    with exclusive("etcd_restore", cluster.inventory_dir):
        return restore_locked(args, cli.Options.parsed(args, argv), cluster)


def restore_locked(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    console = make_console()
    run = cli.new_run(options, "etcd_restore", progress=console)
    left_out = [m.host.name for m in cluster.etcd.members if m.host.name not in run.hosts]
    if left_out:
        raise cli.UsageError(
            f"--limit leaves out etcd members {', '.join(left_out)}: every member restores"
        )
    try:
        journal, abandoned = begin(
            cluster.inventory_dir, args.snapshot.resolve(), cluster.name, run.info.run_id
        )
    except UnfinishedRestore as error:
        raise cli.UsageError(str(error)) from None
    if not args.quiet:
        doing = "starting" if journal.restore_id == run.info.run_id else "resuming"
        console.print(f"{doing} restore {journal.restore_id} ({journal.phase})")
    members = cli.in_group("etcd")
    run.step(
        "upload",
        upload_snapshot,
        only=members,
        snapshot=args.snapshot.resolve(),
        restore_id=journal.restore_id,
    )
    if run.failed:  # nothing stopped, nothing changed
        return cli.finish(run, options, cli.EXIT_FAILED, console)
    # Until the stop step says where it stopped the control plane, every controller may have.
    control_plane = {host.name for host in cluster.controllers}
    try:
        stopped = run.step(
            "stop-control-plane",
            stop_components,
            only=cli.in_group("controllers"),
            components=CONTROL_PLANE,
        )
        # Failed too: a stop that failed half way may have stopped some of the components.
        control_plane = {
            host for host, result in stopped.items() if result.changed or result.failed
        }
        if not run.failed:
            replace_data(run, cluster, journal)
    finally:
        with ctrl_c_deferred(
            console, "putting every member back first (each step is bounded by its timeouts)"
        ) as pressed:
            ok = settle(run, cluster, journal, control_plane)
        if not (args.quiet and ok):
            console.print("members:")
            print_problems(console, [Finding(**f) for f in run.findings])
        if pressed:
            raise RunInterrupted(run)
    if ok and abandoned is not None:  # an older restore never committed: its leftovers go
        run.step("clean-up-abandoned", clean_up, only=members, restore_id=abandoned.restore_id)
    return cli.finish(
        run, options, cli.EXIT_OK if ok and not run.failed else cli.EXIT_FAILED, console
    )


def replace_data(run: Run, cluster: Cluster, journal: Journal) -> None:
    """Stop every member, stage the restore on each, and only if all staged, swap each in."""
    members = cli.in_group("etcd")
    run.step("stop", stop_etcd, only=members)
    run.step(
        "stage",
        stage_member,
        only=members,
        cluster=cluster,
        restore_id=journal.restore_id,
        token=journal.token,
    )
    if run.failed:
        return  # every member still has its original data in use
    if journal.phase == "staging":
        journal.phase = "committed"
        save_journal(cluster.inventory_dir, journal)
    run.step("swap", swap_member, only=members, restore_id=journal.restore_id)


def settle(run: Run, cluster: Cluster, journal: Journal, control_plane: set[str]) -> bool:
    """Start every member on one side, start the control plane; True when the restore is done.

    Restored data when every member has it in use (the restore is finished, or only its start
    remains); otherwise every member's original data, put back: never some members on each,
    which would be two clusters, the larger of which would serve.
    """
    names = [m.host.name for m in cluster.etcd.members]
    states = inspect(run, "inspect", names, journal)
    forward = len(states) == len(names) and all(s.restored for s in states.values())
    if not forward:
        holding = [name for name, state in states.items() if state.aside]
        if holding:
            run.step(
                "roll-back",
                unswap_member,
                only=cli.named(*holding),
                even_failed=True,
                restore_id=journal.restore_id,
            )
            states = inspect(run, "inspect-after-roll-back", names, journal)
        if len(states) == len(names) and not any(s.aside for s in states.values()):
            journal.phase = "staging"  # nothing restored in use anywhere: not committed
            save_journal(cluster.inventory_dir, journal)
    side = [n for n, s in states.items() if (s.restored if forward else s.original)]
    started = run.step("start", start_etcd, only=cli.named(*side), even_failed=True)
    up = [name for name in side if name in started and not started[name].failed]
    health = run.step(
        "health", wait_etcd, only=cli.named(*up), even_failed=True, cluster=cluster, dry_run=False
    )
    findings = member_findings(names, states, started, health, forward, journal)
    run.step(
        "control-plane",
        start_components,
        only=cli.named(*sorted(control_plane)),
        serial=True,
        even_failed=True,
        cluster=cluster,
        components=CONTROL_PLANE,
        dry_run=False,
    )
    done = forward and all(f.ok for f in findings)
    if done and control_plane:
        # Leader leases restored from the snapshot are stale: wait for fresh elections.
        _, problems = wait_control_plane_healthy(run.nr, cluster, LEADERS_TIMEOUT)
        findings += problems
        done = not problems
    if done:
        journal.phase = "done"
        save_journal(cluster.inventory_dir, journal)
        run.step("clean-up", clean_up, only=cli.named(*names), restore_id=journal.restore_id)
        findings += restart_watchers(run, cluster)
    run.findings.extend(f.as_dict() for f in findings)
    return done


def restart_watchers(run: Run, cluster: Cluster) -> list[Finding]:
    """Restart what watches the API for the cluster (kubelet, kube-proxy, CoreDNS): their
    watches hold resourceVersions newer than the restored data's and would miss every change."""
    run.step(
        "restart-node-components",
        restart_components,
        only=cli.in_group("nodes"),
        cluster=cluster,
        components=WORKER,
        dry_run=False,
    )
    if cluster.kubernetes.dns is not None:
        first = cluster.controllers[0].name  # add-ons go through one apiserver
        run.step(
            "restart-dns",
            restart_dns_addon,
            only=cli.named(first),
            cluster=cluster,
            why="its watches are from before the restore",
            dry_run=False,
        )
    advice = (
        "kubelet, kube-proxy and CoreDNS were restarted to watch the restored data; restart "
        "your own controllers and operators too: a watch from before the restore misses changes"
    )
    return [Finding("etcd.restore", "cluster", "WARNING", advice)]


def inspect(run: Run, step: str, names: list[str], journal: Journal) -> dict[str, MemberState]:
    """Each reachable member's state; a member that cannot be inspected is left out."""
    results = run.step(
        step,
        inspect_member,
        only=cli.named(*names),
        even_failed=True,
        restore_id=journal.restore_id,
    )
    return {name: r[0].result for name, r in results.items() if not r.failed}


def member_findings(
    names: list[str],
    states: dict[str, MemberState],
    started: AggregatedResult,
    health: AggregatedResult,
    forward: bool,
    journal: Journal,
) -> list[Finding]:
    """Per member: which data it runs on, or why it was left stopped."""
    findings = []
    for name in names:
        status: Status
        state = states.get(name)
        if state is None:
            status, detail = "CRITICAL", "state unknown (unreachable?): not started"
        elif forward or state.original:
            data = f"restored data ({journal.snapshot})" if forward else "its original data"
            failed = next(
                (r for r in (started.get(name), health.get(name)) if r and r.failed), None
            )
            if failed is not None:
                status, detail = "CRITICAL", f"on {data}, not running healthy: "
                detail += failure_message(failed[0])
            elif forward:
                status, detail = "OK", f"running on {data}"
            else:
                status, detail = "WARNING", f"running on {data}: the restore did not take effect"
        else:
            status = "CRITICAL"
            detail = f"LEFT STOPPED: {state.describe()}; re-run the restore to finish it"
        findings.append(Finding("etcd.restore", name, status, detail))
    return findings


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(restore, argv)


if __name__ == "__main__":
    sys.exit(main())
