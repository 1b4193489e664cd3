"""A small etcd v3 client over the JSON gateway (HTTPS, client certificate) for drills.

It runs on the control machine with the health-check client certificate from the PKI state,
talking to the members' client URLs directly. The gateway's paths are those of etcd 3.4+
(`/v3/...`); etcd 3.1-3.2 served `/v3alpha/...`.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubenorn.cluster import Cluster
from kubenorn.pki.plan import ETCD_CA
from kubenorn.pki.store import Store

CLIENT = "etcd-healthcheck-client"


class EtcdUnavailable(Exception):
    """The endpoint did not answer, or answered with an error."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tls_context(cluster: Cluster) -> ssl.SSLContext:
    """Verify members against the etcd CA; present the health-check client certificate."""
    store = Store(cluster.pki.dir)
    context = ssl.create_default_context(cafile=str(store.cert_path(ETCD_CA)))
    context.load_cert_chain(str(store.cert_path(CLIENT)), str(store.key_path(CLIENT)))
    return context


@dataclass
class Endpoint:
    """One member's client URL, with a kept-alive HTTPS connection."""

    url: str
    context: ssl.SSLContext
    timeout: float = 1.0
    _connection: http.client.HTTPSConnection | None = None

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to the gateway's `path`; EtcdUnavailable on any failure."""
        reused = self._connection is not None
        try:
            status, payload = self._post(path, body)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            if not reused:
                raise EtcdUnavailable(f"{self.url}: {error}") from error
            # A kept-alive connection the member has since closed: one fresh attempt.
            return self.call(path, body)
        if status != 200:
            raise EtcdUnavailable(f"{self.url}{path}: HTTP {status} {payload[:200]!r}")
        return json.loads(payload or b"{}")

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        connection = self._connect()
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def range_prefix(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with its value."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        answer = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in answer.get("kvs", [])
        }

    def delete_prefix(self, prefix: str) -> None:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        self.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(end)})

    def status(self) -> dict[str, Any]:
        """The member's status: `header.member_id`, `leader`, `raftTerm`, ..."""
        return self.call("/v3/maintenance/status", {})

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPSConnection:
        if self._connection is None:
            parts = urlsplit(self.url)
            self._connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port or 2379,
                context=self.context,
                timeout=self.timeout,
            )
        return self._connection


def endpoints(cluster: Cluster, timeout: float = 1.0) -> list[Endpoint]:
    """An Endpoint for every member, sharing one TLS context."""
    context = tls_context(cluster)
    return [Endpoint(url, context, timeout) for url in cluster.etcd.client_urls]
