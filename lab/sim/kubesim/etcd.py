"""The apiserver simulator's store: the real etcd cluster, through its v3 JSON gateway over TLS."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit


class EtcdError(Exception):
    """No etcd endpoint answered."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Etcd:
    """Client-certificate TLS to the `--etcd-servers`, trying each until one answers."""

    def __init__(self, servers: list[str], cafile: str, certfile: str, keyfile: str) -> None:
        self.servers = servers
        self.context = ssl.create_default_context(cafile=cafile)
        self.context.load_cert_chain(certfile, keyfile)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for server in self.servers:
            parts = urlsplit(server)
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port or 2379, context=self.context, timeout=2
            )
            try:
                connection.request("POST", path, json.dumps(body))
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{server}: {error}")
                continue
            finally:
                connection.close()
            if response.status == 200:
                return json.loads(payload or b"{}")
            errors.append(f"{server}: HTTP {response.status}")
        raise EtcdError("; ".join(errors))

    def healthy(self) -> bool:
        try:
            self.call("/v3/kv/range", {"key": b64("/registry/health"), "serializable": False})
        except EtcdError:
            return False
        return True

    def get(self, key: str) -> tuple[dict[str, Any], int] | None:
        """The object at `key` and its mod revision."""
        kvs = self.call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        if not kvs:
            return None
        return json.loads(unb64(kvs[0]["value"])), int(kvs[0]["mod_revision"])

    def list(self, prefix: str) -> tuple[list[tuple[dict[str, Any], int]], int]:
        """Every object under `prefix` with its mod revision, and the store's revision."""
        answer = self.call(
            "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        )
        items = [
            (json.loads(unb64(kv["value"])), int(kv["mod_revision"]))
            for kv in answer.get("kvs", [])
        ]
        return items, int(answer["header"]["revision"])

    def put_if(self, key: str, value: dict[str, Any], mod_revision: int) -> int | None:
        """Write `value` only if `key`'s mod revision is still `mod_revision` (0: absent)."""
        target = "CREATE" if mod_revision == 0 else "MOD"
        field = "create_revision" if mod_revision == 0 else "mod_revision"
        answer = self.call(
            "/v3/kv/txn",
            {
                "compare": [
                    {"key": b64(key), "result": "EQUAL", "target": target, field: str(mod_revision)}
                ],
                "success": [{"request_put": {"key": b64(key), "value": b64(json.dumps(value))}}],
            },
        )
        if not answer.get("succeeded"):
            return None
        return int(answer["header"]["revision"])
