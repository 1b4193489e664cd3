"""kubenorn as a site that forbids root logins runs it: a user with a sudo password and an
encrypted key deploys, verifies, backs up and restores; neither secret, nor any private key,
reaches an output (console, JSON, JUnit, history, Nornir's own log)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubenorn.cluster import load_cluster
from kubenorn.etcd_client import endpoints
from lab.machine import Lab
from runbooks import deploy, etcd_backup, etcd_restore, verify

USER = "kubenorn"
PASSWORD = "sudo-secret-7d1e9a"
PASSPHRASE = "key-secret-5c2a0b"
# The last two: any PEM private key, and the base64 of "-----BEGIN" (a kubeconfig's key data).
SECRETS = (PASSWORD, PASSPHRASE, "PRIVATE KEY", "LS0tLS1CRUdJTi")


@pytest.fixture(scope="module")
def non_root(lab: Lab, lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the lab inventory whose SSH user is USER with an encrypted key (its PKI
    state copied too, so nothing is issued again)."""
    directory = tmp_path_factory.mktemp("non-root") / "inventory"
    shutil.copytree(lab_inventory, directory, ignore=shutil.ignore_patterns(".backups", ".restore"))
    key = directory / "id_user"
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", USER, "-f", str(key)]
    subprocess.run(argv, check=True)
    lab.ensure_sudo_user(USER, PASSWORD, key.with_suffix(".pub").read_text().strip())
    defaults = yaml.safe_load((directory / "defaults.yaml").read_text())
    defaults["username"] = USER
    defaults["data"]["ssh"]["key_file"] = key.name
    (directory / "defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    return directory


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The sudo password and key passphrase in kubenorn's variables; Nornir's log on."""
    monkeypatch.setenv("KUBENORN_SUDO_PASSWORD", PASSWORD)
    monkeypatch.setenv("KUBENORN_SSH_KEY_PASSPHRASE", PASSPHRASE)
    log = tmp_path / "nornir.log"
    monkeypatch.setenv("KUBENORN_NORNIR_LOG", str(log))
    return log


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_a_sudo_user_deploys_and_verifies_and_no_secret_reaches_an_output(
    non_root: Path,
    secrets_set: Path,
    tmp_path: Path,
    private_history: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    outputs = [tmp_path / "deploy.json", tmp_path / "verify.json", tmp_path / "verify.xml"]
    assert deploy.main(["-i", str(non_root), "--json", str(outputs[0])]) == 0
    code = verify.main(
        ["-i", str(non_root), "--verbose", "--json", str(outputs[1]), "--junit", str(outputs[2])]
    )
    captured = capfd.readouterr()
    assert code == 0, captured.out[-3000:]
    assert secrets_set.stat().st_size > 0  # Nornir did log, and it is searched too
    texts = [captured.out, captured.err, secrets_set.read_text()]
    texts += [p.read_text() for p in outputs]
    texts.append(private_history.read_bytes().decode(errors="replace"))
    assert_no_secret(texts)


def test_a_sudo_user_backs_up_and_restores(
    non_root: Path,
    secrets_set: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    members = endpoints(load_cluster(non_root))
    members[0].put("/kubenorn-non-root/kept", "from before the backup")
    try:
        assert etcd_backup.main(["-i", str(non_root), "--dest", str(tmp_path / "backups")]) == 0
        (snapshot,) = sorted((tmp_path / "backups").glob("*.db"))
        assert snapshot.stat().st_mode & 0o077 == 0  # private on the control machine
        members[0].delete_prefix("/kubenorn-non-root/")
        assert etcd_restore.main(["-i", str(non_root), str(snapshot), "--yes"]) == 0
        restored = endpoints(load_cluster(non_root))[1].range_prefix("/kubenorn-non-root/")
        assert restored == {"/kubenorn-non-root/kept": "from before the backup"}
        assert verify.main(["-i", str(non_root), "--quiet"]) == 0
    finally:
        endpoints(load_cluster(non_root))[0].delete_prefix("/kubenorn-non-root/")
    captured = capfd.readouterr()
    assert_no_secret([captured.out, captured.err, secrets_set.read_text()])
