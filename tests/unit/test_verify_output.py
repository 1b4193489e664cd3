"""verify prints as a monitoring plugin: its first line on stdout is the verdict with
performance data, in every mode that prints; progress stays on stderr.

The real runbook on six fake hosts that look deployed and healthy (tests/unit/fake_cluster.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_cluster import deployed_fleet, forget
from fakes import Fleet

from kubenorn.findings import EXIT_CODES, Finding
from kubenorn.monitoring import could_not_run_line, perfdata_label, status_line
from runbooks import verify

# Nagios plugin guidelines: `STATUS - text | 'label'=value[UOM];[warn];[crit];[min];[max] ...`
LABEL = r"(?:[^'=\s]+|'(?:[^']|'')+')"
PERFDATA = rf"{LABEL}=\d+(?:\.\d+)?s?;;"
FIRST_LINE = re.compile(
    r"KUBENORN (OK|WARNING|CRITICAL|UNKNOWN) - (\d+) checks \(([^)]*)\) \| "
    rf"({PERFDATA}(?: {PERFDATA})*)"
)
STEPS = ("etcd", "certificates", "runtime", "load-balancer", "control-plane", "workers", "drift")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Fleet]]:
    """Six fake hosts (3 controllers, 3 nodes) after one deploy: files in place, all healthy."""
    with deployed_fleet(tmp_path_factory.mktemp("verify-output")) as settled:
        yield settled


def verify_output(
    deployed: tuple[Path, Fleet], capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, str, str]:
    inventory, fleet = deployed
    forget(fleet)
    capsys.readouterr()
    code = verify.main(["-i", str(inventory), "--no-smoke-test", *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def perfdata(line: str) -> dict[str, str]:
    match = FIRST_LINE.fullmatch(line)
    assert match, line
    return dict(item.split("=", 1) for item in match.group(4).split(" "))


@pytest.mark.parametrize("mode", [[], ["--verbose"]])
def test_the_first_line_is_the_verdict_with_perfdata(
    deployed: tuple[Path, Fleet], capsys: pytest.CaptureFixture[str], mode: list[str]
) -> None:
    code, out, err = verify_output(deployed, capsys, *mode)
    assert code == 0, out
    first, *rest = out.splitlines()
    match = FIRST_LINE.fullmatch(first)
    assert match, first
    assert match.group(1) == "OK"
    assert match.group(3) == f"{match.group(2)} OK" and int(match.group(2)) > 0
    data = perfdata(first)
    assert re.fullmatch(r"\d+\.\d\ds;;", data["duration"]), data
    assert data["hosts"] == "6;;"
    assert all(re.fullmatch(r"\d+\.\d\ds;;", data[step]) for step in STEPS), data
    assert "etcd: " in err, "progress goes to stderr"
    if mode:  # every finding, one line each, after the verdict
        assert sum(1 for line in rest if line.startswith("OK ")) == int(match.group(2))
    else:
        assert rest == [], "nothing more when all is OK"


def test_quiet_prints_nothing_when_all_is_ok(
    deployed: tuple[Path, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_output(deployed, capsys, "--quiet") == (0, "", "")


@pytest.mark.parametrize("mode", [["--quiet"], [], ["--verbose"]])
def test_a_problem_is_the_first_line_and_the_exit_code_in_every_mode(
    deployed: tuple[Path, Fleet],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: list[str],
) -> None:
    drift = verify.step_findings

    def drifted(results: object, check: str) -> list[Finding]:
        found = drift(results, check)  # type: ignore[arg-type]
        if check != "drift":
            return found
        return [*found, Finding("drift", "kube.node02", "WARNING", "/etc/hosts differs")]

    monkeypatch.setattr(verify, "step_findings", drifted)
    code, out, _ = verify_output(deployed, capsys, *mode)
    assert code == EXIT_CODES["WARNING"]
    first, *rest = out.splitlines()
    match = FIRST_LINE.fullmatch(first)
    assert match, first
    assert match.group(1) == "WARNING"
    assert match.group(3) == f"1 WARNING, {int(match.group(2)) - 1} OK"
    assert any(line.startswith("WARNING") and "kube.node02" in line for line in rest), out


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],  # argparse refuses it
        ["--limit", "no-such-host"],  # refused once the inventory is read
        ["-i", "/nonexistent/inventory"],  # no inventory to judge
    ],
)
def test_a_verify_that_cannot_run_still_says_unknown_first_and_why_on_stderr(
    deployed: tuple[Path, Fleet],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    inventory, _ = deployed
    capsys.readouterr()
    try:
        code = verify.main(["-i", str(inventory), "--quiet", *argv])
    except SystemExit as stop:
        code = stop.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert code == EXIT_CODES["UNKNOWN"]
    assert captured.out.splitlines() == [could_not_run_line()]
    assert captured.err.count("error: ") == 1, captured.err


@pytest.mark.parametrize(
    ("statuses", "word", "counts"),
    [
        ([], "OK", "nothing checked"),
        (["OK", "OK"], "OK", "2 OK"),
        (["OK", "WARNING", "OK"], "WARNING", "1 WARNING, 2 OK"),
        (["UNKNOWN", "WARNING"], "UNKNOWN", "1 UNKNOWN, 1 WARNING"),
        (["OK", "UNKNOWN", "CRITICAL", "CRITICAL"], "CRITICAL", "2 CRITICAL, 1 UNKNOWN, 1 OK"),
    ],
)
def test_the_status_word_is_the_worst_finding_and_the_counts_most_severe_first(
    statuses: list[str], word: str, counts: str
) -> None:
    findings = [Finding("c", f"h{i}", s, "d") for i, s in enumerate(statuses)]  # type: ignore[arg-type]
    line = status_line(findings, duration=1.5, hosts=2, steps={"etcd": 0.25})
    assert line == (
        f"KUBENORN {word} - {len(statuses)} checks ({counts}) | "
        "duration=1.50s;; hosts=2;; etcd=0.25s;;"
    )


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("etcd", "etcd"),
        ("load-balancer", "load-balancer"),
        ("smoke test", "'smoke test'"),
        ("it's", "'it''s'"),
        ("a=b", "a_b"),
    ],
)
def test_perfdata_labels_are_quoted_as_the_plugin_guidelines_say(name: str, label: str) -> None:
    assert perfdata_label(name) == label
