"""Scheduler leader election through the 1.6 apiserver simulator (the endpoints' leader
annotation): one leader, failover on loss; kube-proxy's health."""

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
ENDPOINTS_PATH = "/api/v1/namespaces/kube-system/endpoints/kube-scheduler"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


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
def apiserver(pki: dict[str, Any], etcd: LocalEtcd) -> Iterator[tuple[int, int]]:
    """A 1.6 apiserver: (secure port, insecure port on loopback, as the reference design)."""
    secure, insecure = free_port(), free_port()
    argv = apiserver_argv(
        pki, etcd, secure, f"--insecure-port={insecure}", "--insecure-bind-address=127.0.0.1"
    )
    process = simulator("apiserver", "1.6.0", argv)
    try:
        wait_until(lambda: Client(secure, pki).call("GET", "/healthz")[0] == 200)
        yield secure, insecure
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_scheduler(insecure: int) -> tuple[subprocess.Popen[str], str]:
    argv = [
        f"--master=http://127.0.0.1:{insecure}",
        "--leader-elect=true",
        "--address=127.0.0.1",
        f"--port={free_port()}",
        f"--leader-elect-lease-duration={LEASE}s",
        f"--leader-elect-renew-deadline={RENEW}s",
        f"--leader-elect-retry-period={RETRY}s",
    ]
    process = simulator("controlplane", "1.6.0", argv, binary="kube-scheduler")
    identity = (process.stderr.readline() if process.stderr else "").strip().rsplit(" as ", 1)[-1]
    return process, identity


def leader_record(client: Client) -> dict[str, Any]:
    """The scheduler's leader record: 1.6 keeps it in the endpoints' leader annotation."""
    code, endpoints = client.call("GET", ENDPOINTS_PATH)
    if code != 200:
        return {}
    annotations = endpoints.get("metadata", {}).get("annotations", {})
    return dict(json.loads(annotations.get(LEADER_ANNOTATION, "{}")))


def holder(client: Client) -> str:
    return str(leader_record(client).get("holderIdentity", ""))


def test_one_scheduler_leads_and_another_takes_over_within_the_lease(
    apiserver: tuple[int, int], pki: dict[str, Any]
) -> None:
    secure, insecure = apiserver
    schedulers = dict(start_scheduler(insecure)[::-1] for _ in range(3))  # identity -> process
    admin = Client(secure, pki)
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
        assert leader_record(admin)["leaderTransitions"] >= 1
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
    apiserver: tuple[int, int], pki: dict[str, Any], tmp_path: Path
) -> None:
    secure, _ = apiserver
    pair = pki["ca_authority"].issue("proxy", cn="system:kube-proxy")
    reaching = kubeconfig(tmp_path, "kube-proxy", secure, pki, pair)
    stranded = kubeconfig(tmp_path, "kube-proxy-stranded", free_port(), pki, pair)
    ports = {config: free_port() for config in (reaching, stranded)}
    proxies = [
        simulator(
            "proxy",
            "1.6.0",
            [
                f"--kubeconfig={config}",
                "--proxy-mode=iptables",
                "--healthz-bind-address=127.0.0.1",
                f"--healthz-port={port}",
            ],
        )
        for config, port in ports.items()
    ]
    try:
        wait_until(lambda: proxy_healthz(ports[reaching]) == 200)
        # Under load the stranded one may not listen yet (connection refused): wait until it
        # answers at all, then it must answer 503.
        wait_until(lambda: proxy_healthz(ports[stranded]) > 0)
        assert proxy_healthz(ports[stranded]) == 503
    finally:
        for process in proxies:
            process.kill()
            process.wait(timeout=10)
