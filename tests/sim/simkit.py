"""Test kit for the simulators: certificates, a real etcd on loopback, launchers, a client."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubenorn.nornir_setup import REPO_ROOT

SIM_DIR = REPO_ROOT / "lab" / "sim"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    directory: Path

    def issue(
        self, name: str, *, cn: str, orgs: tuple[str, ...] = (), server: bool = False
    ) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return write_pair(self.directory, name, cert, key)


def write_pair(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[str, str]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def new_authority(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_pair(directory, name, cert, key)
    return Authority(cert, key, directory)


class LocalEtcd:
    """One etcd member on 127.0.0.1 with client-certificate TLS; stop and start at will."""

    def __init__(self, directory: Path, pki: dict[str, Any]) -> None:
        self.directory, self.pki = directory, pki
        self.client_port, self.peer_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        cert, key = self.pki["etcd_server"]
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                "etcd",
                "--name",
                "sim",
                "--data-dir",
                str(self.directory / "data"),
                "--listen-client-urls",
                self.url,
                "--advertise-client-urls",
                self.url,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"sim={peer}",
                "--cert-file",
                cert,
                "--key-file",
                key,
                "--client-cert-auth",
                "--trusted-ca-file",
                str(self.pki["ca"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.client_port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("local etcd did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


def simulator(
    binary_module: str, version: str, argv: list[str], binary: str | None = None
) -> subprocess.Popen[str]:
    """Start a simulator as a process, as its packaged /usr/bin launcher would."""
    leading = f"{binary!r}, " if binary else ""
    launcher = (
        f"import sys; sys.path.insert(0, {str(SIM_DIR)!r}); "
        f"from kubesim.{binary_module} import main; "
        f"sys.exit(main({leading}{version!r}, sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", launcher, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def apiserver_argv(pki: dict[str, Any], etcd: LocalEtcd, port: int, *extra: str) -> list[str]:
    etcd_cert, etcd_key = pki["etcd_client"]
    cert, key = pki["apiserver"]
    return [
        f"--etcd-servers={etcd.url}",
        f"--etcd-cafile={pki['ca']}",
        f"--etcd-certfile={etcd_cert}",
        f"--etcd-keyfile={etcd_key}",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        f"--client-ca-file={pki['ca']}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--authorization-mode=Node,RBAC",
        *extra,
    ]


class Client:
    def __init__(self, port: int, pki: dict[str, Any], identity: str | None = "admin") -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=pki["ca"])
        if identity:
            self.context.load_cert_chain(*pki[identity])

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=5
        )
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None)
            response = connection.getresponse()
            payload = response.read().decode()
        finally:
            connection.close()
        try:
            return response.status, json.loads(payload)
        except json.JSONDecodeError:
            return response.status, payload


def wait_until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
