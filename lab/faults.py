"""Faults injected on the lab from outside the product, and what kubenorn says about each.

Each scenario breaks one thing with the lab's own means (a signal, a blackhole route inside a
host, a stopped unit, a corrupted file, a host powered off, a wrong host key), runs verify (and,
where kubenorn repairs, deploy), brings the cluster back, and returns one row of the table that
bench/faults.py prints and tests/lab/test_lab_faults.py asserts on:

    fault | verify exit | named (host check) | time to notice | lost | recovered by | time

Every scenario restores the cluster in a `finally`, so the next one starts from a healthy lab.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from kubenorn.cluster import Cluster, load_cluster
from kubenorn.etcd_client import Endpoint, EtcdUnavailable, endpoints
from kubenorn.etcd_drill import Writer, leader_of, lost_writes
from kubenorn.kill_point import KILL_AT_ENV
from kubenorn.nornir_setup import REPO_ROOT, init_nornir
from kubenorn.pki.builders import leaf_certificate
from kubenorn.pki.placement import placements
from kubenorn.pki.plan import certificates
from kubenorn.pki.store import Store
from lab.machine import Lab
from runbooks import deploy, preflight, verify

NOTICE_TIMEOUT = 60.0  # seconds verify may take to name a fault (a node goes NotReady in ~40 s)
RECOVERY_TIMEOUT = 180.0


@dataclass
class FaultRow:
    fault: str
    verify_exit: int
    named: str  # "HOST CHECK" of the first finding that named the faulty host; "" if none
    noticed_s: float | None  # from the injection until verify named it
    lost: str  # acknowledged writes lost, where writes were made; "-" otherwise
    recovered_by: str
    recovered_s: float | None  # from the repair (or the injection) until verify was OK
    findings: list[dict[str, Any]]

    def cells(self) -> list[str]:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        return [
            self.fault,
            str(self.verify_exit),
            self.named or "-",
            seconds(self.noticed_s),
            self.lost,
            self.recovered_by,
            seconds(self.recovered_s),
        ]


HEADER = ["fault", "verify exit", "named", "time to notice", "lost", "recovered by", "time"]


def run_verify(inventory: Path, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    """verify without the workload smoke test (faults here are below it), its findings."""
    argv = ["-i", str(inventory), "--quiet", "--no-smoke-test", *extra]
    return with_findings(verify.main, argv)


def with_findings(
    main: Callable[[list[str]], int], argv: list[str]
) -> tuple[int, list[dict[str, Any]]]:
    """A runbook's exit code and the findings of its JSON report (`--json`)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        code = main([*argv, "--json", str(report)])
        findings = json.loads(report.read_text()).get("findings", []) if report.exists() else []
    return code, findings


def naming(findings: list[dict[str, Any]], host: str) -> str:
    """ "HOST CHECK" of the first finding that is not OK about `host`."""
    for finding in findings:
        if finding["host"] == host and finding["status"] != "OK":
            return f"{host} {finding['check']}"
    return ""


def notice(inventory: Path, host: str) -> tuple[int, str, float | None, list[dict[str, Any]]]:
    """verify again and again until a finding names `host`; its exit, the naming, the time."""
    started = time.monotonic()
    while True:
        code, findings = run_verify(inventory)
        named = naming(findings, host)
        elapsed = time.monotonic() - started
        if named or elapsed > NOTICE_TIMEOUT:
            return code, named, elapsed if named else None, findings
        time.sleep(1.0)


def until_ok(inventory: Path, timeout: float = RECOVERY_TIMEOUT) -> float | None:
    """Seconds until verify exits 0 with nothing done to the cluster; None if it did not."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if run_verify(inventory)[0] == 0:
            return time.monotonic() - started
        time.sleep(1.0)
    return None


def address(cluster: Cluster, host: str) -> str:
    return str(cluster.host(host).address)


@contextmanager
def partitioned(lab: Lab, cluster: Cluster, host: str, peers: list[str]) -> Iterator[None]:
    """`host` and `peers` cannot reach each other (a blackhole route on each side); healed
    on exit. The control machine still reaches every host, as a monitoring host would."""
    pairs = [(host, peer) for peer in peers] + [(peer, host) for peer in peers]
    try:
        for source, target in pairs:
            lab.ssh(source, ["ip", "route", "add", "blackhole", f"{address(cluster, target)}/32"])
        yield
    finally:
        for source, target in pairs:
            lab.ssh(source, ["ip", "route", "del", "blackhole", f"{address(cluster, target)}/32"])


def etcd_leader_killed_under_writes(lab: Lab, inventory: Path) -> FaultRow:
    """SIGKILL the etcd leader while a writer puts numbered keys; none acknowledged may be lost.
    systemd restarts the member (Restart=on-failure), so no kubenorn action is needed."""
    cluster = load_cluster(inventory)
    members = endpoints(cluster)
    leader, by_member = leader_of(members)
    victim = next(
        m.host.name for m in cluster.etcd.members if m.client_url == by_member[leader].url
    )
    prefix = f"/kubenorn-fault/{int(time.time())}/"
    writer = Writer(members, prefix)
    writer.start()
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        kill = ["systemctl", "kill", "--signal=SIGKILL", "--kill-who=main", "etcd.service"]
        lab.ssh(victim, kill)
        code, findings = run_verify(inventory)
        named = naming(findings, victim)
        noticed = time.monotonic() - killed if named else None
        time.sleep(3.0)
    finally:
        writer.stop()
    recovered = until_ok(inventory)
    survivor = endpoints(cluster)[0]
    lost = lost_writes(writer.acked, survivor.range_prefix(prefix), prefix)
    survivor.delete_prefix(prefix)
    gap = writer.first_ack_after(killed)
    lost_text = f"{len(lost)} of {len(writer.acked)} acknowledged writes"
    if gap is not None:
        lost_text += f" (writes resumed after {gap - killed:.2f} s)"
    return FaultRow(
        f"etcd leader {victim} SIGKILL under writes",
        code,
        named,
        noticed,
        lost_text,
        "nothing: systemd restarts etcd",
        recovered,
        findings,
    )


def minority_refuses_writes(endpoint: Endpoint) -> bool:
    try:
        endpoint.put("/kubenorn-fault/minority", "must not be acknowledged")
    except EtcdUnavailable:
        return True
    return False


def etcd_member_partitioned(
    lab: Lab, inventory: Path, victim: str = "kube.controller03"
) -> FaultRow:
    """One etcd member cut off from the other two: it must refuse writes, verify must name it,
    and after healing it rejoins with no kubenorn action."""
    cluster = load_cluster(inventory)
    peers = [m.host.name for m in cluster.etcd.members if m.host.name != victim]
    with partitioned(lab, cluster, victim, peers):
        code, named, noticed, findings = notice(inventory, victim)
        urls = {m.host.name: m.client_url for m in cluster.etcd.members}
        minority = next(e for e in endpoints(cluster, timeout=5.0) if e.url == urls[victim])
        refused = minority_refuses_writes(minority)
    recovered = until_ok(inventory)
    leftover = endpoints(cluster)[0].range_prefix("/kubenorn-fault/minority")
    lost = "minority refused writes" if refused and not leftover else "MINORITY ACCEPTED A WRITE"
    return FaultRow(
        f"etcd member {victim} partitioned from the others",
        code,
        named,
        noticed,
        lost,
        "healing the network: no kubenorn action",
        recovered,
        findings,
    )


# The member's data directory moved onto a small tmpfs, then filled (etcd's data is copied in
# with etcd stopped). $1: the data directory; $2: bytes the tmpfs holds beyond the data.
SMALL_DISK = r"""
set -e
data=$1 room=$2
systemctl stop etcd.service
mv -T -- "$data" "$data.fault-aside"
mkdir -m 0700 -- "$data"
size=$(( $(du -sb -- "$data.fault-aside" | cut -f1) + room ))
mount -t tmpfs -o "size=$size,mode=0700" kubenorn-fault-disk "$data"
cp -a -- "$data.fault-aside/." "$data/"
chown etcd:etcd -- "$data"
systemctl start etcd.service
free=$(df -P -B1 -- "$data" | awk 'NR == 2 { print $4 }')
fallocate -l $(( free - 1000000 )) -- "$data/kubenorn-fault-filler"
"""
# Back on the host's own disk, with what the member wrote meanwhile; $1: the data directory.
BIG_DISK = r"""
set -e
data=$1
systemctl stop etcd.service
rm -f -- "$data/kubenorn-fault-filler"
rm -rf -- "$data.fault-aside"
mkdir -m 0700 -- "$data.fault-back"
cp -a -- "$data/." "$data.fault-back/"
umount -- "$data"
rmdir -- "$data"
mv -T -- "$data.fault-back" "$data"
chown etcd:etcd -- "$data"
systemctl reset-failed etcd.service
systemctl start etcd.service
"""
FILL_VALUE = "x" * 900_000  # under etcd's 1.5 MiB request limit once base64'd
# What the tmpfs holds beyond the member's data: once the filler goes, the member must catch
# up on the fill (bbolt grows its file by doubling, the WAL by 64 MB segments); 80 MB was not
# enough and left the member crash-looping on a full disk.
SMALL_DISK_ROOM = 400_000_000


def etcd_disk_full(lab: Lab, inventory: Path, victim: str = "kube.controller03") -> FaultRow:
    """One member's data directory on a full filesystem, then ~40 MB written through another:
    verify must name the member's disk; freeing the space must bring it back. The member's
    data goes back to the host's own disk afterwards, with what it wrote meanwhile."""
    cluster = load_cluster(inventory)
    data_dir = init_nornir(inventory).inventory.hosts[victim]["etcd"]["data_dir"]
    victim_url = next(m.client_url for m in cluster.etcd.members if m.host.name == victim)
    writer = next(e for e in endpoints(cluster, timeout=10.0) if e.url != victim_url)
    try:
        lab.ssh(victim, ["sh", "-c", SMALL_DISK, "sh", data_dir, str(SMALL_DISK_ROOM)], timeout=120)
        written = fill(writer, count=45)
        code, named, noticed, findings = notice(inventory, victim)
        freed = time.monotonic()
        lab.ssh(victim, ["rm", "-f", f"{data_dir}/kubenorn-fault-filler"])
        recovered = until_ok(inventory, timeout=90.0)
        by = "freeing the space: no kubenorn action"
        if recovered is None:  # systemd gave up restarting it: deploy starts what it manages
            deploy.main(["-i", str(inventory), "--quiet"])
            recovered, by = until_ok(inventory), "freeing the space, then deploy"
        recovered_s = None if recovered is None else time.monotonic() - freed
        survived = kept(writer, written)
    finally:
        lab.ssh(victim, ["sh", "-c", BIG_DISK, "sh", data_dir], timeout=180)
        writer.delete_prefix("/kubenorn-fault/fill/")
    assert until_ok(inventory) is not None, f"{victim}: not back on its own disk"
    return FaultRow(
        f"etcd data disk full on {victim}",
        code,
        named,
        noticed,
        f"0 of {written} acknowledged 0.9 MB writes" if survived else "ACKNOWLEDGED WRITES LOST",
        by,
        recovered_s,
        findings,
    )


def fill(writer: Endpoint, count: int) -> int:
    """Put `count` large values (through a member on a disk with room); how many were
    acknowledged. A put refused while the cluster elects a new leader is not retried."""
    written = 0
    for number in range(count):
        try:
            writer.put(f"/kubenorn-fault/fill/{number:03d}", FILL_VALUE)
            written += 1
        except EtcdUnavailable:
            time.sleep(1.0)
    return written


def kept(writer: Endpoint, written: int) -> bool:
    """Whether at least the `written` acknowledged fill values are all still there."""
    return len(writer.range_prefix("/kubenorn-fault/fill/")) >= written


def node_partitioned(lab: Lab, inventory: Path, victim: str = "kube.node03") -> FaultRow:
    """A node cut off from every controller: verify names it, and it comes back on healing."""
    cluster = load_cluster(inventory)
    with partitioned(lab, cluster, victim, [h.name for h in cluster.controllers]):
        code, named, noticed, findings = notice(inventory, victim)
    recovered = until_ok(inventory)
    return FaultRow(
        f"node {victim} partitioned from the controllers",
        code,
        named,
        noticed,
        "-",
        "healing the network: no kubenorn action",
        recovered,
        findings,
    )


def power_cycle(lab: Lab, inventory: Path) -> FaultRow:
    """Every host stopped at once and booted again: the cluster must come back by itself."""
    lab.down()
    started = time.monotonic()
    lab.up()
    recovered = until_ok(inventory)
    code, findings = run_verify(inventory)
    return FaultRow(
        "power cycle of every host",
        code,
        "",
        None,
        "-",
        "nothing: units start at boot",
        None if recovered is None else time.monotonic() - started,
        findings,
    )


def repaired_by_deploy(
    lab: Lab, inventory: Path, fault: str, host: str, inject: Callable[[], None]
) -> FaultRow:
    """Inject, let verify name `host`, then deploy (what kubenorn manages, it repairs)."""
    inject()
    try:
        code, named, noticed, findings = notice(inventory, host)
    finally:
        repaired = time.monotonic()
        deployed = deploy.main(["-i", str(inventory), "--quiet"])
    recovered = until_ok(inventory)
    by = "deploy" if deployed == 0 else f"deploy (exit {deployed})"
    return FaultRow(
        fault,
        code,
        named,
        noticed,
        "-",
        by,
        None if recovered is None else time.monotonic() - repaired,
        findings,
    )


def apiserver_stopped(lab: Lab, inventory: Path, host: str = "kube.controller02") -> FaultRow:
    def inject() -> None:
        lab.ssh(host, ["systemctl", "stop", "kube-apiserver.service"])

    return repaired_by_deploy(lab, inventory, f"kube-apiserver stopped on {host}", host, inject)


def component_config_corrupted(
    lab: Lab, inventory: Path, host: str = "kube.controller01"
) -> FaultRow:
    config = "/etc/kubernetes/kube-scheduler-config.yaml"

    def inject() -> None:
        lab.ssh(host, ["sh", "-c", f"echo 'garbage: [' >> {config}"])
        lab.ssh(host, ["systemctl", "restart", "kube-scheduler.service"])

    return repaired_by_deploy(lab, inventory, f"{config} corrupted on {host}", host, inject)


def wrong_host_key(lab: Lab, inventory: Path, host: str = "kube.node02") -> FaultRow:
    """The inventory's known_hosts holds another host's key for `host` (a reinstalled host, or
    a man in the middle): verify must name it and not trust the host."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "inventory"
        shutil.copytree(inventory, copy, ignore=shutil.ignore_patterns(".backups", ".restore"))
        cluster = load_cluster(copy)
        wrong = address(cluster, "kube.node01")
        entries = [
            line.split(maxsplit=1) for line in (copy / "known_hosts").read_text().splitlines()
        ]
        wrong_key = next(key for names, key in entries if wrong in names.split(","))
        target = address(cluster, host)
        rewritten = [
            f"{names} {wrong_key if target in names.split(',') else key}" for names, key in entries
        ]
        (copy / "known_hosts").write_text("\n".join(rewritten) + "\n")
        started = time.monotonic()
        code, findings = run_verify(copy)
        noticed = time.monotonic() - started
        named = naming(findings, host)
    recovered = until_ok(inventory)
    return FaultRow(
        f"wrong host key for {host} in known_hosts",
        code,
        named,
        noticed if named else None,
        "-",
        "the right known_hosts (kubenorn never trusts a changed key)",
        recovered,
        findings,
    )


# A certificate's validity moved, the clock left alone (the lab's hosts share the machine's):
# the cluster CA signs it for the same subject, names and key, valid only in the past or only
# from tomorrow on. Its `now` and lifetime in days.
SHIFTS = {
    "expired": (timedelta(days=-400), 30),
    "not yet valid": (timedelta(days=2), 365),
}


def shifted_certificate(cluster: Cluster, name: str, shift: str) -> bytes:
    """Certificate `name` of the state, issued again with its validity moved as SHIFTS says."""
    store = Store(cluster.pki.dir)
    spec = next(s for s in certificates(cluster) if s.name == name)
    key, ca = store.load_key(name), store.load_cert(spec.signer or name)
    ca_key = store.load_key(spec.signer or name)
    assert key is not None and ca is not None and ca_key is not None, f"{name}: no state"
    offset, days = SHIFTS[shift]
    now = datetime.now(UTC) + offset
    cert = leaf_certificate(spec, key.public_key(), ca, ca_key, days=days, now=now)
    return cert.public_bytes(Encoding.PEM)


def certificate_shifted_on_host(
    lab: Lab, inventory: Path, shift: str, host: str = "kube.controller02"
) -> FaultRow:
    """The etcd server certificate on `host` expired (or not valid yet); etcd reads it at each
    handshake, as when time passes. verify must name the host and the file; deploy puts the
    state's certificate back."""
    cluster = load_cluster(inventory)
    name = f"etcd-server-{host}"
    path = next(
        p.path
        for p in placements(cluster, cluster.host(host))
        if p.kind == "cert" and p.source == name
    )
    pem = shifted_certificate(cluster, name, shift).decode()

    def inject() -> None:
        lab.ssh(host, ["sh", "-c", f"cat > {path}.fault && mv {path}.fault {path}"], stdin=pem)

    return repaired_by_deploy(lab, inventory, f"{path} {shift} on {host}", host, inject)


def certificate_shifted_in_state(
    lab: Lab, inventory: Path, shift: str, host: str = "kube.node01"
) -> FaultRow:
    """`host`'s kubelet serving certificate in the PKI state (on the control machine) expired or not
    valid yet: preflight must name the host and the file before any host is touched, and
    deploy issues it again and distributes it."""
    cluster = load_cluster(inventory)
    name = f"kubelet-server-{host}"
    store = Store(cluster.pki.dir)
    path = store.cert_path(name)
    original = path.read_bytes()
    path.write_bytes(shifted_certificate(cluster, name, shift))
    started = time.monotonic()
    try:
        code, findings = run_preflight(inventory)
        noticed = time.monotonic() - started
    finally:
        deployed = deploy.main(["-i", str(inventory), "--quiet"])
        if deployed != 0:  # never leave the shifted certificate for the next scenario
            path.write_bytes(original)
    repaired = time.monotonic()
    recovered = until_ok(inventory)
    named = naming(findings, host)
    return FaultRow(
        f"{path.name} in the PKI state {shift} ({host})",
        code,
        named,
        noticed if named else None,
        "-",
        "deploy" if deployed == 0 else f"deploy (exit {deployed})",
        None if recovered is None else time.monotonic() - repaired,
        findings,
    )


def run_preflight(inventory: Path) -> tuple[int, list[dict[str, Any]]]:
    """preflight's exit code and findings."""
    return with_findings(preflight.main, ["-i", str(inventory)])


# Where a deploy with work to do (every component's log level changed: etcd members and the
# control plane restart one by one, the workers at once) is killed with SIGKILL: a point is a
# step's name when it starts, `+SECONDS` into it, `file-rename` (between a file's temporary copy
# and its rename) or `summary` (kubenorn.kill_point).
KILL_POINTS = {
    "after facts": "hosts",
    "during packages": "packages+0.3",
    "after the certificates, before any restart": "etcd-config",
    "between two etcd members' restarts": "etcd-restart+2",
    "during the first controller's roll": "controllers+1",
    "later in the controllers' roll": "controllers+8",
    "during the workers' configuration": "nodes-config+0.3",
    "during the workers' restarts": "nodes+1",
    "in the middle of a file write": "file-rename",
    "right before the summary": "summary",
}
LEFTOVERS = "find /etc /var/lib/kubenorn /usr/local -name '*.kubenorn-tmp' 2>/dev/null"


def inventory_copy(inventory: Path, directory: Path, *, verbose: bool) -> Path:
    """The inventory (its PKI state and keys too) with every component's log level raised or
    as it was: deploying one after the other gives a deploy real work to do."""
    copy = directory / "inventory"
    shutil.copytree(inventory, copy, ignore=shutil.ignore_patterns(".backups", ".restore"))
    defaults = copy / "defaults.yaml"
    data = yaml.safe_load(defaults.read_text())
    if verbose:
        data["data"]["etcd"]["log_level"] = "debug"
        data["data"]["kubernetes"]["log_level"] = int(data["data"]["kubernetes"]["log_level"]) + 1
    defaults.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def deploy_killed(lab: Lab, inventory: Path, what: str, point: str, *, verbose: bool) -> FaultRow:
    """A deploy with work to do killed at `point`; the next deploy must converge, leave no
    temporary file on any host, and verify must be OK."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = inventory_copy(inventory, Path(scratch), verbose=verbose)
        env = {**os.environ, KILL_AT_ENV: point}
        argv = [sys.executable, "-m", "runbooks.deploy", "-i", str(copy), "--quiet"]
        killed = subprocess.run(argv, env=env, capture_output=True, cwd=REPO_ROOT, check=False)
        started = time.monotonic()
        deployed = deploy.main(["-i", str(copy), "--quiet"])
        recovered = until_ok(copy)
        code, findings = run_verify(copy)
    left = [h.name for h in lab.settings.hosts if lab.ssh(h.name, ["sh", "-c", LEFTOVERS]).stdout]
    return FaultRow(
        f"deploy SIGKILLed {what} ({point})",
        code,
        "" if killed.returncode == -9 else f"NOT KILLED (exit {killed.returncode})",
        None,
        f"temporary files left on {', '.join(left)}" if left else "no temporary file left",
        "deploy" if deployed == 0 else f"deploy (exit {deployed})",
        None if recovered is None else time.monotonic() - started,
        findings,
    )


def deploy_killed_at_random(lab: Lab, inventory: Path) -> FaultRow:
    """A deploy with work to do killed at a random moment of its first 25 seconds (such a
    deploy takes longer than that on the lab: 40 s let one finish first)."""
    point = f"facts+{random.uniform(0.0, 25.0):.1f}"
    return deploy_killed(lab, inventory, "at a random moment", point, verbose=True)


def deploy_kills() -> dict[str, Callable[[Lab, Path], FaultRow]]:
    """One scenario per kill point; every other one raises the log levels, so each deploy has
    work to do and the last leaves them as the inventory has them."""
    scenarios: dict[str, Callable[[Lab, Path], FaultRow]] = {}
    for number, (what, point) in enumerate(KILL_POINTS.items()):
        scenarios[f"deploy-kill-{number + 1}"] = functools.partial(
            deploy_killed, what=what, point=point, verbose=number % 2 == 0
        )
    return scenarios


SCENARIOS: dict[str, Callable[[Lab, Path], FaultRow]] = {
    "etcd-leader-kill": etcd_leader_killed_under_writes,
    "etcd-partition": etcd_member_partitioned,
    "etcd-disk-full": etcd_disk_full,
    "node-partition": node_partitioned,
    "apiserver-down": apiserver_stopped,
    "config-corrupted": component_config_corrupted,
    "wrong-host-key": wrong_host_key,
    **{
        f"cert-{where}-{shift.replace(' ', '-')}": functools.partial(scenario, shift=shift)
        for where, scenario in (
            ("host", certificate_shifted_on_host),
            ("state", certificate_shifted_in_state),
        )
        for shift in SHIFTS
    },
    "power-cycle": power_cycle,
    **deploy_kills(),
    "deploy-kill-random": deploy_killed_at_random,
}
