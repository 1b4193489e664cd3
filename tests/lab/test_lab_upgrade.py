"""An upgrade on the lab, one minor release: v1.36.3 deployed from scratch on purged hosts (a
downgrade is refused, so the lab's v1.37.2 cannot go back), then `runbooks.upgrade` to the
lab inventory's v1.37.2 with every node's load balancer probed; verify OK at the end.

Runs after every other lab test (tests/lab/conftest.py): it purges the hosts, and the cluster
it leaves is the lab inventory's, upgraded. v1.36.3 (lab.yaml's upgrade_from) is built in the
background from the start of the session; here the test waits for it if it must.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lab_support import admin_kubectl, inventory_with, verifies_ok_within

from runbooks import deploy, upgrade

OLD = "1.36.3"
NEW = "1.37.2"


@pytest.fixture(scope="module")
def old_cluster(lab, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    """The lab's hosts purged and v1.36.3 deployed on them from scratch (same PKI state)."""
    lab.serve_kubernetes(f"v{OLD}")
    copy = tmp_path_factory.mktemp("upgrade")
    inventory_with(lab_inventory, copy, "cluster", kubernetes_version=OLD)
    defaults = yaml.safe_load((copy / "defaults.yaml").read_text())
    packages = defaults["data"]["kubernetes"]["packages"]
    for role, names in packages.items():
        packages[role] = [name.replace(f"={NEW}-", f"={OLD}-") for name in names]
    (copy / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    lab.down(purge=True)
    lab.up()
    lab.serve_kubernetes(f"v{OLD}")  # `up` served the inventory's release alone
    assert deploy.main(["-i", str(copy), "--quiet"]) == 0
    return copy


def kubelet_versions(lab) -> list[str]:  # noqa: ANN001
    nodes = json.loads(admin_kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    return sorted(n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes)


def test_an_upgrade_of_one_minor_release_keeps_the_api_available_and_verifies_ok(
    lab,  # noqa: ANN001
    lab_inventory: Path,
    old_cluster: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert kubelet_versions(lab) == [f"v{OLD}"] * 3
    capsys.readouterr()
    assert upgrade.main(["-i", str(lab_inventory), "--yes"]) == 0
    out = capsys.readouterr().out
    probed = [line for line in out.splitlines() if "% available" in line]
    with capsys.disabled():  # the measured figures, in the test log
        print("\n".join(["", "API availability through each node's load balancer:", *probed]))
    assert len(probed) == 3, out
    assert kubelet_versions(lab) == [f"v{NEW}"] * 3
    assert verifies_ok_within(lab_inventory, 180)
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0  # nothing left to converge
