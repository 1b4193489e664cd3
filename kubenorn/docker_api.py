"""docker's TCP API seen from the control machine: does it demand a client certificate?

The listener is meant for operators' docker clients, so it is checked from where they stand,
with the client certificate kubenorn issued (kept on the control machine like the CA keys).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

from kubenorn.https_probe import TIMEOUT, https_get

MAX_BODY = 1 << 20  # /version is a few hundred bytes


@dataclass(frozen=True)
class DockerTls:
    """What a client needs: the docker CA, and a client certificate and key (None: none sent)."""

    ca_file: Path
    client: tuple[Path, Path] | None


def docker_version(address: str, port: int, tls: DockerTls, *, timeout: float = TIMEOUT) -> str:
    """The daemon's version from GET /version over TLS; OSError (ssl errors too) when refused."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    if tls.client is not None:
        context.load_cert_chain(*map(str, tls.client))
    else:
        # Over TLS 1.2 the server refuses a missing certificate inside the handshake; over 1.3
        # its alert races the request we send after our Finished (a reset or EOF may win).
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    status, body = https_get(address, port, "/version", context, timeout=timeout, limit=MAX_BODY)
    if status != 200:
        raise OSError(f"GET /version answered HTTP {status}")
    return str(json.loads(body).get("Version", "?"))
