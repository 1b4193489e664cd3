"""The PKI state directory on the control machine: layout, atomic writes, permissions.

Layout (directory 0700, private keys and kubeconfigs 0600):
    NAME.crt, NAME.key        every certificate and its key, CAs included (ca, etcd-ca)
    sa.key, sa.pub            the service account signing key pair
    kubeconfigs/NAME.kubeconfig
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kubenorn.pki import keys

DIR_MODE = 0o700
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


class PkiError(Exception):
    """The PKI state cannot be used as asked; the message names the file and the fix."""


@dataclass(frozen=True)
class Store:
    root: Path

    def cert_path(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key_path(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def public_path(self, name: str) -> Path:
        return self.root / f"{name}.pub"

    def kubeconfig_path(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        """Create the directory tree, owner-only (tightened if it was looser)."""
        for directory in (self.root, self.root / "kubeconfigs"):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if stat.S_IMODE(directory.stat().st_mode) != DIR_MODE:
                directory.chmod(DIR_MODE)

    def read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:  # unreadable, a directory: never taken for absent and replaced
            raise PkiError(f"{path}: cannot be read: {error.strerror or error}") from None

    def mode(self, path: Path) -> int | None:
        try:
            return stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return None

    def load_cert(self, name: str) -> x509.Certificate | None:
        """The certificate `name`, None when absent; PkiError when it is not a certificate."""
        pem = self.read(self.cert_path(name))
        if pem is None:
            return None
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError as error:
            raise PkiError(f"{self.cert_path(name)}: not a PEM certificate: {error}") from None

    def load_key(self, name: str, *, validate: bool = True) -> keys.PrivateKey | None:
        """The private key `name`, None when absent; PkiError when unreadable (never replaced)."""
        pem = self.read(self.key_path(name))
        if pem is None:
            return None
        try:
            return keys.load_private(pem, validate=validate)
        except (ValueError, TypeError) as error:
            raise PkiError(f"{self.key_path(name)}: not a usable private key: {error}") from None

    def save_cert(self, name: str, certificate: x509.Certificate, *, replace: bool) -> None:
        pem = certificate.public_bytes(Encoding.PEM)
        write_atomic(self.cert_path(name), pem, PUBLIC_MODE, replace=replace)

    def save_key(self, name: str, key: keys.PrivateKey, *, replace: bool) -> None:
        write_atomic(self.key_path(name), keys.private_pem(key), SECRET_MODE, replace=replace)


def write_atomic(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write `data` to `path` via a temporary file in the same directory, mode set first.

    With replace=False the final step is link(2), which fails if `path` exists: a file that
    appeared meanwhile is never overwritten.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
