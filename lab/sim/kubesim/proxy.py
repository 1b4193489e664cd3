"""A SIMULATOR of kube-proxy: watches the apiserver; healthz on 10256 says whether it reaches it."""

from __future__ import annotations

import sys
import time

from kubesim.cli import command_line
from kubesim.client import ApiClient, ApiUnavailable
from kubesim.health import serve_health

PERIOD = 2.0


def main(version: str, argv: list[str]) -> int:
    flags = command_line("kube-proxy", version, argv)
    client = ApiClient.from_flags(flags)
    if "healthz-port" in flags:
        address = (flags.get("healthz-bind-address", "0.0.0.0"), int(flags["healthz-port"]))
    else:
        host, _, port = flags.get("healthz-bind-address", "0.0.0.0:10256").rpartition(":")
        address = (host or "0.0.0.0", int(port))
    reached = [0.0]
    serve_health(address, lambda: time.monotonic() - reached[0] < 3 * PERIOD)
    print(
        f"kube-proxy SIMULATOR v{version}, mode {flags.get('proxy-mode', 'iptables')}",
        file=sys.stderr,
        flush=True,
    )
    while True:
        try:
            code, _ = client.call("GET", "/api/v1/endpoints")
            if code == 200:
                reached[0] = time.monotonic()
        except ApiUnavailable as error:
            print(f"kube-proxy: {error}", file=sys.stderr, flush=True)
        time.sleep(PERIOD)
