"""Failure drills: `python -m runbooks.drill -i INVENTORY SCENARIO`.

etcd-leader         SIGKILL the etcd leader under continuous writes; print the time to a new
                    leader and to the first write after the kill; restart the member, wait for
                    full health, and check that every acknowledged write is readable.
scheduler,          SIGKILL the component's leader (systemd restarts it, as after a crash);
controller-manager  print the time until another instance holds the lease, then wait until
                    every controller runs it healthy again under one live leader.
apiserver           stop one apiserver (--host, default the first controller) while every node
                    probes the apiserver through its load balancer; hold it down, start it
                    again; print the errors the nodes saw and the time back to full health.

Each exits 0 only when the drill's promise held and the cluster is healthy again. Every
destructive step has its undo (start the unit again, wait until healthy) registered before it
runs; a failed check, an error or Ctrl-C still runs it, and the report says what was undone and
whether it worked (CRITICAL naming host and unit when it did not).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time

from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.etcd_client import Endpoint, EtcdUnavailable, endpoints
from kubenorn.etcd_drill import Writer, leader_of, lost_writes, new_leader_elected, wait_for
from kubenorn.findings import print_problems
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.profiles import unit_of
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.text import for_console
from kubenorn.undo import Undos
from tasks.etcd import UNIT as ETCD_UNIT
from tasks.etcd import kill_member
from tasks.kube_drill import (
    kill_component,
    probe_load_balancer,
    read_leader,
    restart_component,
    revive_etcd,
    stop_component,
)
from tasks.kube_verify import LeaderRecord, wait_control_plane_healthy

ELECTION_TIMEOUT = 30.0
RECOVERY_TIMEOUT = 90.0
APISERVER_DOWN = 8  # seconds one apiserver stays down: haproxy marks it down within ~4 s
UNDO_ETCD = f"drop the drill's Restart=no, start {ETCD_UNIT}, wait until healthy under one leader"


def etcd_leader(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    console = make_console()
    members = endpoints(cluster)
    old_leader, by_member = leader_of(members)
    if old_leader not in by_member:
        console.print("[red]no etcd leader to kill: verify the cluster first[/]")
        return cli.EXIT_FAILED
    victim_url = by_member[old_leader].url
    victim = next(m.host.name for m in cluster.etcd.members if m.client_url == victim_url)
    survivors = [e for e in members if e.url != victim_url]
    prefix = f"/kubenorn-drill/{int(time.time())}/"
    writer = Writer(survivors + [by_member[old_leader]], prefix)
    run = cli.new_run(options, "drill", progress=console)
    console.print(f"leader: {victim} ({victim_url}); writing under {prefix}")
    try:
        with Undos(run, console) as undos:
            # Registered before the kill: a kill cut short, or whose result was lost, is undone.
            undos.register(
                "restart-member", victim, ETCD_UNIT, UNDO_ETCD, revive_etcd, cluster=cluster
            )
            ok = kill_leader(run, console, undos, writer, members, survivors, victim, old_leader)
    finally:
        forget_writes(console, members, prefix)
    return verdict(run, options, undos, ok, console)


def kill_leader(
    run: Run,
    console: Console,
    undos: Undos,
    writer: Writer,
    members: list[Endpoint],
    survivors: list[Endpoint],
    victim: str,
    old_leader: int,
) -> bool:
    """Kill the leader under `writer`'s writes, measure, revive it (its undo), read back."""
    writer.start()
    try:
        time.sleep(1.0)
        run.step("kill-leader", kill_member, only=lambda h: h.name == victim)
        killed_at = time.monotonic()  # the kill has been delivered when the step returns
        if run.failed:
            return False
        election = wait_for(new_leader_elected(survivors, old_leader), ELECTION_TIMEOUT)
        time.sleep(1.0)
    finally:
        writer.stop()
    restarted_at = time.monotonic()
    undos.undo_all()
    recovered = wait_for(lambda: healthy(members), RECOVERY_TIMEOUT, interval=0.5)
    if recovered is not None:
        recovered = time.monotonic() - restarted_at
    stored = members[0].range_prefix(writer.prefix) if recovered is not None else {}
    lost = lost_writes(writer.acked, stored, writer.prefix) if recovered is not None else []
    first_write = writer.first_ack_after(killed_at)
    print_figures(console, writer, election, first_write, killed_at, recovered, lost)
    return election is not None and recovered is not None and not lost


def forget_writes(console: Console, members: list[Endpoint], prefix: str) -> None:
    """Delete the drill's keys through the first member that takes the delete."""
    for member in members:
        with contextlib.suppress(EtcdUnavailable):
            member.delete_prefix(prefix)
            return
    console.print(for_console(f"the drill's keys are left under {prefix}: no member deleted them"))


def verdict(run: Run, options: cli.Options, undos: Undos, ok: bool, console: Console) -> int:
    """Exit 0 only when the drill's promise held, no step failed and every undo worked."""
    ok = ok and undos.ok and not run.failed
    return cli.finish(run, options, cli.EXIT_OK if ok else cli.EXIT_FAILED, console)


def healthy(members: list[Endpoint]) -> bool:
    """Every member answers and all agree on one leader."""
    leader, by_member = leader_of(members)
    return leader != 0 and len(by_member) == len(members)


def print_figures(
    console: Console,
    writer: Writer,
    election: float | None,
    first_write: float | None,
    killed_at: float,
    recovered: float | None,
    lost: list[int],
) -> None:
    console.print(
        f"acknowledged writes: {len(writer.acked)}, failed attempts: {len(writer.errors)}"
    )
    console.print(f"time to a new leader after the kill: {seconds(election)}")
    console.print(
        "time to the first acknowledged write after the kill: "
        f"{seconds(None if first_write is None else first_write - killed_at)}"
    )
    console.print(f"time to full health after restarting the member: {seconds(recovered)}")
    verdict = "none lost" if not lost else f"[red]{len(lost)} LOST[/]: {lost[:10]}"
    console.print(f"acknowledged writes read back: {verdict}")


def leader_seen(run: Run, cluster: Cluster, component: str, observer: str) -> LeaderRecord | None:
    """The leader record as `observer`'s apiserver returns it now (None if it cannot say)."""
    results = run.nr.filter(name=observer).run(
        task=read_leader, cluster=cluster, component=component
    )
    return None if results.failed else results[observer][0].result


def leader_loss(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    """Kill the leader of args.scenario's component; measure the time to another leader."""
    console = make_console()
    component = f"kube-{args.scenario}"
    run = cli.new_run(options, "drill", progress=console)
    controllers = [h.name for h in cluster.controllers]
    old = leader_seen(run, cluster, component, controllers[0])
    if old is None or old.host not in controllers:
        console.print(f"[red]no {component} leader on a controller: verify the cluster first[/]")
        return cli.finish(run, options, cli.EXIT_FAILED, console)
    observer = next(name for name in controllers if name != old.host)
    console.print(for_console(f"{component} leader: {old.holder}; watching through {observer}"))
    with Undos(run, console) as undos:
        # systemd restarts a killed component by itself, which is what the drill measures; the
        # undo (run last) makes sure it runs, healthy, whatever happened in between.
        undos.register(
            "restart-component",
            old.host,
            unit_of(component),
            f"start {unit_of(component)} if it is not running, wait until healthy",
            restart_component,
            cluster=cluster,
            component=component,
        )
        run.step(
            "kill-leader", kill_component, only=lambda h: h.name == old.host, component=component
        )

        def taken_over() -> bool:
            now = leader_seen(run, cluster, component, observer)
            return now is not None and now.holder != old.holder

        election = wait_for(taken_over, ELECTION_TIMEOUT, interval=0.2)
        new = leader_seen(run, cluster, component, observer)
        recovered, problems = wait_control_plane_healthy(run.nr, cluster, RECOVERY_TIMEOUT)
        console.print(for_console(f"new leader: {new.holder if new else 'none'}"))
        console.print(f"time to a new leader after the kill: {seconds(election)}")
        console.print(f"time to full health after that: {seconds(recovered)}")
        print_problems(console, problems)
        ok = election is not None and recovered is not None
    return verdict(run, options, undos, ok, console)


def apiserver_outage(args: argparse.Namespace, options: cli.Options, cluster: Cluster) -> int:
    """Stop one apiserver while the nodes probe through their load balancers; count errors."""
    console = make_console()
    victim = args.host or cluster.controllers[0].name
    run = cli.new_run(options, "drill", progress=console)
    probes: dict[str, tuple[int, int]] = {}
    nodes = run.nr.filter(filter_func=cli.in_group("nodes"))
    probing = threading.Thread(
        target=lambda: probes.update(
            (host, result[0].result)
            for host, result in nodes.run(
                task=probe_load_balancer, cluster=cluster, seconds=APISERVER_DOWN + 8
            ).items()
            if not result.failed
        ),
        daemon=True,
    )
    console.print(f"stopping kube-apiserver on {victim} for {APISERVER_DOWN} s")
    with Undos(run, console) as undos:
        undos.register(
            "start-apiserver",
            victim,
            unit_of("kube-apiserver"),
            f"start {unit_of('kube-apiserver')}, wait until healthy",
            restart_component,
            cluster=cluster,
            component="kube-apiserver",
        )
        probing.start()
        time.sleep(2)
        run.step(
            "stop-apiserver",
            stop_component,
            only=lambda host: host.name == victim,
            component="kube-apiserver",
        )
        time.sleep(APISERVER_DOWN)
        undos.undo_all()
        recovered, problems = wait_control_plane_healthy(run.nr, cluster, RECOVERY_TIMEOUT)
        probing.join()
        for node, (answered, errors) in sorted(probes.items()):
            console.print(f"{node}: {answered} answered through the load balancer, {errors} errors")
        missing = sorted(set(nodes.inventory.hosts) - set(probes))
        console.print(f"time to full health after the restart: {seconds(recovered)}")
        print_problems(console, problems)
        served = bool(probes) and not missing and all(ok > 0 for ok, _ in probes.values())
        if missing:
            console.print(f"[red]no probe result from {', '.join(missing)}[/]")
        ok = served and recovered is not None
    return verdict(run, options, undos, ok, console)


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value * 1000:.0f} ms"


SCENARIOS = {
    "etcd-leader": etcd_leader,
    "scheduler": leader_loss,
    "controller-manager": leader_loss,
    "apiserver": apiserver_outage,
}


def drill(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("scenario", choices=list(SCENARIOS))
    parser.add_argument("--host", help="apiserver: the controller whose apiserver stops")
    args = parser.parse_args(argv)
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    controllers = [h.name for h in cluster.controllers]
    if args.host is not None and args.host not in controllers:
        raise cli.UsageError(
            f"--host {args.host}: not a controller of the inventory ({', '.join(controllers)})"
        )
    with exclusive("drill", cluster.inventory_dir):
        return SCENARIOS[args.scenario](args, cli.Options.parsed(args, argv), cluster)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(drill, argv)


if __name__ == "__main__":
    sys.exit(main())
