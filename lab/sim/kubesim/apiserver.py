"""A SIMULATOR of kube-apiserver: TLS with client certificates, objects in the real etcd.

Serves health, version, discovery, and get/list/create/update of nodes, namespaces, endpoints,
leases (1.14+) and componentstatuses (before 1.19), with resourceVersion conflicts decided by
etcd transactions. It is test equipment for kubenorn's lab, not Kubernetes.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from kubesim.authz import Authorizer, User
from kubesim.cli import command_line
from kubesim.etcd import Etcd, EtcdError
from kubesim.resources import BUILTIN_NAMESPACES, Resource, discovery, find, version_tuple

PUBLIC = ("/healthz", "/livez", "/readyz", "/version")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason = code, reason


class Api:
    """The objects, in etcd, and the rules of the version being simulated."""

    def __init__(self, version: str, etcd: Etcd) -> None:
        self.version, self.etcd = version, etcd

    def key(self, resource: Resource, namespace: str | None, name: str = "") -> str:
        scope = f"{namespace}/" if resource.namespaced else ""
        return f"/registry/{resource.name}/{scope}{name}"

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        found = self.etcd.get(self.key(resource, namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", f'{resource.name} "{name}" not found')
        return stamped(*found)

    def list(self, resource: Resource, namespace: str | None) -> dict[str, Any]:
        prefix = (
            self.key(resource, namespace)
            if namespace or not resource.namespaced
            else f"/registry/{resource.name}/"
        )
        items, revision = self.etcd.list(prefix)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.group_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": [stamped(obj, rev) for obj, rev in items],
        }

    def create(
        self, resource: Resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        meta.pop("resourceVersion", None)
        if resource.namespaced:
            meta["namespace"] = namespace
        body.update(kind=resource.kind, apiVersion=resource.group_version)
        revision = self.etcd.put_if(self.key(resource, namespace, name), body, 0)
        if revision is None:
            raise ApiError(409, "AlreadyExists", f'{resource.name} "{name}" already exists')
        return stamped(body, revision)

    def update(
        self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = self.get(resource, namespace, name)
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted is None:
            wanted = current["metadata"]["resourceVersion"]
        body["metadata"].update(
            uid=current["metadata"]["uid"],
            creationTimestamp=current["metadata"]["creationTimestamp"],
        )
        body["metadata"].pop("resourceVersion", None)
        revision = self.etcd.put_if(self.key(resource, namespace, name), body, int(wanted))
        if revision is None:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {resource.name} "
                f'"{name}": the object has been modified; please apply your changes '
                "to the latest version and try again",
            )
        return stamped(body, revision)

    def ensure_namespaces(self) -> None:
        namespaces = find(self.version, "", "namespaces")
        assert namespaces is not None
        for name in BUILTIN_NAMESPACES:
            key = self.key(namespaces, None, name)
            if self.etcd.get(key) is None:
                body = {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": name,
                        "uid": str(uuid.uuid4()),
                        "creationTimestamp": now(),
                    },
                    "status": {"phase": "Active"},
                }
                self.etcd.put_if(key, body, 0)


def stamped(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def route(version: str, path: str) -> tuple[Resource, str | None, str] | None:
    """(resource, namespace, name) for an object path; None when the path is no object path."""
    if path.startswith("/api/v1/"):
        group, parts = "", path.removeprefix("/api/v1/").split("/")
    elif path.startswith("/apis/") and path.count("/") >= 4:
        _, _, group, _, rest = path.split("/", 4)
        parts = rest.split("/")
    else:
        return None
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    resource = find(version, group, parts[0])
    if resource is None or len(parts) > 2:
        return None
    if namespace is not None and not resource.namespaced:
        return None
    name = parts[1] if len(parts) == 2 else ""
    if resource.namespaced and namespace is None and name:
        return None  # a namespaced object is reached through its namespace
    return resource, namespace, name


class Handler(BaseHTTPRequestHandler):
    """One request: authenticate, authorize, then health, discovery or an object."""

    server: ApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.respond(self.handle_get)

    def do_POST(self) -> None:  # noqa: N802
        self.respond(self.handle_write)

    def do_PUT(self) -> None:  # noqa: N802
        self.respond(self.handle_write)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def respond(self, handler: Any) -> None:
        try:
            code, body = handler(urlsplit(self.path).path.rstrip("/") or "/")
        except ApiError as error:
            code, body = (
                error.code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": error.reason,
                    "message": str(error),
                    "code": error.code,
                },
            )
        except EtcdError as error:
            code, body = (
                503,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "ServiceUnavailable",
                    "message": f"etcd: {error}",
                    "code": 503,
                },
            )
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, str) else "application/json"
        )
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def user(self) -> User | None:
        if self.server.insecure:
            return User("system:unsecured", ("system:masters",))
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        return User.from_peer_certificate(peer)

    def authenticated(self) -> User:
        user = self.user()
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def authorized(self, resource: str) -> User:
        user = self.authenticated()
        if not self.server.authorizer.allows(user, resource):
            raise ApiError(403, "Forbidden", f'User "{user.name}" cannot access {resource}')
        return user

    def handle_get(self, path: str) -> tuple[int, Any]:
        if path in PUBLIC:
            return self.server.health(path)
        if (document := discovery(self.server.api.version, path)) is not None:
            self.authenticated()  # discovery is open to every authenticated user
            return 200, document
        target = route(self.server.api.version, path)
        if target is None:
            raise ApiError(404, "NotFound", f"the server could not find {path}")
        resource, namespace, name = target
        self.authorized(resource.name)
        if resource.name == "componentstatuses":
            return 200, self.server.component_statuses()
        api = self.server.api
        found = api.get(resource, namespace, name) if name else api.list(resource, namespace)
        return 200, table(found) if "as=Table" in self.headers.get("Accept", "") else found

    def handle_write(self, path: str) -> tuple[int, Any]:
        target = route(self.server.api.version, path)
        if target is None or target[0].name == "componentstatuses":
            raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed on {path}")
        resource, namespace, name = target
        self.authorized(resource.name)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.command == "POST" and not name:
            return 201, self.server.api.create(resource, namespace, body)
        if self.command == "PUT" and name:
            return 200, self.server.api.update(resource, namespace, name, body)
        raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed on {path}")


def table(found: dict[str, Any]) -> dict[str, Any]:
    """A meta.k8s.io Table, as kubectl asks for: name and age (and status for nodes)."""
    items = found.get("items", [found])
    rows = [
        {
            "cells": [i["metadata"]["name"], ready(i), i["metadata"].get("creationTimestamp", "")],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": i["metadata"],
            },
        }
        for i in items
    ]
    columns = [
        {"name": n, "type": "string", "format": "name" if n == "Name" else ""}
        for n in ("Name", "Status", "Created")
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": columns,
        "rows": rows,
        "metadata": found.get("metadata", {}),
    }


def ready(obj: dict[str, Any]) -> str:
    conditions = obj.get("status", {}).get("conditions", [])
    ready = [c for c in conditions if c.get("type") == "Ready"]
    if obj.get("kind") != "Node":
        return obj.get("status", {}).get("phase", "")
    return "Ready" if ready and ready[0].get("status") == "True" else "NotReady"


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], api: Api, authorizer: Authorizer, *, insecure: bool = False
    ) -> None:
        super().__init__(address, Handler)
        self.api, self.authorizer, self.insecure = api, authorizer, insecure

    def health(self, path: str) -> tuple[int, Any]:
        if path == "/version":
            major, minor = version_tuple(self.api.version)
            return 200, {
                "major": str(major),
                "minor": str(minor),
                "gitVersion": f"v{self.api.version}",
                "platform": "linux/amd64",
            }
        if path in ("/livez", "/readyz") and version_tuple(self.api.version) < (1, 16):
            raise ApiError(404, "NotFound", f"the server could not find {path}")
        if path == "/livez" or self.api.etcd.healthy():
            return 200, "ok"
        return 500, "[-]etcd failed: reason withheld\nhealthz check failed"

    def component_statuses(self) -> dict[str, Any]:
        """As 1.6 did it: etcd probed WITHOUT a client certificate (its famous false alarm)."""
        items = [
            component("scheduler", "http://127.0.0.1:10251/healthz"),
            component("controller-manager", "http://127.0.0.1:10252/healthz"),
        ]
        items += [
            component(f"etcd-{i}", f"{url}/health") for i, url in enumerate(self.api.etcd.servers)
        ]
        return {"kind": "ComponentStatusList", "apiVersion": "v1", "items": items}


def component(name: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, context=context, timeout=2
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2)
        connection.request("GET", parts.path)
        healthy = connection.getresponse().status == 200
        message, error = ("ok", "") if healthy else ("", "unhealthy")
    except (OSError, http.client.HTTPException) as failure:
        healthy, message, error = False, "", f"Get {url}: {failure}"
    return {
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [
            {
                "type": "Healthy",
                "status": "True" if healthy else "False",
                "message": message,
                "error": error,
            }
        ],
    }


def tls_context(flags: dict[str, str]) -> ssl.SSLContext:
    """Serving certificate; client certificates verified against --client-ca-file when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(flags["tls-cert-file"], flags["tls-private-key-file"])
    if flags.get("client-ca-file"):
        context.load_verify_locations(flags["client-ca-file"])
        # Optional: anonymous requests may still reach /healthz; a bad certificate is refused.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def serve(server: ApiServer, context: ssl.SSLContext | None) -> threading.Thread:
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(version: str, argv: list[str]) -> int:
    flags = command_line("kube-apiserver", version, argv)
    etcd = Etcd(
        flags["etcd-servers"].split(","),
        flags["etcd-cafile"],
        flags["etcd-certfile"],
        flags["etcd-keyfile"],
    )
    api = Api(version, etcd)
    authorizer = Authorizer(
        flags.get("authorization-mode", "AlwaysAllow"), flags.get("authorization-policy-file")
    )
    bind = flags.get("bind-address", "0.0.0.0")
    secure = ApiServer((bind, int(flags.get("secure-port", "6443"))), api, authorizer)
    threads = [serve(secure, tls_context(flags))]
    if flags.get("insecure-port", "0") != "0":
        address = (flags.get("insecure-bind-address", "127.0.0.1"), int(flags["insecure-port"]))
        threads.append(serve(ApiServer(address, api, authorizer, insecure=True), None))
    print(
        f"kube-apiserver SIMULATOR v{version} serving on {bind}:{secure.server_port}",
        file=sys.stderr,
        flush=True,
    )
    while not _bootstrapped(api):
        time.sleep(1)
    for thread in threads:
        thread.join()
    return 0


def _bootstrapped(api: Api) -> bool:
    try:
        api.ensure_namespaces()
    except EtcdError:
        return False
    return True
