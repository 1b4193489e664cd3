"""The lab bridge: the machine's gateway address on it and nothing routed beyond it."""

from __future__ import annotations

import json

from lab.processes import sh
from lab.settings import LabSettings


def link_names(kind: str | None = None, master: str | None = None) -> list[str]:
    argv = ["ip", "-j", "link", "show"]
    argv += ["type", kind] if kind else []
    argv += ["master", master] if master else []
    done = sh(argv, check=False)
    return (
        [link["ifname"] for link in json.loads(done.stdout or "[]")] if done.returncode == 0 else []
    )


def ensure_bridge(settings: LabSettings) -> None:
    """The bridge, up, with the gateway address (created or repaired)."""
    bridge = settings.bridge
    if bridge not in link_names("bridge"):
        sh(["ip", "link", "add", bridge, "type", "bridge"])
    addresses = sh(["ip", "-j", "addr", "show", "dev", bridge]).stdout
    wanted = str(settings.gateway.ip)
    present = [a["local"] for link in json.loads(addresses) for a in link.get("addr_info", [])]
    if wanted not in present:
        sh(["ip", "addr", "add", str(settings.gateway), "dev", bridge])
    sh(["ip", "link", "set", bridge, "up"])


def remove_stale_veths(settings: LabSettings, keep: set[str] | None = None) -> list[str]:
    """Delete host-side veths left on the bridge by containers that are gone."""
    removed = []
    for name in link_names("veth", settings.bridge):
        if name not in (keep or set()):
            sh(["ip", "link", "delete", name], check=False)
            removed.append(name)
    return removed


def remove_bridge(settings: LabSettings) -> None:
    remove_stale_veths(settings)
    if settings.bridge in link_names("bridge"):
        sh(["ip", "link", "delete", settings.bridge])
