"""The fan-out on real lab hosts: facts, ad-hoc commands and the host survey at 6, 20 and 40.

`.venv/bin/python bench/scale.py [--sizes 6 20 40] [--repeat 3] [--keep-extras]`

The six lab hosts and, beyond them, spare hosts the lab boots for this (`lab up --extra N`:
sshd and systemd only, so the cluster's services do not eat the cores the measure needs). Per
size, in a fresh interpreter of its own: `facts`, `run -- true` (an ad-hoc command) and the
batched survey verify and deploy read each host with (tasks/host_state.py). Then, on the six
hosts that run the real cluster: `verify --no-smoke-test` and a deploy that changes nothing.

Printed per operation and size: wall time, this process's CPU (user + system of every thread),
CPU per host, round trips per host (SSH exec channels plus SFTP requests, counted at paramiko,
the most any host took) and peak RSS; then the CPU per additional host (the slope from the
smallest size to the largest) and the import floor, paid once per run. The lab's hosts share
the machine's cores with this process, so the CPU figures, not the wall times, are what carry
to a real site. Results are appended to bench/results/scale.csv with the date and commit.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "scale.csv"
LAB_INVENTORY = REPO / "lab" / "inventory"
FIELDS = [
    "date",
    "commit",
    "operation",
    "hosts",
    "wall_s",
    "cpu_s",
    "cpu_per_host_ms",
    "round_trips_max",
    "peak_rss_mb",
]


def round_trip_counter() -> collections.Counter[str]:
    """Count, per peer address, every SSH exec channel and SFTP request from now on."""
    import paramiko

    counts: collections.Counter[str] = collections.Counter()

    def peer(transport: Any) -> str:
        return str(transport.getpeername()[0])

    exec_command = paramiko.Channel.exec_command

    def counted_exec(self: Any, command: Any) -> Any:
        counts[peer(self.get_transport())] += 1
        return exec_command(self, command)

    def counted(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any) -> Any:
            counts[peer(self.sock.get_transport())] += 1
            return original(self, *args)

        return wrapper

    paramiko.Channel.exec_command = counted_exec  # type: ignore[method-assign]
    # Every SFTP request goes through _async_request (_request waits on its answer).
    sftp = paramiko.SFTPClient
    sftp._async_request = counted(sftp._async_request)  # type: ignore[attr-defined]
    return counts


def survey(inventory: Path) -> int:
    """host_state's survey of every host (what verify and deploy read first); exit 0 if all."""
    from kubenorn.nornir_setup import init_nornir
    from tasks import host_state

    nr = init_nornir(inventory)
    host_state.enable(nr)
    try:
        results = nr.run(task=lambda task: host_state.state(task) is not None)
        return 1 if results.failed else 0
    finally:
        nr.close_connections(on_good=True, on_failed=True)


def operations(inventory: Path) -> dict[str, Callable[[], int]]:
    from runbooks import deploy, facts, run, verify

    i = ["-i", str(inventory), "--quiet"]
    return {
        "facts": lambda: facts.main(i),
        "run": lambda: run.main([*i, "--", "true"]),
        "survey": lambda: survey(inventory),
        "verify": lambda: verify.main([*i, "--no-smoke-test"]),
        "deploy": lambda: deploy.main(i),
    }


def measure(inventory: Path, names: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """In this process: each operation `repeat` times; the medians, the most trips, peak RSS."""
    os.environ.setdefault("KUBENORN_HISTORY_DB", str(Path(tempfile.mkdtemp()) / "h.sqlite"))
    counts = round_trip_counter()
    runs = operations(inventory)
    figures = {}
    for name in names:
        walls, cpus, trips = [], [], []
        for _ in range(repeat):
            counts.clear()
            started, cpu = time.perf_counter(), time.process_time()
            code = runs[name]()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - started)
            trips.append(max(counts.values(), default=0))
            if code != 0:
                raise SystemExit(f"{name} on {inventory} exited {code}")
        figures[name] = {
            "wall_s": statistics.median(walls),
            "cpu_s": statistics.median(cpus),
            "round_trips_max": max(trips),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    return figures


def inventory_of(hosts: int, extras: list[Any], directory: Path) -> Path:
    """The lab inventory with the first `hosts - 6` spare hosts as nodes (for the fan-out)."""
    copy = directory / f"inventory-{hosts}"
    shutil.copytree(LAB_INVENTORY, copy, ignore=shutil.ignore_patterns(".backups", ".restore"))
    entries = yaml.safe_load((copy / "hosts.yaml").read_text())
    for number, spare in enumerate(extras[: hosts - len(entries)], start=10):
        data = {"address": spare.address, "pod_cidr": f"10.200.{number}.0/24"}
        entries[spare.name] = {"hostname": spare.address, "groups": ["nodes"], "data": data}
    (copy / "hosts.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    return copy


def in_subprocess(inventory: Path, names: list[str], repeat: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--measure", str(inventory), "--repeat", str(repeat)]
    done = subprocess.run([*argv, *names], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {inventory} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def import_floor() -> float:
    """CPU seconds a fresh interpreter spends importing the runbooks, paid once per run."""
    code = (
        "import time; from runbooks import deploy, facts, run, verify; print(time.process_time())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    return float(done.stdout.strip() or "nan")


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    return done.stdout.decode().strip() or "unknown"


def report(rows: list[dict[str, Any]], floor: float) -> None:
    print(f"{'operation':<10}{'hosts':>6}{'wall s':>9}{'CPU s':>8}{'CPU/host ms':>13}"
          f"{'trips/host':>12}{'RSS MB':>8}")  # fmt: skip
    for row in rows:
        print(
            f"{row['operation']:<10}{row['hosts']:>6}{row['wall_s']:>9.2f}{row['cpu_s']:>8.2f}"
            f"{row['cpu_per_host_ms']:>13.1f}{row['round_trips_max']:>12}{row['peak_rss_mb']:>8.0f}"
        )
    for name in sorted({r["operation"] for r in rows}):
        sized = sorted((r for r in rows if r["operation"] == name), key=lambda r: r["hosts"])
        if len(sized) > 1:
            low, high = sized[0], sized[-1]
            slope = (high["cpu_s"] - low["cpu_s"]) / (high["hosts"] - low["hosts"]) * 1000
            print(f"{name}: {slope:.1f} ms of CPU per additional host "
                  f"({low['hosts']} to {high['hosts']} hosts)")  # fmt: skip
    print(f"import floor (the runbooks' imports, once per run): {floor:.2f} s of CPU")


def save(rows: list[dict[str, Any]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def bench(sizes: list[int], repeat: int, keep_extras: bool) -> None:
    from lab.machine import Lab

    lab = Lab.load()
    own = len(lab.settings.without_extras().hosts)
    lab.up(extra=max(sizes) - own)
    stamp, head = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), commit()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for hosts in sizes:
                inventory = inventory_of(hosts, list(lab.settings.extras), Path(scratch))
                names = ["facts", "run", "survey"]
                for name, f in in_subprocess(inventory, names, repeat).items():
                    rows.append({"operation": name, "hosts": hosts, **f})
            # The real cluster: the six lab hosts, deployed.
            for name, f in in_subprocess(LAB_INVENTORY, ["verify", "deploy"], repeat).items():
                rows.append({"operation": name, "hosts": own, **f})
    finally:
        if not keep_extras:
            lab.remove_extras()
    for row in rows:
        row.update(date=stamp, commit=head, cpu_per_host_ms=row["cpu_s"] / row["hosts"] * 1000)
    report(rows, import_floor())
    save(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 20, 40])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-extras", action="store_true", help="leave the spare hosts up")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.names, args.repeat)))
        return
    bench(sorted(args.sizes), args.repeat, args.keep_extras)


if __name__ == "__main__":
    main()
