"""The stops of an etcd restore.

stop_components, as it stops a controller's control plane: one `systemctl stop` of every
enabled component, dependents first, so none waiting out its RestartSec (or failed a moment
before it) is left out. Left out, it would restart during the apiserver's stop, pull
kube-apiserver back up through its Wants= and cancel that stop (CI of stop 22: "Job for
kube-apiserver.service canceled"). Changed, and in the diff, only what was running.
"""

from __future__ import annotations

import pytest
from fakes import Fleet, run_on
from nornir.core import Nornir

from kubenorn.profiles import CONTROL_PLANE
from tasks.etcd_restore import stop_etcd
from tasks.kube_units import stop_components

UNITS = ["kube-controller-manager.service", "kube-scheduler.service", "kube-apiserver.service"]
SHOW = "systemctl show --property=UnitFileState,ActiveState -- " + " ".join(UNITS)

# (UnitFileState, ActiveState) of controller-manager, scheduler, apiserver -> stopped, changed.
CASES = {
    "all running": ([("enabled", "active")] * 3, UNITS, UNITS),
    "the scheduler waiting out RestartSec": (
        [("enabled", "active"), ("enabled", "activating"), ("enabled", "active")],
        UNITS,
        UNITS,
    ),
    "the controller-manager failed": (
        [("enabled", "failed"), ("enabled", "active"), ("enabled", "active")],
        UNITS,
        UNITS[1:],
    ),
    "all stopped, still enabled": (
        [("enabled", "inactive"), ("enabled", "failed"), ("enabled", "inactive")],
        UNITS,
        [],
    ),
    "never deployed here": ([("", "inactive")] * 3, [], []),
}


@pytest.mark.parametrize(("states", "stopped", "running"), CASES.values(), ids=CASES.keys())
def test_stop_table(
    fleet: Fleet, nr: Nornir, states: list[tuple[str, str]], stopped: list[str], running: list[str]
) -> None:
    blocks = [f"UnitFileState={enabled}\nActiveState={active}\n" for enabled, active in states]
    stop = "systemctl stop -- " + " ".join(stopped)
    fleet["h1"].script = {SHOW: (0, "\n".join(blocks), ""), stop: (0, "", "")}
    result = run_on(nr, "h1", stop_components, components=CONTROL_PLANE)
    assert fleet["h1"].lines()[1:] == ([stop] if stopped else [])
    assert result[0].changed == bool(running)
    names = [unit.removesuffix(".service") for unit in running]
    assert result[0].diff == "".join(f"stopped {name}\n" for name in names)


# A member's etcd ActiveState -> whether the restore's stop stops it (waiting out its
# RestartSec, it would come back on the data being replaced).
ETCD_CASES = {"active": True, "activating": True, "deactivating": True, "failed": False}


@pytest.mark.parametrize(("state", "stops"), ETCD_CASES.items(), ids=ETCD_CASES.keys())
def test_the_restore_stops_etcd_unless_it_is_down(
    fleet: Fleet, nr: Nornir, state: str, stops: bool
) -> None:
    show = "systemctl show --property=UnitFileState,ActiveState -- etcd.service"
    fleet["h1"].script = {
        show: (0, f"UnitFileState=enabled\nActiveState={state}\n", ""),
        "systemctl stop etcd.service": (0, "", ""),
    }
    result = run_on(nr, "h1", stop_etcd)
    assert fleet["h1"].lines()[1:] == (["systemctl stop etcd.service"] if stops else [])
    assert result[0].changed is stops
