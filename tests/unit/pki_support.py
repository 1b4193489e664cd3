"""Helpers for the PKI and preflight tests: test inventories, and certificates built by hand.

The hand-built certificates use cryptography directly (not kubenorn's builders), so a test of
a finding does not depend on the code it checks.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubenorn.pki import keys

INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventories"
SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH


def inventory_copy(name: str, tmp_path: Path) -> Path:
    """A copy of tests/data/inventories/`name` under `tmp_path` (its .pki lands there too)."""
    target = tmp_path / name
    shutil.copytree(INVENTORIES / name, target)
    return target


def add_host(inventory: Path, name: str, address: str, groups: list[str], **data: str) -> None:
    """Append a host to the inventory's hosts.yaml, with `address` and any other `data`."""
    fields = "".join(f"    {key}: {value}\n" for key, value in {"address": address, **data}.items())
    with (inventory / "hosts.yaml").open("a") as hosts:
        hosts.write(f"{name}:\n  groups: [{', '.join(groups)}]\n  data:\n{fields}")


@dataclass
class Authority:
    """A CA made by hand."""

    cert: x509.Certificate
    key: keys.PrivateKey


def make_ca(common_name: str = "someone else's CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def load_authority(pki_dir: Path, name: str) -> Authority:
    cert = x509.load_pem_x509_certificate((pki_dir / f"{name}.crt").read_bytes())
    return Authority(cert, keys.load_private((pki_dir / f"{name}.key").read_bytes()))


@dataclass
class Leaf:
    """What a hand-built leaf certificate should say; every field can be made wrong."""

    common_name: str
    organization: str | None = None
    dns: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    eku: list[x509.ObjectIdentifier] = field(default_factory=lambda: [SERVER, CLIENT])
    not_before: timedelta = timedelta(days=-1)  # relative to now
    not_after: timedelta = timedelta(days=365)

    def sign(self, ca: Authority, key: keys.PrivateKey) -> x509.Certificate:
        now = datetime.now(UTC)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)]
        if self.organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + self.not_before)
            .not_valid_after(now + self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(self.eku), critical=False)
        )
        names = [x509.DNSName(n) for n in self.dns] + [
            x509.IPAddress(ip_address(a)) for a in self.ips
        ]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca.key, hashes.SHA256())


def new_key() -> keys.PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def read_key(pki_dir: Path, name: str) -> keys.PrivateKey:
    return keys.load_private((pki_dir / f"{name}.key").read_bytes())


def read_cert(pki_dir: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((pki_dir / f"{name}.crt").read_bytes())


def write_cert(pki_dir: Path, name: str, cert: x509.Certificate) -> None:
    (pki_dir / f"{name}.crt").write_bytes(cert.public_bytes(Encoding.PEM))


def write_key(pki_dir: Path, name: str, key: keys.PrivateKey) -> None:
    path = pki_dir / f"{name}.key"
    path.write_bytes(keys.private_pem(key))
    path.chmod(0o600)
