"""stop_components, as an etcd restore stops a controller's control plane: one `systemctl stop`,
dependents first, and a component waiting out its RestartSec counts as running. Left out, it
would restart during the apiserver's stop, pull kube-apiserver back up through its Wants= and
cancel that stop (CI, stop 23: "Job for kube-apiserver.service canceled")."""

from __future__ import annotations

import pytest
from fakes import Fleet, run_on
from nornir.core import Nornir

from kubenorn.profiles import CONTROL_PLANE
from tasks.kube_units import stop_components

UNITS = ["kube-controller-manager.service", "kube-scheduler.service", "kube-apiserver.service"]
SHOW = "systemctl show --property=UnitFileState,ActiveState -- " + " ".join(UNITS)

# ActiveState of controller-manager, scheduler, apiserver -> the units stopped, in order.
CASES = {
    "all running": (["active", "active", "active"], UNITS),
    "the scheduler waiting out RestartSec": (["active", "activating", "active"], UNITS),
    "the controller-manager failed for good": (["failed", "active", "active"], UNITS[1:]),
    "the apiserver stopping already": (["inactive", "inactive", "deactivating"], UNITS[2:]),
    "all stopped": (["inactive", "failed", "inactive"], []),
}


@pytest.mark.parametrize(("states", "stopped"), CASES.values(), ids=CASES.keys())
def test_stop_table(fleet: Fleet, nr: Nornir, states: list[str], stopped: list[str]) -> None:
    blocks = [f"UnitFileState=enabled\nActiveState={state}\n" for state in states]
    stop = "systemctl stop -- " + " ".join(stopped)
    fleet["h1"].script = {SHOW: (0, "\n".join(blocks), ""), stop: (0, "", "")}
    result = run_on(nr, "h1", stop_components, components=CONTROL_PLANE)
    assert fleet["h1"].lines()[1:] == ([stop] if stopped else [])
    assert result[0].changed == bool(stopped)
    names = [unit.removesuffix(".service") for unit in stopped]
    assert result[0].diff == "".join(f"stopped {name}\n" for name in names)
