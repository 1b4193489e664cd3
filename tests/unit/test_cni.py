"""The node's CNI configuration, written by the runtime step: given the host's files, expect
these commands, this end state and this report; nothing restarts for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fakes import FakeFile, Fleet, run_on
from nornir.core import Nornir
from pki_support import INVENTORIES

from tasks.runtime import CNI_CONFIG, CNI_DIR, ensure_cni_config

NODE = "h2"
INSTALL_D = f"install -d -m 0755 -o root -g root -- {CNI_DIR}"
READS = ["getent passwd", "getent group"]  # the accounts, read once per connection
HOSTS = {
    "h1": {"hostname": "192.0.2.1", "groups": ["etcd", "controllers"]},
    NODE: {"hostname": "192.0.2.2", "groups": ["nodes"], "pod_cidr": "10.200.2.0/24"},
}


def cni_inventory(directory: Path, version: str) -> Path:
    """A cluster of the fake hosts: h1 a controller and etcd member, h2 a node."""
    directory.mkdir(parents=True)
    defaults = yaml.safe_load((INVENTORIES / "good" / "defaults.yaml").read_text())
    defaults["data"]["ssh"] = {"command_timeout": 5, "verify_host_keys": False}
    defaults["data"]["cluster"]["kubernetes_version"] = version
    hosts = {
        name: {
            "hostname": host["hostname"],
            "groups": host["groups"],
            "data": {"address": host["hostname"]}
            | ({"pod_cidr": host["pod_cidr"]} if "pod_cidr" in host else {}),
        }
        for name, host in HOSTS.items()
    }
    (directory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    (directory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (directory / "groups.yaml").write_text((INVENTORIES / "good" / "groups.yaml").read_text())
    return directory


def conflist(subnet: str) -> bytes:
    text = (INVENTORIES.parent / "golden" / "cni-lab-node01.conflist").read_text()
    return text.replace("10.200.1.0/24", subnet).encode()


@dataclass
class Case:
    """In `version`, given `before` at CNI_CONFIG, the step runs `commands` and leaves `after`."""

    version: str
    before: bytes | None
    changed: bool
    commands: list[str]
    after: bytes | None
    diff_has: tuple[str, ...] = ()


CASES = {
    "written on a new node": Case(
        "1.37.2",
        None,
        True,
        [INSTALL_D, *READS],
        conflist("10.200.2.0/24"),
        (f"+++ {CNI_CONFIG}", '"subnet": "10.200.2.0/24"'),
    ),
    "in place: nothing to do": Case(
        "1.37.2", conflist("10.200.2.0/24"), False, READS, conflist("10.200.2.0/24")
    ),
    "the node's range changed": Case(
        "1.37.2",
        conflist("10.200.9.0/24"),
        True,
        READS,
        conflist("10.200.2.0/24"),
        ('-        "ranges": [[{"subnet": "10.200.9.0/24"}]]', '"subnet": "10.200.2.0/24"'),
    ),
    "removed where the profile wants none": Case(
        "1.6.0",
        conflist("10.200.2.0/24"),
        True,
        [f"rm -f -- {CNI_CONFIG}"],
        None,
        (f"--- {CNI_CONFIG}", "+++ /dev/null"),
    ),
    "nothing to remove": Case("1.6.0", None, False, [], None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_ensure_cni_config(
    make_nr: Callable[..., Nornir], fleet: Fleet, tmp_path: Path, case: Case
) -> None:
    host = fleet[NODE]
    host.coreutils = True
    if case.before is not None:
        host.files[CNI_DIR] = FakeFile(b"", 0o755, directory=True)
        host.files[CNI_CONFIG] = FakeFile(case.before, 0o600)
    nr = make_nr(cni_inventory(tmp_path / "cluster", case.version))
    result = run_on(nr, NODE, ensure_cni_config)
    assert not result.failed, result[0].exception
    assert result[0].changed is case.changed
    for text in case.diff_has:
        assert text in (result[0].diff or ""), result[0].diff
    assert host.lines() == case.commands  # no systemctl: containerd reads the directory itself
    after = host.files.get(CNI_CONFIG)
    assert (after.data if after else None) == case.after
    if case.after is not None:
        assert json.loads(case.after)["plugins"][0]["ipam"]["ranges"] == [
            [{"subnet": "10.200.2.0/24"}]
        ]
        assert after is not None and (after.mode, after.uid) == (0o600, 0)  # CIS 1.1.9
    again = run_on(nr, NODE, ensure_cni_config)[0]
    assert not again.changed


def test_a_dry_run_shows_the_file_and_writes_nothing(
    make_nr: Callable[..., Nornir], fleet: Fleet, tmp_path: Path
) -> None:
    dry = make_nr(cni_inventory(tmp_path / "cluster", "1.37.2"), dry_run=True)
    result = run_on(dry, NODE, ensure_cni_config)[0]
    assert result.changed and f"{CNI_DIR}/: created" in (result.diff or "")
    assert '"subnet": "10.200.2.0/24"' in (result.diff or "")
    assert fleet[NODE].lines() == [] and fleet[NODE].writes() == []
    assert CNI_CONFIG not in fleet[NODE].files
