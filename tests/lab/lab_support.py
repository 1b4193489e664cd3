"""Helpers shared by the lab tests."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import yaml

from runbooks import deploy, verify


def inventory_with(source: Path, destination: Path, section: str, **settings: object) -> Path:
    """A copy of the inventory (sharing its PKI and keys), one data section's settings changed."""
    for name in ("hosts.yaml", "groups.yaml"):
        shutil.copy2(source / name, destination / name)
    defaults = yaml.safe_load((source / "defaults.yaml").read_text())
    defaults["data"][section].update(settings)
    # Paths relative to the inventory directory point back at the source's files.
    data = defaults["data"]
    data["pki"]["dir"] = str((source / data["pki"]["dir"]).resolve())
    for key in ("known_hosts", "key_file"):
        data["ssh"][key] = str((source / data["ssh"][key]).resolve())
    (destination / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return destination


NODES = ["kube.node01", "kube.node02", "kube.node03"]
CONTROLLERS = ["kube.controller01", "kube.controller02", "kube.controller03"]
UNITS = {
    "controller": ["etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"],
    "node": ["haproxy", "kubelet", "kube-proxy"],
}


def main_pids(lab) -> dict[str, str]:  # noqa: ANN001
    """unit@host -> its main PID, for every service a deploy manages."""
    pids = {}
    for role, hosts in (("controller", CONTROLLERS), ("node", NODES)):
        for host in hosts:
            command = ["systemctl", "show", "--property=MainPID", "--value", *UNITS[role]]
            for unit, pid in zip(UNITS[role], lab.ssh(host, command).stdout.split(), strict=True):
                pids[f"{unit}@{host}"] = pid
    return pids


def changed_records(inventory: Path, report: Path) -> list[dict]:  # type: ignore[type-arg]
    assert deploy.main(["-i", str(inventory), "--quiet", "--json", str(report)]) == 0
    return [r for r in json.loads(report.read_text())["records"] if r["changed"]]


def verifies_ok_within(inventory: Path, seconds: float) -> bool:
    """Whether verify exits 0 within `seconds` (a node reports Ready at its next heartbeat)."""
    deadline = time.monotonic() + seconds
    while verify.main(["-i", str(inventory), "--quiet"]) != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("WARNING")]


def verdict(out: str) -> str:
    """The status word of verify's first line, the monitoring plugin's verdict
    (`KUBENORN WARNING - 118 checks (2 WARNING, 116 OK) | duration=...`)."""
    first = out.splitlines()[0] if out else ""
    assert first.startswith("KUBENORN ") and " checks (" in first and " | " in first, out[:2000]
    return first.split()[1]


def admin_kubectl(lab, *args: str, host: str = "kube.controller01") -> str:  # noqa: ANN001
    """`kubectl ARGS` on a controller as the cluster admin; its output (it must succeed)."""
    argv = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.kubeconfig", *args]
    done = lab.ssh(host, argv)
    assert done.returncode == 0, done.stderr
    return done.stdout
