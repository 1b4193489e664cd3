"""Messages quoting remote output (ANSI escapes, control characters, `[...]`) in every output.

JUnit XML must stay parseable XML 1.0; rich must print them as text, never as markup.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

from rich.console import Console

from kubenorn import history
from kubenorn.findings import Finding, print_findings, print_problems
from kubenorn.junit import write_junit
from kubenorn.records import Record, RunInfo
from kubenorn.report import print_summary
from runbooks import history as history_runbook

HOSTILE = "mv [/var/lib/etcd] [bold]aside[/]: \x1b[31mfailed\x1b[0m \x07\x00\x1f [/]"
INFO = RunInfo("r1", "etcd_restore", "/inv", [], False, "2026-11-25T01:00:00", exit_code=1)
RECORDS = [
    Record(
        "r1",
        "etcd_restore",
        "kube.controller01",
        "restore",
        "failed",
        False,
        0.1,
        diff=f"+{HOSTILE}",
        message=HOSTILE,
    )
]
FINDING = Finding("etcd.health", "kube.controller01", "CRITICAL", HOSTILE)


def console() -> Console:
    return Console(file=StringIO(), width=300, color_system=None)


def printed(out: Console) -> str:
    return out.file.getvalue()  # type: ignore[attr-defined]


def assert_plain(text: str) -> None:
    assert "[/var/lib/etcd]" in text and "[bold]aside[/]" in text
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text


def test_junit_of_a_hostile_message_is_xml_that_elementtree_parses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", INFO, RECORDS, ["restore"])
    failure = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase/failure")
    assert failure is not None
    assert_plain(failure.get("message", ""))
    assert "failed" in failure.get("message", "")


def test_the_summary_prints_a_hostile_message_as_text() -> None:
    out = console()
    print_summary(INFO, RECORDS, ["restore"], out)
    assert_plain(printed(out))


def test_findings_and_problems_print_a_hostile_detail_as_text() -> None:
    out = console()
    print_findings([FINDING], out, title="verify")
    print_problems(out, [FINDING])
    assert_plain(printed(out))
    assert printed(out).count("[/var/lib/etcd]") == 2


def test_history_shows_a_hostile_message_as_text(private_history: Path) -> None:
    history.append_run(INFO, RECORDS)
    out = console()
    out.print(history_runbook.records_table("r1", failed_only=False))
    assert_plain(printed(out))
