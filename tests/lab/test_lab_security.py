"""Security on the lab (issue 17): the deployed cluster passes the CIS table; a Secrets key
rotation leaves every Secret in etcd under the new key, no apiserver knowing the old one, and
every Secret readable; a drop-in that turns profiling back on is named by verify."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from lab_support import CONTROLLERS, changed_records, verifies_ok_within

from kubenorn.cluster import load_cluster
from kubenorn.pki.encryption import required_state
from kubenorn.pki.store import Store
from lab.machine import Lab
from runbooks import deploy, pki, verify

CONTROLLER = "kube.controller01"
ADMIN = "/etc/kubernetes/admin.kubeconfig"
ENCRYPTION_CONFIG = "/etc/kubernetes/encryption-config.yaml"
ETCD_TLS = [
    "--cacert=/etc/etcd/ssl/ca.crt",
    "--cert=/etc/etcd/ssl/healthcheck-client.crt",
    "--key=/etc/etcd/ssl/healthcheck-client.key",
]
TEST_SECRET = ("default", "kubenorn-rotation-test")
DROPIN = "/etc/systemd/system/kube-apiserver.service.d/zz-profiling.conf"


@pytest.fixture(scope="module")
def cluster(lab: Lab, lab_inventory: Path) -> Path:
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def kubectl(lab: Lab, host: str, *args: str) -> str:
    done = lab.ssh(host, ["kubectl", "--kubeconfig", ADMIN, "--request-timeout=20s", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout


def stored_value(lab: Lab, namespace: str, name: str) -> bytes:
    """A Secret's raw value in etcd, as the apiserver stored it."""
    argv = [
        "env", "ETCDCTL_API=3", "etcdctl", "--endpoints=https://127.0.0.1:2379", *ETCD_TLS,
        "-w", "json", "get", f"/registry/secrets/{namespace}/{name}",
    ]  # fmt: skip
    done = lab.ssh(CONTROLLER, argv)
    assert done.returncode == 0, done.stderr
    [kv] = json.loads(done.stdout)["kvs"]
    return base64.b64decode(kv["value"])


def secrets(lab: Lab) -> list[tuple[str, str]]:
    listed = json.loads(
        kubectl(lab, CONTROLLER, "get", "secrets", "--all-namespaces", "-o", "json")
    )
    return [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in listed["items"]]


def findings_of(report: Path) -> list[dict[str, str]]:
    return json.loads(report.read_text()).get("findings", [])


def test_the_deployed_cluster_passes_its_cis_table(cluster: Path, lab: Lab, tmp_path: Path) -> None:
    report = tmp_path / "verify.json"
    assert verify.main(["-i", str(cluster), "--quiet", "--json", str(report)]) == 0
    security = [f for f in findings_of(report) if f["check"].startswith("security")]
    assert security and all(f["status"] == "OK" for f in security), security
    # One summary per host; every host judged against cis-1.12.
    hosts = {f["host"] for f in security}
    assert hosts == {h.name for h in load_cluster(cluster).hosts}
    assert all("cis-1.12" in f["detail"] and "waived" in f["detail"] for f in security)
    # The deploy turned encryption on and rewrote what was there: every Secret under its key.
    state = required_state(Store(load_cluster(cluster).pki.dir))
    assert (state.phase, state.current.provider) == ("stable", "aescbc")
    for namespace, name in secrets(lab):
        assert stored_value(lab, namespace, name).startswith(state.current.prefix.encode())


def test_a_key_rotation_leaves_every_secret_under_the_new_key_and_the_old_key_nowhere(
    cluster: Path, lab: Lab, tmp_path: Path
) -> None:
    namespace, name = TEST_SECRET
    kubectl(lab, CONTROLLER, "delete", "secret", "-n", namespace, name, "--ignore-not-found")
    kubectl(lab, CONTROLLER, "create", "secret", "generic", "-n", namespace, name,
            "--from-literal=answer=42")  # fmt: skip
    store = Store(load_cluster(cluster).pki.dir)
    old = required_state(store).current
    assert stored_value(lab, namespace, name).startswith(old.prefix.encode())

    assert pki.main(["-i", str(cluster), "rotate", "--encryption-key"]) == 0

    state = required_state(store)
    new = state.current
    assert (state.phase, state.incoming) == ("stable", None)
    assert new.name != old.name
    listed = secrets(lab)
    assert (namespace, name) in listed
    for namespace_, name_ in listed:
        value = stored_value(lab, namespace_, name_)
        assert value.startswith(f"k8s:enc:aescbc:v1:{new.name}:".encode()), (namespace_, name_)
    for host in CONTROLLERS:
        # grep -q: the file holds key material, never printed.
        assert lab.ssh(host, ["grep", "-q", old.name, ENCRYPTION_CONFIG]).returncode == 1, host
        assert lab.ssh(host, ["grep", "-q", new.name, ENCRYPTION_CONFIG]).returncode == 0, host
        # Every Secret reads back through this controller's own apiserver.
        read = json.loads(kubectl(lab, host, "get", "secrets", "--all-namespaces", "-o", "json"))
        assert len(read["items"]) >= len(listed)
        mine = kubectl(lab, host, "get", "secret", "-n", namespace, name, "-o",
                       "jsonpath={.data.answer}")  # fmt: skip
        assert base64.b64decode(mine) == b"42"
    assert verifies_ok_within(cluster, 60)
    # The deploy writes what the rotation left: nothing to change, nothing restarted.
    assert changed_records(cluster, tmp_path / "deploy.json") == []
    kubectl(lab, CONTROLLER, "delete", "secret", "-n", namespace, name)


def apiserver_ready(lab: Lab, host: str) -> bool:
    done = lab.ssh(host, ["curl", "-sk", "--max-time", "3", "https://127.0.0.1:6443/readyz"])
    return done.stdout.strip() == "ok"


def restart_apiserver(lab: Lab, host: str) -> None:
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", "kube-apiserver"]):
        done = lab.ssh(host, argv, timeout=180)
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 90
    while not apiserver_ready(lab, host):
        assert time.monotonic() < deadline, f"{host}: kube-apiserver not ready after 90s"
        time.sleep(1)


def test_profiling_turned_on_by_an_unmanaged_drop_in_is_named_by_verify(
    cluster: Path, lab: Lab, tmp_path: Path
) -> None:
    host = "kube.controller02"
    dropin = (
        "[Service]\nExecStart=\nExecStart=/usr/bin/kube-apiserver $KUBE_ARGS --profiling=true\n"
    )
    write = ["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$2" > "$1"', "sh"]
    assert lab.ssh(host, [*write, DROPIN, dropin]).returncode == 0
    try:
        restart_apiserver(lab, host)
        pid = lab.ssh(host, ["systemctl", "show", "-p", "MainPID", "--value", "kube-apiserver"])
        cmdline = lab.ssh(host, ["cat", f"/proc/{pid.stdout.strip()}/cmdline"]).stdout
        assert "\0--profiling=true" in cmdline  # the process runs with it, as intended
        report = tmp_path / "verify.json"
        assert verify.main(["-i", str(cluster), "--quiet", "--json", str(report)]) == 2
        bad = [f for f in findings_of(report) if f["status"] != "OK"]
        profiling = [f for f in bad if f["check"] == "security.1.2.15"]
        assert [(f["host"], f["status"]) for f in profiling] == [(host, "CRITICAL")], bad
        assert profiling[0]["detail"].startswith("kube-apiserver: --profiling is 'true'")
        # No security finding is blamed on another host (a leader may be moving meanwhile).
        assert {f["host"] for f in bad if f["check"].startswith("security")} == {host}, bad
    finally:
        lab.ssh(host, ["rm", "-f", DROPIN])
        lab.ssh(host, ["rmdir", "--ignore-fail-on-non-empty", DROPIN.rsplit("/", 1)[0]])
        restart_apiserver(lab, host)
    assert verifies_ok_within(cluster, 60)
