"""`check` of the state directory on the control machine: every planned item, as findings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding, Status
from kubenorn.pki import encryption, keys
from kubenorn.pki.check import Context, Material, certificate_findings, mode_problem
from kubenorn.pki.issue import expected_kubeconfig
from kubenorn.pki.plan import SERVICE_ACCOUNT, CertSpec, certificates, kubeconfigs
from kubenorn.pki.store import DIR_MODE, PkiError, Store

CONTROL = "control"  # findings about the control machine's state itself


def owner(spec: CertSpec) -> str:
    """The host a finding about `spec` is filed under: the host it identifies, or `cluster`."""
    return spec.host or "cluster"


def check_state(
    cluster: Cluster, *, now: datetime | None = None, warn_days: int | None = None
) -> list[Finding]:
    """Findings for every certificate, key and kubeconfig in the plan; UNKNOWN if no state."""
    store = Store(cluster.pki.dir)
    if not store.exists():
        detail = f"no PKI state in {store.root}: run `python -m runbooks.pki init` first"
        return [Finding("pki.state", CONTROL, "UNKNOWN", detail)]
    now = now or datetime.now(UTC)
    warn = cluster.pki.warn_days if warn_days is None else warn_days
    findings = _directory(store)
    specs = certificates(cluster)
    cas = {spec.name: _load_cert(store, spec.name) for spec in specs if spec.is_ca}
    for spec in specs:
        context = Context(owner(spec), now, warn)
        signer = cas.get(spec.signer) if spec.signer else None
        findings += _certificate(store, spec, signer, context)
    findings += _service_account(store) + _encryption_key(store)
    return findings + _kubeconfigs(cluster, store, {s.name: s for s in specs})


def _directory(store: Store) -> list[Finding]:
    mode = store.mode(store.root)
    if mode is not None and mode & ~DIR_MODE:
        detail = f"{store.root}: mode {mode:04o} is more open than {DIR_MODE:04o}"
        return [Finding("pki.state", CONTROL, "WARNING", detail)]
    return []


def _load_cert(store: Store, name: str) -> x509.Certificate | None:
    try:
        return store.load_cert(name)
    except PkiError:
        return None  # reported by that certificate's own check


def _certificate(
    store: Store, spec: CertSpec, ca: x509.Certificate | None, context: Context
) -> list[Finding]:
    try:
        material = Material(
            store.load_cert(spec.name),
            store.load_key(spec.name, validate=False),  # compared with the certificate only
        )
    except PkiError as error:
        return [Finding("pki.present", context.host, "CRITICAL", f"{spec.name}: {error}")]
    findings = certificate_findings(
        spec, material, ca, context, _label(store, store.cert_path, spec.name)
    )
    if mode := mode_problem(store.mode(store.key_path(spec.name))):
        detail = f"{_label(store, store.key_path, spec.name)}: {mode[1]}"
        findings.append(Finding("pki.key_mode", context.host, mode[0], detail))
    return findings


def _label(store: Store, path_of: Callable[[str], Path], name: str) -> str:
    """A state file as findings name it (.pki/NAME.crt): the one to look at, or to remove."""
    return str(path_of(name).relative_to(store.root.parent))


def _service_account(store: Store) -> list[Finding]:
    def finding(status: Status, detail: str) -> list[Finding]:
        return [Finding("pki.service_account", "cluster", status, f"{SERVICE_ACCOUNT}: {detail}")]

    try:
        key = store.load_key(SERVICE_ACCOUNT)
    except PkiError as error:
        return finding("CRITICAL", str(error))
    if key is None:
        return finding("CRITICAL", "service account key missing")
    if store.read(store.public_path(SERVICE_ACCOUNT)) != keys.public_pem(key):
        return finding("CRITICAL", "sa.pub does not match sa.key: run init")
    if problem := mode_problem(store.mode(store.key_path(SERVICE_ACCOUNT))):
        return finding(*problem)
    return finding("OK", "key pair present and matching")


def _encryption_key(store: Store) -> list[Finding]:
    """The Secrets encryption key: present, private, no rotation left half done."""

    def finding(status: Status, detail: str) -> list[Finding]:
        return [Finding("pki.encryption", "cluster", status, f"{encryption.STATE_FILE}: {detail}")]

    try:
        state = encryption.load_state(store)
    except PkiError as error:
        return finding("CRITICAL", str(error))
    if state is None:
        return finding("CRITICAL", "no Secrets encryption key: run init")
    if problem := mode_problem(store.mode(encryption.state_path(store))):
        return finding(*problem)
    if state.introducing and state.phase == "added" and state.incoming is not None:
        detail = f"key {state.incoming.name} made: the next deploy encrypts Secrets with it"
        return finding("OK", detail)
    if state.phase != "stable":
        detail = f"key rotation stopped at phase {state.phase}: run `rotate --encryption-key`"
        return finding("WARNING", detail)
    return finding("OK", f"key {state.current.name} ({state.current.provider})")


def _kubeconfigs(cluster: Cluster, store: Store, specs: dict[str, CertSpec]) -> list[Finding]:
    findings = []
    for spec in kubeconfigs(cluster):
        host, path = owner(specs[spec.cert]), store.kubeconfig_path(spec.name)
        content = store.read(path)
        status: Status
        expected = expected_kubeconfig(cluster, store, spec.cert, spec.user)
        if content is None:
            status, detail = "CRITICAL", "missing: run init"
        elif content != expected:
            status, detail = "CRITICAL", "stale (endpoint or credentials changed): run init"
        elif problem := mode_problem(store.mode(path)):
            status, detail = problem
        else:
            status, detail = "OK", f"points at {cluster.apiserver.url}"
        findings.append(
            Finding("pki.kubeconfig", host, status, f"kubeconfigs/{spec.name}: {detail}")
        )
    return findings
