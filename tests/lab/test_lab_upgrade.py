"""An upgrade on the lab, one minor release: v1.36.3 deployed from scratch on purged hosts (a
downgrade is refused, so the lab's v1.37.2 cannot go back), then `runbooks.upgrade` to the
lab inventory's v1.37.2 with every node's load balancer probed; verify OK at the end. Then a
reset, compared with a survey of the hosts taken before that first deploy, and a deploy from
scratch again.

Runs after every other lab test (tests/lab/conftest.py): it purges the hosts, and the cluster
it leaves is the lab inventory's, upgraded. v1.36.3 (lab.yaml's upgrade_from) is built in the
background from the start of the session; here the test waits for it if it must.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from lab_support import admin_kubectl, inventory_with, verifies_ok_within

from runbooks import deploy, reset, upgrade

OLD = "1.36.3"
NEW = "1.37.2"


@pytest.fixture(scope="module")
def old_cluster(lab, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: ANN001  # type: ignore[type-arg]
    """The lab's hosts purged, surveyed, and v1.36.3 deployed on them from scratch (same PKI
    state): the survey."""
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
    before = survey(lab)
    assert deploy.main(["-i", str(copy), "--quiet"]) == 0
    return before


def kubelet_versions(lab) -> list[str]:  # noqa: ANN001
    nodes = json.loads(admin_kubectl(lab, "get", "nodes", "-o", "json"))["items"]
    return sorted(n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes)


def test_an_upgrade_of_one_minor_release_keeps_the_api_available_and_verifies_ok(
    lab,  # noqa: ANN001
    lab_inventory: Path,
    old_cluster: dict,  # type: ignore[type-arg]
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


def test_a_reset_gives_the_hosts_back_as_before_the_first_deploy_and_a_deploy_works_again(
    lab,  # noqa: ANN001
    lab_inventory: Path,
    old_cluster: dict,  # type: ignore[type-arg]
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert reset.main(["-i", str(lab_inventory), "--yes", "--purge-data", "--quiet"]) == 0
    after = survey(lab)
    found = {section: differences(old_cluster, after, section) for section in SECTIONS}
    with capsys.disabled():  # the survey's findings, in the test log
        print(f"\nafter reset --purge-data, against the survey before the first deploy: {found}")
    assert {section: hosts for section, hosts in found.items() if hosts} == {}
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    assert verifies_ok_within(lab_inventory, 180)


# One command per host: what a reset must give back, section by section.
SURVEY = r"""
section() { printf '== %s\n' "$1"; }
section active; systemctl list-units --state=active --plain --no-legend --no-pager \
  --type=service,slice,mount,socket | awk '{print $1}' | sort
section unit-files; systemctl list-unit-files --no-legend --no-pager | awk '{print $1, $2}' | sort
section files; find /etc/kubernetes /etc/etcd /var/lib/etcd /var/lib/kubelet /var/lib/kubenorn \
  /etc/cni/net.d /etc/systemd/system /run/systemd/system /var/log/kubernetes \
  -xdev -printf '%p %y %m %u\n' 2>/dev/null | sort
section hosts; cat /etc/hosts
section routes; ip -4 route show | sort
section users; getent passwd | cut -d: -f1 | sort
section groups; getent group | cut -d: -f1 | sort
section packages; dpkg-query -W -f '${Package}\n' | sort
section links; ip -br link | awk '{print $1}' | sort
section netfilter; { iptables-save; ip6tables-save; } 2>/dev/null | grep '^-A' | sort
"""
SECTIONS = re.findall(r"^section (\S+);", SURVEY, re.MULTILINE)  # each as before the first deploy


def survey(lab) -> dict[str, dict[str, set[str]]]:  # noqa: ANN001
    """Each lab host's survey: section -> its lines."""
    taken = {}
    for host in lab.settings.hosts:
        out = lab.ssh(host.name, ["sh", "-c", SURVEY], timeout=120).stdout
        sections: dict[str, set[str]] = {}
        for part in out.split("== ")[1:]:
            name, _, body = part.partition("\n")
            sections[name] = set(body.splitlines())
        taken[host.name] = sections
    return taken


def differences(before: dict, after: dict, section: str) -> dict[str, tuple[list, list]]:  # type: ignore[type-arg]
    """Per host, what `section` gained and lost."""
    found = {}
    for host in before:
        gained = sorted(after[host][section] - before[host][section])
        lost = sorted(before[host][section] - after[host][section])
        if gained or lost:
            found[host] = (gained, lost)
    return found
