"""Scheduler leader election through the apiserver simulator: one leader, failover on loss."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simkit import Client, LocalEtcd, apiserver_argv, free_port, simulator, wait_until

LEASE, RENEW, RETRY = 2.0, 1.5, 0.5
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"


def kubeconfig(
    directory: Path, name: str, port: int, pki: dict[str, Any], pair: tuple[str, str]
) -> str:
    def data(path: str) -> str:
        return base64.b64encode(Path(path).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sim",
        "clusters": [
            {
                "name": "sim",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": data(pki["ca"]),
                },
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": data(pair[0]),
                    "client-key-data": data(pair[1]),
                },
            }
        ],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": name}}],
    }
    path = directory / f"{name}.kubeconfig"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def apiserver_port(pki: dict[str, Any], etcd: LocalEtcd) -> Iterator[int]:
    port = free_port()
    process = simulator("apiserver", "1.30.0", apiserver_argv(pki, etcd, port))
    try:
        wait_until(lambda: Client(port, pki).call("GET", "/readyz")[0] == 200)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_scheduler(config: str) -> tuple[subprocess.Popen[str], str]:
    argv = [
        f"--kubeconfig={config}",
        "--leader-elect=true",
        "--bind-address=127.0.0.1",
        f"--secure-port={free_port()}",
        f"--leader-elect-lease-duration={LEASE}s",
        f"--leader-elect-renew-deadline={RENEW}s",
        f"--leader-elect-retry-period={RETRY}s",
    ]
    process = simulator("controlplane", "1.30.0", argv, binary="kube-scheduler")
    identity = (process.stderr.readline() if process.stderr else "").strip().rsplit(" as ", 1)[-1]
    return process, identity


def holder(client: Client) -> str:
    code, lease = client.call("GET", LEASE_PATH)
    return lease["spec"]["holderIdentity"] if code == 200 else ""


def test_one_scheduler_leads_and_another_takes_over_within_the_lease(
    apiserver_port: int, pki: dict[str, Any], tmp_path: Path
) -> None:
    pair = pki["ca_authority"].issue("scheduler", cn="system:kube-scheduler")
    config = kubeconfig(tmp_path, "kube-scheduler", apiserver_port, pki, pair)
    schedulers = dict(start_scheduler(config)[::-1] for _ in range(3))  # identity -> process
    admin = Client(apiserver_port, pki)
    try:
        try:
            wait_until(lambda: holder(admin) in schedulers)
        except AssertionError:
            states = [
                (p.poll(), p.stderr.read() if p.poll() is not None and p.stderr else "")
                for p in schedulers.values()
            ]
            raise AssertionError(f"{holder(admin)!r} {list(schedulers)} {states}") from None
        leader = holder(admin)
        time.sleep(2 * RETRY)
        assert holder(admin) == leader, "leadership moved while its holder was healthy"
        schedulers[leader].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: holder(admin) not in ("", leader), timeout=30)
        moved_after = time.monotonic() - killed
        assert holder(admin) in schedulers and holder(admin) != leader
        # Behaviour set by the flags: a candidate waits out the lease, then tries every retry.
        assert moved_after <= LEASE + 2 * RETRY + 5.0
        assert admin.call("GET", LEASE_PATH)[1]["spec"]["leaseTransitions"] >= 1
    finally:
        for process in schedulers.values():
            process.kill()
            process.wait(timeout=10)


def proxy_healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_kube_proxy_healthz_follows_whether_it_reaches_the_apiserver(
    apiserver_port: int, pki: dict[str, Any], tmp_path: Path
) -> None:
    pair = pki["ca_authority"].issue("proxy", cn="system:kube-proxy")
    reaching = kubeconfig(tmp_path, "kube-proxy", apiserver_port, pki, pair)
    stranded = kubeconfig(tmp_path, "kube-proxy-stranded", free_port(), pki, pair)
    ports = {config: free_port() for config in (reaching, stranded)}
    proxies = [
        simulator(
            "proxy",
            "1.30.0",
            [
                f"--kubeconfig={config}",
                "--proxy-mode=iptables",
                f"--healthz-bind-address=127.0.0.1:{port}",
            ],
        )
        for config, port in ports.items()
    ]
    try:
        wait_until(lambda: proxy_healthz(ports[reaching]) == 200)
        assert proxy_healthz(ports[stranded]) == 503
    finally:
        for process in proxies:
            process.kill()
            process.wait(timeout=10)


def test_the_1_6_scheduler_elects_through_the_endpoints_annotation(
    pki: dict[str, Any], etcd: LocalEtcd
) -> None:
    secure, insecure = free_port(), free_port()
    apiserver = simulator(
        "apiserver",
        "1.6.0",
        apiserver_argv(
            pki, etcd, secure, f"--insecure-port={insecure}", "--insecure-bind-address=127.0.0.1"
        ),
    )
    argv = [
        f"--master=http://127.0.0.1:{insecure}",
        "--leader-elect=true",
        "--address=127.0.0.1",
        f"--port={free_port()}",
        "--leader-elect-lease-duration=2s",
        "--leader-elect-renew-deadline=1500ms",
        "--leader-elect-retry-period=500ms",
    ]
    admin = Client(secure, pki)
    path = "/api/v1/namespaces/kube-system/endpoints/kube-scheduler"
    try:
        wait_until(lambda: admin.call("GET", "/healthz")[0] == 200)
        scheduler = simulator("controlplane", "1.6.0", argv, binary="kube-scheduler")
        identity = (scheduler.stderr.readline() if scheduler.stderr else "").strip()
        try:

            def annotated() -> bool:
                code, endpoints = admin.call("GET", path)
                record = (
                    endpoints.get("metadata", {})
                    .get("annotations", {})
                    .get("control-plane.alpha.kubernetes.io/leader", "{}")
                    if code == 200
                    else "{}"
                )
                holder = json.loads(record).get("holderIdentity", "")
                return bool(holder) and identity.endswith(f" as {holder}")

            wait_until(annotated)
        finally:
            scheduler.kill()
            scheduler.wait(timeout=10)
    finally:
        apiserver.kill()
        apiserver.wait(timeout=10)
