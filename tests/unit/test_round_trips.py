"""Round trips per host: the real verify and no-change deploy runbooks on fake hosts that look
deployed and healthy (tests/unit/fake_cluster.py), every command and SFTP request counted.

A count, not a time: it is the same on every machine. Issue 19's targets: at most 10 round
trips per host for verify without the smoke test, at most 15 for a deploy that changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_cluster import deployed_fleet, forget, round_trips
from fakes import Fleet

from runbooks import deploy, verify

VERIFY_TARGET = 10
DEPLOY_TARGET = 15


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Fleet]]:
    """Six fake hosts (3 controllers, 3 nodes) after one deploy: files in place, all healthy."""
    with deployed_fleet(tmp_path_factory.mktemp("round-trips")) as settled:
        yield settled


def per_host(fleet: Fleet) -> dict[str, int]:
    assert not [h.unscripted for h in fleet.hosts.values() if h.unscripted]
    return {name: round_trips(host) for name, host in fleet.hosts.items()}


def test_a_no_change_deploy_writes_nothing_in_few_round_trips(
    deployed: tuple[Path, Fleet],
) -> None:
    inventory, fleet = deployed
    forget(fleet)
    assert deploy.main(["-i", str(inventory), "--quiet"]) == 0
    for host in fleet.hosts.values():
        assert host.writes() == [], f"{host.name}: a no-change deploy wrote"
        restarts = [line for line in host.lines() if " restart " in f" {line} "]
        assert restarts == [], f"{host.name}: a no-change deploy restarted"
    counts = per_host(fleet)
    assert max(counts.values()) <= DEPLOY_TARGET, counts


def test_verify_reads_each_host_in_few_round_trips(deployed: tuple[Path, Fleet]) -> None:
    inventory, fleet = deployed
    forget(fleet)
    assert verify.main(["-i", str(inventory), "--quiet", "--no-smoke-test"]) == 0
    counts = per_host(fleet)
    assert max(counts.values()) <= VERIFY_TARGET, counts
