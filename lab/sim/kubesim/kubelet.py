"""A SIMULATOR of kubelet: registers its Node and posts status heartbeats.

The node is Ready only while its container runtime answers a real API call on its socket:
docker's GET /_ping, or containerd's Version call (through ctr).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from typing import Any

from kubesim.cli import command_line, duration
from kubesim.client import ApiClient, ApiUnavailable
from kubesim.health import serve_health
from kubesim.resources import version_tuple


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=3)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(3)
        self.sock.connect(self.unix_path)


def docker_ping(path: str) -> tuple[bool, str]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", "/_ping")
        response = connection.getresponse()
        return response.status == 200, f"docker /_ping: HTTP {response.status}"
    except OSError as error:
        return False, f"docker /_ping: {error}"
    finally:
        connection.close()


def containerd_version(path: str) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            ["ctr", "--address", path, "--timeout", "3s", "version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"containerd: {error}"
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    return done.returncode == 0, f"containerd: {lines[-1] if lines else done.returncode}"


def runtime_probe(version: str, flags: dict[str, str]) -> tuple[str, str]:
    """(kind, socket path) of the runtime this kubelet talks to."""
    endpoint = flags.get("container-runtime-endpoint", "")
    if version_tuple(version) < (1, 24) and flags.get("container-runtime", "docker") == "docker":
        return "docker", "/var/run/docker.sock"
    path = endpoint.removeprefix("unix://") or "/run/containerd/containerd.sock"
    return ("docker", path) if path.endswith("docker.sock") else ("containerd", path)


def node_object(name: str, version: str, ready: bool, message: str) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": message,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "status": {"conditions": [condition], "nodeInfo": {"kubeletVersion": f"v{version}"}},
    }


def heartbeat(client: ApiClient, name: str, version: str, ready: bool, message: str) -> bool:
    """Register the node if needed, then post its status; whether the apiserver took it."""
    path = f"/api/v1/nodes/{name}"
    code, current = client.call("GET", path)
    wanted = node_object(name, version, ready, message)
    if code == 404:
        code, _ = client.call("POST", "/api/v1/nodes", wanted)
        return code == 201
    if code != 200:
        return False
    current["status"] = wanted["status"]
    code, _ = client.call("PUT", path, current)
    return code == 200


def main(version: str, argv: list[str]) -> int:
    flags = command_line("kubelet", version, argv)
    client = ApiClient.from_flags(flags)
    name = flags.get("hostname-override") or socket.gethostname()
    kind, path = runtime_probe(version, flags)
    probe = docker_ping if kind == "docker" else containerd_version
    period = duration(flags.get("node-status-update-frequency", "10s"))
    last_post = [0.0]
    address = (
        flags.get("healthz-bind-address", "127.0.0.1"),
        int(flags.get("healthz-port", "10248")),
    )
    serve_health(address, lambda: time.monotonic() - last_post[0] < 3 * period)
    print(
        f"kubelet SIMULATOR v{version} for node {name}, runtime {kind} at {path}",
        file=sys.stderr,
        flush=True,
    )
    while True:
        ready, message = probe(path)
        try:
            if heartbeat(client, name, version, ready, message):
                last_post[0] = time.monotonic()
        except ApiUnavailable as error:
            print(f"kubelet: {error}", file=sys.stderr, flush=True)
        time.sleep(period)
