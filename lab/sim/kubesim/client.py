"""How the other simulators reach the apiserver: a kubeconfig (client certificate) or --master."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
from typing import Any
from urllib.parse import urlsplit


class ApiUnavailable(Exception):
    """The apiserver did not answer."""


class ApiClient:
    """JSON over HTTP(S) to one apiserver URL."""

    def __init__(self, url: str, context: ssl.SSLContext | None) -> None:
        self.url, self.context = url, context

    @classmethod
    def from_flags(cls, flags: dict[str, str]) -> ApiClient:
        """`--kubeconfig` (client certificate, embedded or by path) or `--master` (1.6)."""
        master = flags.get("master") or flags.get("api-servers", "").split(",")[0] or None
        if flags.get("kubeconfig"):
            return cls.from_kubeconfig(flags["kubeconfig"], master)
        if master:
            return cls(master, None)
        raise SystemExit("Error: no --kubeconfig or --master given")

    @classmethod
    def from_kubeconfig(cls, path: str, master: str | None = None) -> ApiClient:
        # kubenorn writes kubeconfigs as JSON (valid YAML); the simulators read only JSON.
        with open(path) as handle:
            config = json.load(handle)
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cadata=_pem(cluster, "certificate-authority"))
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as pair:
            pair.write(_pem(user, "client-certificate") + _pem(user, "client-key"))
            pair.flush()
            context.load_cert_chain(pair.name)
        return cls(master or cluster["server"], context)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port or 443, context=self.context, timeout=5
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port or 80, timeout=5
            )
        try:
            connection.request(
                method,
                path,
                json.dumps(body) if body is not None else None,
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ApiUnavailable(f"{self.url}: {error}") from error
        finally:
            connection.close()
        try:
            return response.status, json.loads(payload or b"{}")
        except json.JSONDecodeError:
            return response.status, {"text": payload.decode(errors="replace")}


def _pem(section: dict[str, str], name: str) -> str:
    if f"{name}-data" in section:
        return base64.b64decode(section[f"{name}-data"]).decode()
    with open(section[name]) as handle:
        return handle.read()
