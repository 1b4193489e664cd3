"""The remote primitives against the six real lab hosts."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest
from nornir.core import Nornir

from kubenorn.nornir_setup import init_nornir
from runbooks import facts as facts_runbook
from tasks.files import ensure_file, temp_path
from tasks.ssh import run_command

HOSTS = [
    "kube.controller01",
    "kube.controller02",
    "kube.controller03",
    "kube.node01",
    "kube.node02",
    "kube.node03",
]
TARGET = "/tmp/kubenorn-test.txt"


def remote_stat(lab, host: str, path: str) -> str:  # noqa: ANN001
    result = lab.ssh(host, ["stat", "-c", "%a %U %G", path])
    return result.stdout.strip() if result.returncode == 0 else ""


def remote_cat(lab, host: str, path: str) -> bytes:  # noqa: ANN001
    return lab.ssh(host, ["cat", path]).stdout.encode()


def test_a_command_runs_on_all_six_hosts(nr: Nornir) -> None:
    results = nr.run(task=run_command, argv=["cat", "/proc/sys/kernel/hostname"])
    assert sorted(results) == HOSTS
    assert not results.failed
    for host, result in results.items():
        assert getattr(result[0], "rc", None) == 0
        stdout = result[0].stdout
        assert stdout is not None and stdout.strip() == host


def test_exit_status_and_stderr_come_back(nr: Nornir) -> None:
    argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    results = nr.filter(name="kube.node01").run(task=run_command, argv=argv, ok_codes=(3,))
    result = results["kube.node01"][0]
    assert (getattr(result, "rc", None), result.stdout, result.stderr) == (3, "out\n", "err\n")
    failed = nr.filter(name="kube.node01").run(task=run_command, argv=argv)
    assert failed.failed
    assert "exited 3: err" in str(failed["kube.node01"][0].exception)


def test_put_twice_changes_then_not(nr: Nornir, lab) -> None:  # noqa: ANN001
    lab.ssh("kube.node01", ["rm", "-f", TARGET])
    content = f"written at {time.time()}\n"
    first = nr.run(task=ensure_file, path=TARGET, content=content, mode="0640")
    second = nr.run(task=ensure_file, path=TARGET, content=content, mode="0640")
    assert not first.failed and not second.failed
    assert all(r.changed for r in first.values())
    assert not any(r.changed for r in second.values())
    assert all(r[0].diff == "" for r in second.values())
    assert remote_cat(lab, "kube.node02", TARGET) == content.encode()


def test_dry_run_shows_the_diff_and_writes_nothing(lab, lab_inventory: Path) -> None:  # noqa: ANN001
    lab.ssh("kube.node02", ["sh", "-c", f"echo old > {TARGET}"])
    dry = init_nornir(lab_inventory, dry_run=True).filter(name="kube.node02")
    result = dry.run(task=ensure_file, path=TARGET, content="new\n")["kube.node02"][0]
    dry.close_connections()
    assert result.changed
    assert "-old\n+new\n" in result.diff
    assert remote_cat(lab, "kube.node02", TARGET) == b"old\n"


def test_mode_and_owner_are_applied(nr: Nornir, lab) -> None:  # noqa: ANN001
    one = nr.filter(name="kube.controller01")
    one.run(task=ensure_file, path=TARGET, content="x\n", mode="0600", owner="root")
    result = one.run(
        task=ensure_file, path=TARGET, content="x\n", mode="0640", owner="nobody", group="nogroup"
    )
    assert result["kube.controller01"][0].changed
    assert "mode 0600 -> 0640" in result["kube.controller01"][0].diff
    assert remote_stat(lab, "kube.controller01", TARGET) == "640 nobody nogroup"


PUT_SCRIPT = """
import sys
from kubenorn.nornir_setup import init_nornir
from tasks.files import ensure_file
nr = init_nornir(__import__("pathlib").Path(sys.argv[1])).filter(name="kube.node03")
nr.run(task=ensure_file, path=sys.argv[2], content=b"N" * (256 * 1024 * 1024))
"""


def test_a_put_killed_midway_leaves_the_old_file(lab, lab_inventory: Path) -> None:  # noqa: ANN001
    lab.ssh("kube.node03", ["sh", "-c", f"echo old > {TARGET}"])
    writer = subprocess.Popen([sys.executable, "-c", PUT_SCRIPT, str(lab_inventory), TARGET])
    temp = temp_path(TARGET)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not remote_stat(lab, "kube.node03", temp):
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert remote_stat(lab, "kube.node03", temp), "the put never started writing"
    assert remote_cat(lab, "kube.node03", TARGET) == b"old\n"
    # A re-run repairs: it replaces the stale temporary file and completes the put.
    nr = init_nornir(lab_inventory).filter(name="kube.node03")
    result = nr.run(task=ensure_file, path=TARGET, content="new\n")
    nr.close_connections()
    assert not result.failed
    assert remote_cat(lab, "kube.node03", TARGET) == b"new\n"
    assert remote_stat(lab, "kube.node03", temp) == ""


def inventory_copy(source: Path, destination: Path) -> Path:
    for name in ("hosts.yaml", "groups.yaml", "defaults.yaml", "id_ed25519", "known_hosts"):
        shutil.copy2(source / name, destination / name)
    return destination


def test_a_changed_host_key_fails_only_that_host(lab_inventory: Path, tmp_path: Path) -> None:
    inventory = inventory_copy(lab_inventory, tmp_path)
    known = paramiko.HostKeys(str(inventory / "known_hosts"))
    impostor = paramiko.Ed25519Key.from_private_key_file(str(inventory / "id_ed25519"))
    for name in ("10.240.0.22", "kube.node02"):
        if name in known:
            known[name] = {impostor.get_name(): impostor}
    known.save(str(inventory / "known_hosts"))
    nr = init_nornir(inventory)
    results = nr.run(task=run_command, argv=["true"])
    nr.close_connections(on_good=True, on_failed=True)
    assert sorted(results.failed_hosts) == ["kube.node02"]
    message = str(results["kube.node02"][0].exception)
    assert "kube.node02" in message and "CHANGED" in message
    assert impostor.fingerprint in message
    assert "SHA256:" in message.split("presented", 1)[1]


def test_an_unknown_host_key_fails_only_that_host(lab_inventory: Path, tmp_path: Path) -> None:
    inventory = inventory_copy(lab_inventory, tmp_path)
    lines = (inventory / "known_hosts").read_text().splitlines()
    kept = [line for line in lines if "10.240.0.23" not in line.split()[0]]
    (inventory / "known_hosts").write_text("\n".join(kept) + "\n")
    nr = init_nornir(inventory)
    results = nr.run(task=run_command, argv=["true"])
    nr.close_connections(on_good=True, on_failed=True)
    assert sorted(results.failed_hosts) == ["kube.node03"]
    message = str(results["kube.node03"][0].exception)
    assert "not in" in message and "SHA256:" in message and "10.240.0.23" in message


def test_a_stopped_host_fails_only_that_host(lab, lab_inventory: Path) -> None:  # noqa: ANN001
    lab.stop_host("kube.node03")
    try:
        nr = init_nornir(lab_inventory)
        results = nr.run(task=run_command, argv=["true"])
        nr.close_connections(on_good=True, on_failed=True)
    finally:
        lab.start_host("kube.node03")
    assert sorted(results.failed_hosts) == ["kube.node03"]
    assert "kube.node03" in str(results["kube.node03"][0].exception)
    assert "cannot connect" in str(results["kube.node03"][0].exception)


def test_a_package_installs_from_the_lab_repository(nr: Nornir, lab) -> None:  # noqa: ANN001
    node = nr.filter(name="kube.node01")
    node.run(task=run_command, argv=["apt-get", "update", "-q"], timeout=300)
    node.run(task=run_command, argv=["apt-get", "remove", "-y", "-q", "cron"], timeout=300)
    installed = node.run(
        task=run_command, argv=["apt-get", "install", "-y", "-q", "cron"], timeout=300
    )
    assert not installed.failed, installed["kube.node01"][0].exception
    policy = lab.ssh("kube.node01", ["apt-cache", "policy", "cron"]).stdout
    assert "http://10.240.0.1:8080" in policy
    assert lab.ssh("kube.node01", ["dpkg-query", "-W", "cron"]).returncode == 0


def test_facts_runbook_gives_an_ok_record_per_host(lab_inventory: Path, tmp_path: Path) -> None:
    report = tmp_path / "facts.json"
    assert facts_runbook.main(["-i", str(lab_inventory), "--json", str(report)]) == 0
    document = json.loads(report.read_text())
    records = [r for r in document["records"] if r["task"] == "facts"]
    assert sorted(r["host"] for r in records) == HOSTS
    assert {r["status"] for r in records} == {"ok"}
    assert {r["data"]["package_manager"] for r in records} == {"apt"}
    assert {r["data"]["os_id"] for r in records} == {"debian"}
    assert document["run"]["exit_code"] == 0


@pytest.mark.parametrize("host", ["kube.controller01"])
def test_facts_name_the_host_and_its_lab_address(nr: Nornir, host: str) -> None:
    from tasks.facts import gather_facts

    facts = nr.filter(name=host).run(task=gather_facts)[host][0].result
    assert facts.hostname == host
    assert "10.240.0.11" in facts.addresses
    assert facts.init_system == "systemd"
