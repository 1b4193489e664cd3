"""SIMULATORS of kube-scheduler and kube-controller-manager: leader election, health, acting.

Only the leader acts (here: it records that it acts); the others wait for the lease to lapse.
"""

from __future__ import annotations

import socket
import sys
import time
import uuid

from kubesim.cli import command_line, duration
from kubesim.client import ApiClient
from kubesim.election import Election
from kubesim.health import serve_health, serving_context
from kubesim.resources import version_tuple

# Insecure (1.6) and secure (1.24+) health ports of the real components.
PORTS = {"kube-scheduler": (10251, 10259), "kube-controller-manager": (10252, 10257)}


def main(binary: str, version: str, argv: list[str]) -> int:
    flags = command_line(binary, version, argv)
    client = ApiClient.from_flags(flags)
    insecure_port, secure_port = PORTS[binary]
    if "secure-port" in flags or version_tuple(version) >= (1, 24):
        context = serving_context(
            flags.get("tls-cert-file"), flags.get("tls-private-key-file"), binary
        )
        address = (flags.get("bind-address", "0.0.0.0"), int(flags.get("secure-port", secure_port)))
        serve_health(address, lambda: True, context)
    else:
        address = (flags.get("address", "0.0.0.0"), int(flags.get("port", insecure_port)))
        serve_health(address, lambda: True)
    election = Election(
        client,
        binary,
        f"{socket.gethostname()}_{uuid.uuid4()}",
        lease_duration=duration(flags.get("leader-elect-lease-duration", "15s")),
        renew_deadline=duration(flags.get("leader-elect-renew-deadline", "10s")),
        retry_period=duration(flags.get("leader-elect-retry-period", "2s")),
        use_lease=version_tuple(version) >= (1, 14),
    )
    elect = flags.get("leader-elect", "true") == "true"
    print(f"{binary} SIMULATOR v{version} as {election.identity}", file=sys.stderr, flush=True)
    was_leading = False
    while True:
        if elect:
            election.step()
        if (election.leading or not elect) and not was_leading:
            print(f"{election.identity}: became leader, acting", file=sys.stderr, flush=True)
            was_leading = True
        time.sleep(election.retry_period)
