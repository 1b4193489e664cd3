"""The console summary of a run: hosts x steps, then every failure with its message."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from kubenorn.records import Record, RunInfo
from kubenorn.text import ANSI_ESCAPE, for_console

# Without a terminal (cron, CI, pipes, a log) rich would wrap at 80 columns and cut host names
# to "kube.co…": so wide that no table column and no message is ever cut or wrapped.
PLAIN_WIDTH = 10_000


def make_console(*, stderr: bool = False) -> Console:
    """The console every runbook prints to: terminal width on a TTY; otherwise plain (no
    colours) and never cutting a host name or a message. `stderr` for what must stay off
    standard output (verify's progress: a monitoring plugin's first line is its verdict)."""
    console = Console(highlight=False, stderr=stderr)
    if console.is_terminal:
        return console
    return Console(highlight=False, width=PLAIN_WIDTH, stderr=stderr)


STYLES = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "dim"}


def step_matrix(records: list[Record], steps: list[str]) -> dict[str, dict[str, str]]:
    """host -> step -> status of that step's top-level record."""
    matrix: dict[str, dict[str, str]] = {}
    for record in records:
        if record.task in steps:
            matrix.setdefault(record.host, {})[record.task] = record.status
    return matrix


def failures(records: list[Record]) -> list[Record]:
    """The innermost failed record of each host and step, so each failure is told once."""
    failed = [r for r in records if r.status == "failed"]
    paths = {(r.host, r.task) for r in failed}
    return [
        r
        for r in failed
        if not any(host == r.host and task.startswith(r.task + "/") for host, task in paths)
    ]


def summary_table(info: RunInfo, records: list[Record], steps: list[str]) -> Table:
    matrix = step_matrix(records, steps)
    table = Table(title=f"{info.runbook} {info.run_id}" + (" (dry run)" if info.dry_run else ""))
    table.add_column("host")
    for step in steps:
        table.add_column(step)
    for host in sorted(matrix):
        cells = [matrix[host].get(step, "-") for step in steps]
        table.add_row(host, *(f"[{STYLES.get(c, '')}]{c}[/]" if c in STYLES else c for c in cells))
    return table


def print_summary(
    info: RunInfo, records: list[Record], steps: list[str], console: Console | None = None
) -> None:
    """Print the hosts x steps table, the failures and a one-line count."""
    console = console or make_console()
    console.print(summary_table(info, records, steps))
    for record in failures(records):
        # Messages quote commands and their output ("[a-z]*", "[sudo]"): text, never markup.
        where = for_console(f"{record.host} {record.task}: {record.message}")
        console.print(f"[bold red]FAILED[/] {where}")
    changed = sum(1 for r in records if r.status == "changed" and r.task in steps)
    failed_hosts = sorted({r.host for r in records if r.status == "failed"})
    console.print(
        f"{len({r.host for r in records})} hosts, {changed} changed steps, "
        f"{len(failed_hosts)} failed hosts"
        + (f": {', '.join(failed_hosts)}" if failed_hosts else "")
    )


def print_nornir_result(result: Any, console: Console | None = None) -> None:
    """nornir-utils' print_result, as Nornir users know it; plain without a terminal."""
    streams = sys.stdout, sys.stderr
    from nornir_utils.plugins.functions import print_result

    # Its first import wraps stdout and stderr (colorama), resetting colours after each write.
    sys.stdout, sys.stderr = streams
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_result(result)
    text = buffer.getvalue()
    sys.stdout.write(text if (console or make_console()).is_terminal else ANSI_ESCAPE.sub("", text))
