"""The local lab: `python -m runbooks.lab up|down|status|ssh HOST [CMD...]`.

up      build (once, cached) and boot the lab hosts; on a running lab, change nothing
        (--extra N: also N spare hosts kube.extra01..N, sshd and systemd only, in no role
        group, for tests and benchmarks that put them in an inventory copy)
build   build (or reuse) the inventory's Kubernetes binaries from the Go module and package them
down    stop every host and remove mounts, veths, the bridge and the apt server (--purge:
        also the hosts' own state; the extra hosts' always)
status  each host, its address, whether it runs and whether ssh answers (exit 1 if not all)
ssh     a shell, or one command, on a lab host with the lab's key and known_hosts
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kubenorn import cli
from lab.machine import Lab
from lab.settings import LabError


def parse(argv: list[str]) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-i", "--inventory", type=Path, help="lab inventory (default lab/inventory)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up")
    up.add_argument("--extra", type=int, default=0, metavar="N", help="also boot N spare hosts")
    commands.add_parser("build")
    down = commands.add_parser("down")
    down.add_argument("--purge", action="store_true", help="also delete the hosts' state")
    commands.add_parser("status")
    ssh = commands.add_parser("ssh")
    ssh.add_argument("host")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def status(lab: Lab) -> int:
    rows = lab.status()
    for row in rows:
        state = "running" if row.running else "stopped"
        print(f"{row.name:<20} {row.address:<15} {state:<8} ssh {'ok' if row.ssh_ok else 'no'}")
    return 0 if all(r.running and r.ssh_ok for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        lab = Lab.load(args.inventory)
        if args.command == "up":
            started = time.monotonic()
            lab.up(extra=args.extra)
            print(f"lab up: {len(lab.settings.hosts)} hosts in {time.monotonic() - started:.1f}s")
            return status(lab)
        if args.command == "build":
            for deb in lab.own_packages():
                print(deb)
            return 0
        if args.command == "down":
            lab.down(purge=args.purge)
            print("lab down")
            return 0
        if args.command == "status":
            return status(lab)
        host = lab.settings.host(args.host)
        os.execvp("ssh", [*lab.ssh_argv(host.address), *args.cmd])
    except LabError as error:
        cli.error_message(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
