"""The lab itself: idempotent up, isolated hosts, faults, and a down that leaves nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lab import hosts
from lab.machine import Lab


def nspawn_pids(lab: Lab) -> dict[str, int | None]:
    return {h.name: hosts.nspawn_pid(lab.settings, h) for h in lab.settings.hosts}


def leftovers(lab: Lab) -> list[str]:
    """Anything of this lab still on the machine: processes, mounts, links, the server, cgroups.

    Only the lab's own: a mount point under its state directory, its bridge and the veths of
    its machines, nspawn processes on its hosts' roots, its repository server, its hosts'
    cgroups.
    """
    found = []
    state = str(lab.settings.state_dir)
    mounts = Path("/proc/mounts").read_text()
    found += [line for line in mounts.splitlines() if line.split()[1].startswith(state + "/")]
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    )
    found += [
        link["ifname"]
        for link in links
        if link["ifname"] == lab.settings.bridge
        or link.get("master") == lab.settings.bridge
        or link["ifname"].startswith("vb-kube")
    ]
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = proc.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ours = f"-D {state}/hosts/" in cmdline
        if (
            "systemd-nspawn" in cmdline and ours
        ) or "http.server 8080 --bind 10.240.0.1" in cmdline:
            found.append(cmdline)
    found += [str(d) for d in Path("/sys/fs/cgroup").glob("*/**/kubenorn-lab/*") if d.is_dir()]
    return found


def test_up_on_a_running_lab_changes_nothing(lab: Lab) -> None:
    before = nspawn_pids(lab)
    lab.up()
    assert nspawn_pids(lab) == before
    assert all(pid is not None for pid in before.values())
    assert all(row.running and row.ssh_ok for row in lab.status())


def test_each_host_has_its_own_key_the_lab_source_only_and_no_route_out(lab: Lab) -> None:
    keys = {hosts.host_public_key(hosts.paths(lab.settings, h).root) for h in lab.settings.hosts}
    assert len(keys) == len(lab.settings.hosts)
    sources = lab.ssh(
        "kube.node02",
        ["sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null"],
    ).stdout
    assert sources.strip() == "deb [trusted=yes] http://10.240.0.1:8080/trixie ./"
    routes = lab.ssh("kube.node02", ["ip", "route"]).stdout
    assert "default" not in routes
    assert "10.240.0.0/24" in routes


def test_a_stopped_host_boots_again(lab: Lab) -> None:
    lab.stop_host("kube.node02")
    rows = {row.name: row for row in lab.status()}
    assert not rows["kube.node02"].running and not rows["kube.node02"].ssh_ok
    assert rows["kube.node01"].ssh_ok
    lab.start_host("kube.node02")
    assert lab.ssh("kube.node02", ["true"]).returncode == 0


def test_down_leaves_nothing_and_up_restores(lab: Lab) -> None:
    lab.down()
    try:
        assert leftovers(lab) == []
    finally:
        lab.up()  # the next test needs the lab, whatever this one found
    assert all(row.running and row.ssh_ok for row in lab.status())
    assert lab.ssh(
        "kube.controller01", ["systemctl", "is-system-running", "--wait"]
    ).stdout.strip() in (
        "running",
        "degraded",
    )


def test_a_purge_resets_the_hosts_but_keeps_their_identity(lab: Lab) -> None:
    def keys() -> dict[str, str]:
        return {
            h.name: hosts.host_public_key(hosts.paths(lab.settings, h).root)
            for h in lab.settings.hosts
        }

    lab.ssh("kube.node01", ["touch", "/root/left-behind"])
    before = keys()
    lab.down(purge=True)
    lab.up()
    assert keys() == before
    assert lab.ssh("kube.node01", ["test", "-e", "/root/left-behind"]).returncode == 1
