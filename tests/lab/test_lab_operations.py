"""Operating kubenorn on the lab: cron's bare environment, the lock, secrets, the notebook."""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
from lab_support import verdict

from kubenorn.lock import exclusive
from kubenorn.nornir_setup import REPO_ROOT
from runbooks import deploy, facts, verify

MARKER = "kubenorn-secret-marker-3b9f"


@pytest.fixture(scope="module")
def deployed(lab, lab_inventory: Path) -> Path:  # noqa: ANN001
    """The whole inventory deployed (etcd, and every host's certificates)."""
    assert deploy.main(["-i", str(lab_inventory), "--quiet"]) == 0
    return lab_inventory


def test_verify_under_crons_bare_environment_is_silent_and_ok(
    deployed: Path, private_history: Path
) -> None:
    python = REPO_ROOT / ".venv" / "bin" / "python"
    done = subprocess.run(
        [
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            f"KUBENORN_HISTORY_DB={private_history}",
            str(python),
            "-m",
            "runbooks.verify",
            "-i",
            str(deployed),
            "--quiet",
        ],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_second_concurrent_verify_exits_3_and_says_why(
    deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with exclusive("verify", deployed):
        assert verify.main(["-i", str(deployed), "--quiet"]) == 3
    assert "already running" in capsys.readouterr().err
    assert verify.main(["-i", str(deployed), "--quiet"]) == 0


def test_secrets_never_reach_any_output(
    deployed: Path,
    tmp_path: Path,
    private_history: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KUBENORN_SUDO_PASSWORD", MARKER)
    monkeypatch.setenv("KUBENORN_SSH_KEY_PASSPHRASE", MARKER)
    outputs = [tmp_path / "facts.json", tmp_path / "facts.xml"]
    assert (
        facts.main(["-i", str(deployed), "--json", str(outputs[0]), "--junit", str(outputs[1])])
        == 0
    )
    assert verify.main(["-i", str(deployed), "--verbose", "--json", str(tmp_path / "v.json")]) == 0
    captured = capfd.readouterr()
    texts = [captured.out, captured.err, *(p.read_text() for p in tmp_path.glob("*.*"))]
    texts.append(private_history.read_bytes().decode(errors="replace"))
    assert all(MARKER not in text for text in texts)
    assert "<testcase" in outputs[1].read_text()


def test_the_notebook_runs_top_to_bottom_on_real_history(
    deployed: Path,
    private_history: Path,
    run_notebook,  # noqa: ANN001 - tests/conftest.py
) -> None:
    assert facts.main(["-i", str(deployed), "--quiet"]) == 0
    assert verify.main(["-i", str(deployed), "--quiet"]) == 0
    with sqlite3.connect(private_history) as db:
        assert db.execute("SELECT count(*) FROM findings").fetchone()[0] > 0
    outputs = run_notebook(deployed)  # the notebook verifies it again, through the API
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {})) for o in outputs)
    assert "kube.node01" in text and "etcd.quorum" in text
    # The notebook's own verify, via the API: on failure, its problems table says why.
    verdict = next(o["data"] for o in outputs if "Result verify" in str(o.get("data", {})))
    assert "OK (exit 0)" in verdict["text/plain"], verdict.get("text/html")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the plots render: status per check over time, durations


def test_drift_from_the_rendered_configuration_is_a_warning_naming_the_file(
    deployed: Path,
    lab,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    conf = "/etc/etcd/etcd.conf"
    original = lab.ssh("kube.controller02", ["cat", conf]).stdout
    lab.ssh("kube.controller02", ["sh", "-c", f"echo '# edited by hand' >> {conf}"])
    try:
        capsys.readouterr()
        assert verify.main(["-i", str(deployed), "--quiet"]) == 1
        out = capsys.readouterr().out
        assert verdict(out) == "WARNING"
        assert "kube.controller02  drift" in out and conf in out
        assert lab.ssh("kube.controller02", ["tail", "-1", conf]).stdout == "# edited by hand\n"
    finally:
        lab.ssh("kube.controller02", ["sh", "-c", f"printf %s {shlex.quote(original)} > {conf}"])
    assert verify.main(["-i", str(deployed), "--quiet"]) == 0


def test_retry_failed_reruns_only_the_hosts_that_failed(
    lab,
    lab_inventory: Path,
    private_history: Path,  # noqa: ANN001
) -> None:
    from kubenorn import history

    lab.stop_host("kube.node03")
    try:
        assert facts.main(["-i", str(lab_inventory), "--quiet"]) == 1
    finally:
        lab.start_host("kube.node03")
    failed_run = history.latest_run_id("facts")
    # The retry runs in a new process; it shares this test's history through the environment.
    assert facts.main(["--retry-failed"]) == 0
    retry = history.latest_run_id("facts")
    assert retry is not None and retry != failed_run
    assert {r["host"] for r in history.records_of(retry)} == {"kube.node03"}
