"""The control machine's own cost per host: verify and a no-change deploy on N fake hosts.

`.venv/bin/python bench/scale_fake.py [--hosts 6 20 40] [--repeat 3] [--profile]`

Each size runs in a process of its own: an inventory of 3 controllers and N-3 nodes, fake hosts
in-process (tests/unit/fake_cluster.py: no network, no lab) settled by one deploy, then the
measured runs: `verify --no-smoke-test` and a deploy that changes nothing. Printed per runbook
and size: wall time, this process's CPU (time.process_time: user + system of every thread)
less what the fakes spent answering (shown beside it),
round trips per host (commands + SFTP requests, the most any host took), and peak RSS of the
measured runs; then the CPU and memory per additional host (the slope from the smallest size to
the largest) against issue 19's targets, and the import floor (the runbooks' imports alone, in
a fresh interpreter), which is paid once per run and not per host.

The fakes answer at once, so wall time here is the control machine's work alone; on real hosts
add the network and the hosts' own time. `--profile` writes cProfile output of the largest
size's runs to bench/profiles/ (a .prof file and the top functions by own time). Results are
appended to bench/results/scale_fake.csv with the date and commit, so a regression shows.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "scale_fake.csv"
PROFILES = BENCH / "profiles"
TARGET_MS = {"verify": 25.0, "deploy": 40.0}  # CPU per additional host (issue 19)
TRIPS_TARGET = {"verify": 10, "deploy": 15}
FIELDS = [
    "date",
    "commit",
    "runbook",
    "hosts",
    "wall_s",
    "cpu_s",
    "fake_cpu_s",
    "cpu_per_host_ms",
    "round_trips_max",
    "round_trips_mean",
    "peak_rss_mb",
    "rss_per_host_kb",
    "import_cpu_s",
]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure_one(hosts: int, repeat: int, profile: bool) -> dict[str, Any]:
    """In this process: settle `hosts` fake hosts with one deploy, then measure both runbooks."""
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    os.environ.setdefault("KUBENORN_HISTORY_DB", str(Path(tempfile.mkdtemp()) / "h.sqlite"))
    import fake_cluster as fc

    from runbooks import deploy, verify

    inventory = fc.write_inventory(Path(tempfile.mkdtemp()) / "inventory", nodes=hosts - 3)
    fleet = fc.healthy_fleet(inventory)
    argv = {
        "verify": ["-i", str(inventory), "--quiet", "--no-smoke-test"],
        "deploy": ["-i", str(inventory), "--quiet"],
    }
    mains = {"verify": verify.main, "deploy": deploy.main}
    figures: dict[str, Any] = {}
    with fc.serving(fleet), fc.no_network():
        if deploy.main(argv["deploy"]) != 0:
            raise SystemExit(f"{hosts} hosts: the settling deploy failed")
        for runbook in ("verify", "deploy"):
            walls, cpus, fakes = [], [], []
            reset_peak_rss()
            for _ in range(repeat):
                fc.forget(fleet)
                started, cpu, fake = time.perf_counter(), time.process_time(), fc.FAKE_CPU[0]
                code = mains[runbook](argv[runbook])
                fakes.append(fc.FAKE_CPU[0] - fake)
                cpus.append(time.process_time() - cpu - fakes[-1])
                walls.append(time.perf_counter() - started)
                if code != 0:
                    raise SystemExit(f"{hosts} hosts: {runbook} exited {code}")
            trips = [fc.round_trips(h) for h in fleet.hosts.values()]
            figures[runbook] = {
                "wall_s": statistics.median(walls),
                "cpu_s": statistics.median(cpus),
                "fake_cpu_s": statistics.median(fakes),
                "round_trips_max": max(trips),
                "round_trips_mean": statistics.mean(trips),
                "peak_rss_mb": peak_rss_mb(),
            }
            if profile:
                profile_run(runbook, hosts, lambda r=runbook: mains[r](argv[r]))
    return figures


def profile_run(runbook: str, hosts: int, action: Any) -> None:
    """cProfile `action` in every thread (Nornir runs each host's task in a worker thread)."""
    import cProfile
    import io
    import pstats
    import threading

    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        profiler = cProfile.Profile(time.thread_time)  # CPU, not GIL waits
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook for the rest of the thread

    main = cProfile.Profile(time.thread_time)
    threading.setprofile(start_in_thread)
    try:
        main.runcall(action)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    PROFILES.mkdir(exist_ok=True)
    stats = pstats.Stats(main)
    for profiler in profilers:
        profiler.disable()
        stats.add(profiler)
    stem = PROFILES / f"{runbook}-{hosts}-hosts"
    stats.dump_stats(f"{stem}.prof")
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    Path(f"{stem}.txt").write_text(text.getvalue())


def import_floor() -> float:
    """CPU seconds of a fresh interpreter that only imports the two runbooks."""
    code = "import time; from runbooks import deploy, verify; print(time.process_time())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = "-dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[6, 20, 40])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    parser.add_argument("--no-csv", action="store_true", help="print only")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.repeat, args.profile)))
        return
    sizes = sorted(args.hosts)
    results: dict[int, dict[str, Any]] = {}
    for hosts in sizes:
        argv = [sys.executable, __file__, "--one", str(hosts), "--repeat", str(args.repeat)]
        argv += ["--profile"] if args.profile and hosts == sizes[-1] else []
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{hosts} hosts failed:\n{done.stderr[-3000:]}")
        results[hosts] = json.loads(done.stdout.strip().splitlines()[-1])
    floor = import_floor()
    date, revision = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), commit()
    rows = []
    print(f"fake hosts, in-process; import floor {floor * 1000:.0f} ms CPU (once per run)")
    header = f"{'runbook':<8}{'hosts':>6}{'wall s':>9}{'CPU s':>8}{'fakes s':>9}"
    header += f"{'trips/host':>12}{'RSS MB':>8}"
    print(header)
    small, large = sizes[0], sizes[-1]
    for runbook in ("verify", "deploy"):
        for hosts in sizes:
            f = results[hosts][runbook]
            print(
                f"{runbook:<8}{hosts:>6}{f['wall_s']:>9.2f}{f['cpu_s']:>8.2f}{f['fake_cpu_s']:>9.2f}"
                f"{f['round_trips_max']:>12}{f['peak_rss_mb']:>8.0f}"
            )
        span = max(large - small, 1)
        per_host_ms = (results[large][runbook]["cpu_s"] - results[small][runbook]["cpu_s"]) / span
        per_host_ms *= 1000
        rss_kb = results[large][runbook]["peak_rss_mb"] - results[small][runbook]["peak_rss_mb"]
        rss_kb = rss_kb * 1024 / span
        trips = max(results[h][runbook]["round_trips_max"] for h in sizes)
        print(
            f"  {runbook}: {per_host_ms:.1f} ms CPU per additional host "
            f"(target {TARGET_MS[runbook]:.0f}: ratio {per_host_ms / TARGET_MS[runbook]:.2f}), "
            f"{rss_kb:.0f} kB RSS per additional host, at most {trips} round trips per host "
            f"(target {TRIPS_TARGET[runbook]})"
        )
        for hosts in sizes:
            f = results[hosts][runbook]
            rows.append(
                {
                    "date": date,
                    "commit": revision,
                    "runbook": runbook,
                    "hosts": hosts,
                    "wall_s": f"{f['wall_s']:.3f}",
                    "cpu_s": f"{f['cpu_s']:.3f}",
                    "fake_cpu_s": f"{f['fake_cpu_s']:.3f}",
                    "cpu_per_host_ms": f"{per_host_ms:.1f}",
                    "round_trips_max": f["round_trips_max"],
                    "round_trips_mean": f"{f['round_trips_mean']:.1f}",
                    "peak_rss_mb": f"{f['peak_rss_mb']:.1f}",
                    "rss_per_host_kb": f"{rss_kb:.0f}",
                    "import_cpu_s": f"{floor:.3f}",
                }
            )
    if not args.no_csv:
        RESULTS.parent.mkdir(exist_ok=True)
        new = not RESULTS.exists()
        with RESULTS.open("a", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)
        print(f"appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
