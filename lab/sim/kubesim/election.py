"""Leader election as client-go does it: a Lease (1.14+) or the endpoints' leader annotation.

A candidate takes the lock when the holder has not renewed it within the lease duration (as
it observed, on its own clock), renews every retry period while it leads, and gives up, as
the real components do by exiting, when it cannot renew within the renew deadline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from kubesim.client import ApiClient, ApiUnavailable

ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Election:
    client: ApiClient
    name: str  # kube-scheduler or kube-controller-manager
    identity: str
    lease_duration: float
    renew_deadline: float
    retry_period: float
    use_lease: bool
    leading: bool = False
    last_renew: float = 0.0
    _observed: tuple[str, float] = field(default=("", 0.0))

    @property
    def path(self) -> str:
        if self.use_lease:
            return f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{self.name}"
        return f"/api/v1/namespaces/kube-system/endpoints/{self.name}"

    def step(self) -> None:
        """One try to acquire or renew; called every retry period."""
        try:
            acquired = self._try()
        except ApiUnavailable:
            acquired = False
        if acquired:
            self.leading, self.last_renew = True, time.monotonic()
        elif self.leading and time.monotonic() - self.last_renew > self.renew_deadline:
            raise SystemExit(f"leaderelection lost for {self.name}")

    def _try(self) -> bool:
        code, current = self.client.call("GET", self.path)
        if code == 404:
            return self._write("POST", self.path.rsplit("/", 1)[0], self._object(None, 0))
        if code != 200:
            return False
        record = self._record(current)
        holder = record.get("holderIdentity", "")
        key = json.dumps(record, sort_keys=True)
        if key != self._observed[0]:
            self._observed = (key, time.monotonic())
        expired = time.monotonic() - self._observed[1] > self.lease_duration
        if holder not in (self.identity, "") and not expired:
            return False
        transitions = record.get("leaderTransitions", record.get("leaseTransitions", 0))
        transitions += 0 if holder == self.identity else 1
        return self._write("PUT", self.path, self._object(current, transitions))

    def _write(self, method: str, path: str, body: dict[str, Any]) -> bool:
        code, _ = self.client.call(method, path, body)
        return code in (200, 201)

    def _record(self, current: dict[str, Any]) -> dict[str, Any]:
        if self.use_lease:
            return dict(current.get("spec", {}))
        annotation = current.get("metadata", {}).get("annotations", {}).get(ANNOTATION, "{}")
        return json.loads(annotation)

    def _object(self, current: dict[str, Any] | None, transitions: int) -> dict[str, Any]:
        obj = current or {"metadata": {"name": self.name, "namespace": "kube-system"}}
        stamp = now_rfc3339()
        if self.use_lease:
            spec = obj.setdefault("spec", {})
            acquire = (
                spec.get("acquireTime") if spec.get("holderIdentity") == self.identity else stamp
            )
            spec.update(
                holderIdentity=self.identity,
                leaseDurationSeconds=int(self.lease_duration),
                acquireTime=acquire,
                renewTime=stamp,
                leaseTransitions=transitions,
            )
            return obj
        record = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaderTransitions": transitions,
        }
        obj.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = json.dumps(
            record
        )
        obj.setdefault("subsets", [])
        return obj
