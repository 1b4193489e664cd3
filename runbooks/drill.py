"""Failure drills: `python -m runbooks.drill -i INVENTORY etcd-leader`.

etcd-leader  SIGKILL the etcd leader under continuous writes; print the time to a new leader
             and to the first write after the kill; restart the member, wait for full
             health, and check that every acknowledged write is readable. Exit 0 only when
             no acknowledged write was lost and the cluster is healthy again.
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.etcd_client import Endpoint, endpoints
from kubenorn.etcd_drill import Writer, leader_of, lost_writes, new_leader_elected, wait_for
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.report import make_console
from tasks.etcd import kill_member, revive_member

ELECTION_TIMEOUT = 30.0
RECOVERY_TIMEOUT = 90.0


def etcd_leader(args: argparse.Namespace, argv: list[str], cluster: Cluster) -> int:
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
    run = cli.new_run(args, "drill", argv)
    console.print(f"leader: {victim} ({victim_url}); writing under {prefix}")
    writer.start()
    time.sleep(1.0)
    run.step("kill-leader", kill_member, only=lambda h: h.name == victim)
    killed_at = time.monotonic()  # the kill has been delivered when the step returns
    if run.failed:
        writer.stop()
        return cli.finish(run, args, cli.EXIT_FAILED, console)
    election = wait_for(new_leader_elected(survivors, old_leader), ELECTION_TIMEOUT)
    time.sleep(1.0)
    writer.stop()
    run.step("restart-member", revive_member, only=lambda h: h.name == victim)
    recovered = wait_for(lambda: healthy(members), RECOVERY_TIMEOUT, interval=0.5)
    stored = members[0].range_prefix(prefix) if recovered is not None else {}
    lost = lost_writes(writer.acked, stored, prefix) if recovered is not None else []
    first_write = writer.first_ack_after(killed_at)
    print_figures(console, writer, election, first_write, killed_at, recovered, lost)
    if recovered is not None:
        members[0].delete_prefix(prefix)
    ok = election is not None and recovered is not None and not lost and not run.failed
    return cli.finish(run, args, cli.EXIT_OK if ok else cli.EXIT_FAILED, console)


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
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value * 1000:.0f} ms"

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


def drill(argv: list[str]) -> int:
    parser = cli.parser(__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("scenario", choices=["etcd-leader"])
    args = parser.parse_args(argv)
    cluster = load_cluster((args.inventory or default_inventory_dir()).resolve())
    return etcd_leader(args, argv, cluster)


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(drill, argv)


if __name__ == "__main__":
    sys.exit(main())
