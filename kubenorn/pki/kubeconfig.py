"""Kubeconfigs with embedded credentials: render one, and read back what one holds."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Credentials:
    """What a kubeconfig says: where to go, whom to trust, who to be."""

    server: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(cluster_name: str, user: str, credentials: Credentials) -> bytes:
    """A self-contained kubeconfig for `user` on `cluster_name`, the same bytes every time."""
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "certificate-authority-data": _b64(credentials.ca_pem),
                    "server": credentials.server,
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(credentials.cert_pem),
                    "client-key-data": _b64(credentials.key_pem),
                },
            }
        ],
        "contexts": [{"name": "default", "context": {"cluster": cluster_name, "user": user}}],
        "current-context": "default",
    }
    # JSON is YAML, and every kubeconfig loader reads it; PyYAML's emitter was most of the
    # time of an init (long base64 scalars), json.dumps is fast and byte-for-byte stable.
    return (json.dumps(document, indent=2) + "\n").encode()


def parse(content: bytes) -> Credentials:
    """The credentials of a kubeconfig's current context; ValueError when it has none."""
    try:
        document = _load(content)
        context = _named(document["contexts"], document["current-context"])["context"]
        cluster = _named(document["clusters"], context["cluster"])["cluster"]
        user = _named(document["users"], context["user"])["user"]
        return Credentials(
            server=cluster["server"],
            ca_pem=base64.b64decode(cluster["certificate-authority-data"]),
            cert_pem=base64.b64decode(user["client-certificate-data"]),
            key_pem=base64.b64decode(user["client-key-data"]),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError, StopIteration) as error:
        raise ValueError(f"not a kubeconfig with embedded credentials ({error})") from None


def _load(content: bytes) -> Any:
    """A kubeconfig's document: kubenorn writes JSON (json is fast); any other is YAML, read
    with libyaml where PyYAML has it (a pure-Python parse was half of verify's CPU)."""
    try:
        return json.loads(content)
    except ValueError:
        return yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(entry for entry in entries if entry["name"] == name)
