"""The fault table: each fault of lab/faults.py injected on the lab, one row each.

Run with the lab up and the cluster deployed:
`.venv/bin/python bench/faults.py [-i lab/inventory] [SCENARIO ...]` (default: all, in order).
Prints fault | verify exit | named | time to notice | lost | recovered by | time, and appends the
rows to bench/results/faults.csv with the date and commit.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import time
from pathlib import Path

from kubenorn.nornir_setup import REPO_ROOT
from lab.faults import HEADER, SCENARIOS
from lab.machine import Lab

RESULTS = REPO_ROOT / "bench" / "results" / "faults.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=REPO_ROOT / "lab" / "inventory")
    parser.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"no scenario {unknown[0]!r} (any of: {', '.join(SCENARIOS)})")
    lab = Lab.load(args.inventory)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
    ).stdout.strip()
    day = time.strftime("%Y-%m-%d")
    rows = [SCENARIOS[name](lab, args.inventory).cells() for name in args.scenarios or SCENARIOS]
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    for row in [HEADER, *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["date", "commit", *HEADER])
        writer.writerows([day, commit, *row] for row in rows)


if __name__ == "__main__":
    main()
