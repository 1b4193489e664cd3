"""`check --remote`: judge the PKI files read from one host against the plan and the state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from kubenorn.cluster import Cluster, Host
from kubenorn.findings import Finding, Status
from kubenorn.pki import keys
from kubenorn.pki.check import CA_CHECKS, Context, Material, certificate_findings, mode_problem
from kubenorn.pki.kubeconfig import parse
from kubenorn.pki.placement import Placement, content, placements
from kubenorn.pki.plan import CLUSTER_CA, CertSpec, certificates, kubeconfigs
from kubenorn.pki.store import PkiError, Store


@dataclass(frozen=True)
class RemoteFile:
    """A file as read from a host: its bytes (None when absent), mode ("0600") and owner."""

    content: bytes | None
    mode: str | None = None
    owner: str | None = None


def deployed_findings(
    cluster: Cluster, host: Host, files: Mapping[str, RemoteFile], *, now: datetime, warn_days: int
) -> list[Finding]:
    """Findings for every PKI file `host` should hold, as read into `files` (path -> file)."""
    context = Context(host.name, now, warn_days)
    specs = {spec.name: spec for spec in certificates(cluster)}
    judge = _Judge(cluster, specs, Store(cluster.pki.dir), files, context)
    wanted = placements(cluster, host)
    keys_at = {p.source: p.path for p in wanted if p.kind == "key"}
    findings: list[Finding] = []
    for placement in wanted:
        findings += judge.file(placement)
        data = files.get(placement.path, RemoteFile(None)).content
        if data is None:
            continue
        if placement.kind == "kubeconfig":
            findings += judge.kubeconfig(placement, data)
        elif placement.kind == "cert":
            key = files.get(keys_at.get(placement.source, ""), RemoteFile(None)).content
            findings += judge.certificate(placement.source, data, key, placement.path)
    return findings


@dataclass(frozen=True)
class _Judge:
    cluster: Cluster
    specs: dict[str, CertSpec]
    store: Store
    files: Mapping[str, RemoteFile]
    context: Context

    def _finding(self, check: str, status: Status, detail: str) -> Finding:
        return Finding(check, self.context.host, status, detail)

    def file(self, placement: Placement) -> list[Finding]:
        """Presence, mode, owner, and sameness with the state directory."""
        path = placement.path
        remote = self.files.get(path, RemoteFile(None))
        if remote.content is None:
            return [self._finding("pki.deployed", "CRITICAL", f"{path}: missing")]
        found = []
        wanted_mode = int(placement.mode, 8)
        if remote.mode and (problem := mode_problem(int(remote.mode, 8), wanted_mode)):
            found.append(self._finding("pki.key_mode", problem[0], f"{path}: {problem[1]}"))
        if remote.owner and remote.owner != placement.owner:
            detail = f"{path}: owned by {remote.owner}, not {placement.owner}"
            found.append(self._finding("pki.deployed", "CRITICAL", detail))
        try:
            current = content(self.store, placement)
        except PkiError:
            current = None
        if remote.content != current:
            detail = f"{path}: differs from the state directory (distribute again)"
            found.append(self._finding("pki.deployed", "WARNING", detail))
        return found

    def certificate(
        self, name: str, cert_pem: bytes, key_pem: bytes | None, label: str
    ) -> list[Finding]:
        """The certificate checks, against the state's CA (the truth), with the deployed key."""
        spec = self.specs[name]
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = keys.load_private(key_pem, validate=False) if key_pem is not None else None
        except ValueError as error:
            return [self._finding("pki.present", "CRITICAL", f"{label}: unreadable: {error}")]
        checks = CA_CHECKS if spec.is_ca else None
        ca = self._ca(spec)
        return certificate_findings(spec, Material(cert, key), ca, self.context, label, checks)

    def _ca(self, spec: CertSpec) -> x509.Certificate | None:
        try:
            return self.store.load_cert(spec.signer or spec.name)
        except PkiError:
            return None

    def kubeconfig(self, placement: Placement, data: bytes) -> list[Finding]:
        label, url = placement.path, self.cluster.apiserver.url
        try:
            credentials = parse(data)
        except ValueError as error:
            return [self._finding("pki.kubeconfig", "CRITICAL", f"{label}: {error}")]
        if credentials.server != url:
            detail = f"{label}: server {credentials.server}, the inventory says {url}"
            return [self._finding("pki.kubeconfig", "CRITICAL", detail)]
        if credentials.ca_pem != self.store.read(self.store.cert_path(CLUSTER_CA)):
            detail = f"{label}: certificate-authority-data is not the cluster CA of the state"
            return [self._finding("pki.kubeconfig", "CRITICAL", detail)]
        cert = next(k.cert for k in kubeconfigs(self.cluster) if k.name == placement.source)
        return self.certificate(cert, credentials.cert_pem, credentials.key_pem, label)
