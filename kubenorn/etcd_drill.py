"""The etcd leader-loss drill: kill the leader under a steady stream of writes, measure, audit.

Every acknowledged write must survive: etcd acknowledges a put only once a quorum has it, so a
lost acknowledged write would be a real durability bug (or a misconfigured cluster).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubenorn.etcd_client import Endpoint, EtcdUnavailable


@dataclass
class Writer:
    """Writes key N = N under `prefix` as fast as it can, failing over between endpoints."""

    endpoints: list[Endpoint]
    prefix: str
    acked: dict[int, float] = field(default_factory=dict)
    errors: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="etcd-drill-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def first_ack_after(self, moment: float) -> float | None:
        return min((t for t in self.acked.values() if t > moment), default=None)

    def _loop(self) -> None:
        number, current = 0, 0
        while not self._stop.is_set():
            endpoint = self.endpoints[current % len(self.endpoints)]
            try:
                endpoint.put(f"{self.prefix}{number:08d}", str(number))
            except EtcdUnavailable as error:
                self.errors.append((time.monotonic(), str(error)))
                current += 1  # the next endpoint; the same number is tried again
                self._stop.wait(0.02)
                continue
            self.acked[number] = time.monotonic()
            number += 1


def leader_of(endpoints: list[Endpoint]) -> tuple[int, dict[int, Endpoint]]:
    """The leader id most members report, and member id -> endpoint for those answering."""
    by_member: dict[int, Endpoint] = {}
    leaders: list[int] = []
    for endpoint in endpoints:
        try:
            status = endpoint.status()
        except EtcdUnavailable:
            continue
        by_member[int(status["header"]["member_id"])] = endpoint
        leaders.append(int(status.get("leader", 0)))
    leader = max(set(leaders), key=leaders.count) if leaders else 0
    return leader, by_member


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def new_leader_elected(survivors: list[Endpoint], old: int) -> Callable[[], bool]:
    def check() -> bool:
        leader, _ = leader_of(survivors)
        return leader not in (0, old)

    return check


def lost_writes(acked: dict[int, float], stored: dict[str, str], prefix: str) -> list[int]:
    """Acknowledged numbers whose key is missing or holds another value."""
    return sorted(n for n in acked if stored.get(f"{prefix}{n:08d}") != str(n))
