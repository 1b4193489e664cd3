"""Measure the lab's own costs: the first (cold) build of Kubernetes and a cached `make lab`.

Run on a machine where the lab was built at least once: `.venv/bin/python bench/lab_build.py`.
The cold build is not re-run (it takes minutes and empties nothing): its figures are the ones
`lab build` recorded when it built (STATE/kubernetes/vX/build.json). The cached figures are
measured now: `lab up` on a running lab (build check, repository index, hosts), then the rest
of `make lab` (a no-change deploy and verify), each with wall time and this process's CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from timing import timed

from kubenorn.nornir_setup import REPO_ROOT
from lab.kubebuild import Build, parse_version
from lab.machine import Lab
from runbooks import deploy, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", type=Path, default=REPO_ROOT / "lab" / "inventory")
    args = parser.parse_args()
    lab = Lab.load(args.inventory)
    version = lab.settings.kubernetes_build
    if version:
        record = Build(parse_version(version), lab.settings.state_dir).out_dir / "build.json"
        if record.exists():
            built = json.loads(record.read_text())
            print(
                f"{'first build ' + built['version']:<36} {built['wall_s']:8.1f} s wall "
                f"{built['cpu_s']:8.1f} s CPU (go build, 2 cores; {built['finished']})"
            )
        else:
            print(f"no build record in {record}: run `python -m runbooks.lab build` first")
    inventory = str(args.inventory)
    total = timed("cached lab up (build check, hosts)", lab.up)
    total += timed("no-change deploy", lambda: deploy.main(["-i", inventory, "--quiet"]))
    total += timed("verify", lambda: verify.main(["-i", inventory, "--quiet"]))
    print(f"{'cached make lab (the three above)':<36} {total:8.2f} s wall")


if __name__ == "__main__":
    main()
