"""verify's first line, as a monitoring plugin prints it (Nagios plugin guidelines):

    KUBENORN OK - 128 checks (128 OK) | duration=12.34s;; hosts=6;; etcd=0.81s;; ...

the status word of the worst finding (the exit code's), the findings counted per status (most
severe first), then performance data: the run's wall time, the hosts checked and each step's
wall time, in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubenorn.findings import Finding, Status, severity, worst

PLUGIN = "KUBENORN"


def could_not_run_line() -> str:
    """The verdict when verify could not judge at all (its error, on stderr, says why)."""
    return f"{PLUGIN} UNKNOWN - could not run: see the error on stderr"


def interrupted_line() -> str:
    """The verdict when Ctrl-C stopped verify before it could judge."""
    return f"{PLUGIN} UNKNOWN - interrupted: no verdict"


def perfdata_label(name: str) -> str:
    """`name` as a perfdata label: `=` is not allowed (made `_`), a single quote is doubled,
    and a label with a space or a quote is single-quoted."""
    label = name.replace("=", "_")
    if not any(c.isspace() or c == "'" for c in label):
        return label
    return "'" + label.replace("'", "''") + "'"


def perfdata(label: str, value: float | int, unit: str = "") -> str:
    """One perfdata item, `label=value[unit];;` (no warning or critical thresholds)."""
    number = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f"{perfdata_label(label)}={number}{unit};;"


def counts(findings: Sequence[Finding]) -> str:
    """`2 CRITICAL, 1 WARNING, 125 OK`: each status present, the most severe first."""
    present: set[Status] = {f.status for f in findings}
    ordered = sorted(present, key=severity, reverse=True)
    return ", ".join(f"{sum(1 for f in findings if f.status == s)} {s}" for s in ordered)


def status_line(
    findings: Sequence[Finding], *, duration: float, hosts: int, steps: Mapping[str, float]
) -> str:
    """The plugin's one-line verdict with its performance data."""
    checked = f"{len(findings)} checks ({counts(findings) or 'nothing checked'})"
    data = [perfdata("duration", duration, "s"), perfdata("hosts", hosts)]
    data += [perfdata(step, seconds, "s") for step, seconds in steps.items()]
    return f"{PLUGIN} {worst(findings)} - {checked} | {' '.join(data)}"
