"""Key material never reaches an output; the history and snapshots are private from creation."""

from __future__ import annotations

import base64
import io
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nornir.core.task import Result

from kubenorn import cli, history
from kubenorn.findings import Finding
from kubenorn.private_files import fetch_private
from kubenorn.records import Record, RunInfo, failure_message

PEM_KEY = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEICoSeCrEtMaTeRiAl0123456789abcdefXyZ/+9qQ"
    "\n-----END EC PRIVATE KEY-----\n"
)
KEY_B64 = base64.b64encode(PEM_KEY.encode()).decode()
PEM = PEM_KEY.strip()
# YAML quotes the line it choked on, cut to a fragment of the key without its name.
CORRUPT_KUBECONFIG = f"users:\n- name: admin\n  user:\n    client-key-data: {KEY_B64}: x\n"


def yaml_error() -> str:
    try:
        yaml.safe_load(CORRUPT_KUBECONFIG)
    except yaml.YAMLError as error:
        return str(error)
    raise AssertionError("the kubeconfig should not parse")


def assert_scrubbed(text: str) -> None:
    for secret in ("LS0tLS1CRUdJT", KEY_B64[-24:], KEY_B64[40:64], "SeCrEtMaTeRiAl"):
        assert secret not in text
    assert "[redacted]" in text


@pytest.mark.parametrize(
    "message",
    [
        f"admin.kubeconfig: {yaml_error()}",
        f"cannot load key: {PEM}",
        f"key cut short: {PEM[:60]}",
        f'client-key-data: "{KEY_B64[40:]}" private_key={KEY_B64[40:]}',
    ],
)
def test_findings_and_records_never_carry_key_material(message: str) -> None:
    assert_scrubbed(Finding("kubeconfig", "kube.node01", "UNKNOWN", message).detail)
    assert_scrubbed(failure_message(Result(host=None, exception=ValueError(message))))


def test_scrubbing_keeps_what_a_person_needs() -> None:
    detail = Finding("c", "h", "UNKNOWN", f"admin.kubeconfig: {yaml_error()}").detail
    assert "admin.kubeconfig" in detail and "line" in detail
    plain = "etcd on kube.node02: connection refused (tokens: none)"
    assert Finding("c", "h", "OK", plain).detail == plain


def test_the_console_error_of_a_runbook_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    def body(argv: list[str]) -> int:
        raise cli.UsageError(f"admin.kubeconfig: {yaml_error()}")

    assert cli.main_wrapper(body, []) == cli.EXIT_UNKNOWN
    assert_scrubbed(capsys.readouterr().err)


def test_the_history_database_is_private_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "new" / "history.sqlite"
    info = RunInfo("r1", "verify", "/inv", [], False, "2026-11-25T01:00:00", exit_code=0)
    history.append_run(info, [Record("r1", "verify", "h", "t", "ok", False, 0.1)], path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_history_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "db" / "history.sqlite"
    code = (
        "import os, sys; from pathlib import Path; os.umask(0o022);"
        "from kubenorn import history;"
        "history.runs(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, cwd=Path(__file__).parents[2]
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


class Remote(io.BytesIO):
    """A remote snapshot that checks the local file's mode when the first byte is read."""

    def __init__(self, local_dir: Path) -> None:
        super().__init__(b"snapshot" * 1000)
        self.local_dir = local_dir
        self.modes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        [partial] = self.local_dir.glob("*.partial")
        self.modes.append(stat.S_IMODE(partial.stat().st_mode))
        return super().read(size)


class Client:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def open(self, path: str, mode: str = "r") -> Remote:
        return self.remote


def test_a_snapshot_is_0600_in_a_0700_directory_before_its_first_byte(tmp_path: Path) -> None:
    destination = tmp_path / "backups" / "etcd-lab-20261125T010000Z.db"
    remote = Remote(destination.parent)
    fetch_private(Client(remote), "/var/lib/kubenorn/backup-snapshot.db", destination)
    assert remote.modes and set(remote.modes) == {0o600}
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert stat.S_IMODE(destination.parent.stat().st_mode) == 0o700
    assert destination.read_bytes() == b"snapshot" * 1000
    assert not list(destination.parent.glob("*.partial"))
