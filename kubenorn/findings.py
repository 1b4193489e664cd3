"""Findings: what a check saw, per host, with a monitoring-plugin status and exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


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
