"""Measure the remote primitives on the lab: connect, command, small-file put, 6 hosts x 50.

Run with the lab up: `.venv/bin/python bench/primitives.py [-i lab/inventory]`. Prints figures
and the ratio to the target (at most 10 ms per command and per put on an open connection).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from nornir.core.task import Result, Task

from kubenorn.nornir_setup import REPO_ROOT, init_nornir
from tasks.files import ensure_file
from tasks.ssh import connection, run

TARGET_MS = 10.0
ROUNDS = 50


def connect(task: Task) -> Result:
    started = time.perf_counter()
    connection(task)
    return Result(host=task.host, result=time.perf_counter() - started)


def commands(task: Task, count: int) -> Result:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        run(task, ["true"])
        timings.append(time.perf_counter() - started)
    return Result(host=task.host, result=timings)


def puts(task: Task, count: int) -> Result:
    timings = []
    for index in range(count):
        started = time.perf_counter()
        ensure_file(task, path="/tmp/kubenorn-bench.txt", content=f"bench {index}\n" * 64)
        timings.append(time.perf_counter() - started)
    return Result(host=task.host, result=timings)


def report(name: str, seconds: list[float]) -> None:
    median_ms = statistics.median(seconds) * 1000
    p95_ms = sorted(seconds)[int(len(seconds) * 0.95) - 1] * 1000
    print(
        f"{name:<34} median {median_ms:7.2f} ms   p95 {p95_ms:7.2f} ms   "
        f"ratio to {TARGET_MS:.0f} ms target {median_ms / TARGET_MS:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=REPO_ROOT / "lab" / "inventory")
    args = parser.parse_args()
    nr = init_nornir(args.inventory)
    started = time.perf_counter()
    connects = nr.run(task=connect)
    connect_wall = time.perf_counter() - started
    print(
        f"{'connect (per host, in parallel)':<34} median "
        f"{statistics.median(r[0].result for r in connects.values()) * 1000:7.1f} ms   "
        f"wall for {len(connects)} hosts {connect_wall * 1000:7.1f} ms"
    )
    one = nr.filter(name=sorted(nr.inventory.hosts)[0])
    host = next(iter(one.inventory.hosts))
    report("command on an open connection", one.run(task=commands, count=ROUNDS)[host][0].result)
    report("small-file put (ensure_file)", one.run(task=puts, count=ROUNDS)[host][0].result)
    started = time.perf_counter()
    results = nr.run(task=commands, count=ROUNDS)
    wall = time.perf_counter() - started
    total = sum(len(r[0].result) for r in results.values())
    print(
        f"{len(results)} hosts x {ROUNDS} commands: wall {wall * 1000:.0f} ms "
        f"({total} commands, {wall / ROUNDS * 1000:.2f} ms per round of {len(results)})"
    )
    nr.close_connections()


if __name__ == "__main__":
    main()
