"""Measure deploy and verify on the lab: full deploy, no-change re-deploy, verify.

Run with the lab up: `.venv/bin/python bench/deploy.py [-i lab/inventory] [--from-scratch]`.
`--from-scratch` first purges the hosts (`lab down --purge`, `lab up`), so the first deploy
installs everything. Prints wall times beside the control machine's own CPU time (this
process: the lab's hosts share the same 2 cores, so wall time partly measures them) and the
re-deploy's ratio to its 3 s target.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import timed

from kubenorn.nornir_setup import REPO_ROOT
from runbooks import deploy, verify

REDEPLOY_TARGET = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=REPO_ROOT / "lab" / "inventory")
    parser.add_argument("--from-scratch", action="store_true", help="purge the hosts first")
    args = parser.parse_args()
    inventory = str(args.inventory)
    if args.from_scratch:
        from lab.machine import Lab  # test equipment, used by this benchmark only

        lab = Lab.load(args.inventory)

        def purge_and_up() -> int:
            lab.down(purge=True)
            lab.up()
            return 0

        timed("lab down --purge + up", purge_and_up)
    timed("full deploy", lambda: deploy.main(["-i", inventory, "--quiet"]))
    again = timed("no-change re-deploy", lambda: deploy.main(["-i", inventory, "--quiet"]))
    timed("verify", lambda: verify.main(["-i", inventory, "--quiet"]))
    print(f"re-deploy / {REDEPLOY_TARGET:.0f} s target: {again / REDEPLOY_TARGET:.2f}")


if __name__ == "__main__":
    main()
