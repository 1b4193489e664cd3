"""JUnit XML from run records: a test case per host and step, failures with their message."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kubenorn.records import Record, RunInfo
from kubenorn.report import failures
from kubenorn.text import printable


def junit_tree(info: RunInfo, records: list[Record], steps: list[str]) -> ET.ElementTree:
    """One <testsuite> for the run, one <testcase> per host and top-level step."""
    cases = [r for r in records if r.task in steps]
    innermost = {(r.host, r.task.split("/")[0]): r for r in failures(records)}
    suite = ET.Element(
        "testsuite",
        name=f"kubenorn.{info.runbook}",
        tests=str(len(cases)),
        failures=str(sum(1 for r in cases if r.status == "failed")),
        skipped=str(sum(1 for r in cases if r.status == "skipped")),
        timestamp=info.started_at,
        time=f"{sum(r.duration for r in cases):.3f}",
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="run_id", value=info.run_id)
    for record in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=printable(record.host),
            name=printable(record.task),
            time=f"{record.duration:.3f}",
        )
        if record.status == "failed":
            cause = innermost.get((record.host, record.task), record)
            failure = ET.SubElement(case, "failure", message=printable(cause.message))
            failure.text = printable(f"{cause.task}: {cause.message}")
        elif record.status == "skipped":
            ET.SubElement(case, "skipped", message=printable(record.message))
        if record.diff:
            ET.SubElement(case, "system-out").text = printable(record.diff)
    root = ET.Element("testsuites", name="kubenorn")
    root.append(suite)
    return ET.ElementTree(root)


def write_junit(path: Path, info: RunInfo, records: list[Record], steps: list[str]) -> None:
    """Write the run as JUnit XML to `path`."""
    tree = junit_tree(info, records, steps)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
