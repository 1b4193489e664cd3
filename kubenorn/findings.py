"""Findings: what a check saw, per host, with a monitoring-plugin status and exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rich.console import Console

from kubenorn.text import for_console, scrub_secrets

Status = Literal["OK", "WARNING", "CRITICAL", "UNKNOWN"]

# Exit codes of the monitoring-plugin convention (Nagios, Icinga, Sensu).
EXIT_CODES: dict[Status, int] = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
# A known CRITICAL outranks a check that could not run; that outranks a WARNING.
_RANK: dict[Status, int] = {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}


@dataclass(frozen=True)
class Finding:
    """One thing a check saw: `check` names the check, `detail` says what and why."""

    check: str
    host: str
    status: Status
    detail: str

    def __post_init__(self) -> None:
        # Details quote errors, and errors quote what they choked on: never key material.
        object.__setattr__(self, "detail", scrub_secrets(self.detail))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


def severity(status: Status) -> int:
    """How bad `status` is, for ordering: CRITICAL, then UNKNOWN, WARNING, OK."""
    return _RANK[status]


def worst(findings: Iterable[Finding]) -> Status:
    """The most severe status among `findings` (OK when there are none)."""
    return max((f.status for f in findings), key=_RANK.__getitem__, default="OK")


def exit_code(findings: Iterable[Finding]) -> int:
    """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, from the worst of `findings`."""
    return EXIT_CODES[worst(findings)]


def problems(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that are not OK, most severe first, then by host and check."""
    bad = [f for f in findings if not f.ok]
    return sorted(bad, key=lambda f: (-_RANK[f.status], f.host, f.check, f.detail))


STYLES: dict[Status, str] = {
    "OK": "green",
    "WARNING": "yellow",
    "CRITICAL": "bold red",
    "UNKNOWN": "magenta",
}


def print_findings(
    findings: list[Finding], console: Console, *, title: str, verbose: bool = False
) -> None:
    """The problems (every finding when `verbose`), one aligned line each, then the counts."""
    print_finding_lines(findings, console, verbose=verbose)
    counts = {status: sum(1 for f in findings if f.status == status) for status in EXIT_CODES}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    console.print(f"{title}: {worst(findings)} ({summary or 'nothing checked'})", soft_wrap=True)


def print_finding_lines(findings: list[Finding], console: Console, *, verbose: bool) -> None:
    """The problems (every finding when `verbose`), one aligned line each.

    Plain lines rather than a table: cron mail and CI logs keep them whole and greppable.
    """
    shown = findings if verbose else problems(findings)
    host_width = max((len(f.host) for f in shown), default=0)
    check_width = max((len(f.check) for f in shown), default=0)
    for f in shown:
        status = f"[{STYLES[f.status]}]{f.status:<8}[/]"
        line = f"{f.host:<{host_width}}  {f.check:<{check_width}}  {f.detail}"
        console.print(f"{status} {for_console(line)}", soft_wrap=True)


def print_problems(console: Console, problems: list[Finding]) -> None:
    """One line per finding, its status in colour, its detail as text (never markup)."""
    for f in problems:
        line = for_console(f"{f.host} {f.check}: {f.detail}")
        console.print(f"[{STYLES[f.status]}]{f.status}[/] {line}", soft_wrap=True)
