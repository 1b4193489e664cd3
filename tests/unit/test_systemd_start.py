"""ensure_service's start: a failed start job counts only if systemd's Restart= brought the
unit up within the grace period; anything else fails the host with systemctl's own words."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fakes import Fleet, run_on
from nornir.core import Nornir

from tasks import systemd
from tasks.systemd import ensure_service

HOST = "h1"
UNIT = "kube-controller-manager.service"
FAILED_JOB = "Job for kube-controller-manager.service failed because of unavailable resources"


@dataclass(frozen=True)
class Case:
    start_rcs: list[int]  # `systemctl start`'s exit code, per attempt
    active_after: list[int]  # is-active exit codes after the start, one per poll
    result: str  # systemd's Result of the failed job
    failed: bool


CASES = {
    "the start succeeds": Case([0], [], "success", False),
    "the job failed, Restart= brought it up": Case([1], [3, 0], "exit-code", False),
    "the job failed and it stays down": Case([1], [3, 3, 3], "exit-code", True),
    "no spawn (resources), the retry starts it": Case([1, 0], [3, 3, 3], "resources", False),
    "no spawn three times": Case([1, 1, 1], [3], "resources", True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_failed_start_counts_only_when_the_unit_comes_up(
    make_nr: Callable[..., Nornir], fleet: Fleet, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    monkeypatch.setattr(systemd, "RESTART_GRACE", 1.5)  # two polls, a second apart
    answers = iter([3, *case.active_after])  # inactive before the start
    starts = iter(case.start_rcs)

    def is_active(_line: str, _stdin: bytes) -> tuple[int, str, str]:
        return next(answers, case.active_after[-1] if case.active_after else 0), "", ""

    def start(_line: str, _stdin: bytes) -> tuple[int, str, str]:
        rc = next(starts)
        return rc, "", FAILED_JOB if rc else ""

    fleet[HOST].script.update(
        {
            f"systemctl is-enabled --quiet {UNIT}": (0, "", ""),
            re.compile(rf"^systemctl is-active --quiet {re.escape(UNIT)}$"): is_active,
            f"test -e {systemd.owed_marker(UNIT)}": (1, "", ""),
            f"systemctl start {UNIT}": start,
            f"systemctl show --property=Result --value {UNIT}": (0, f"{case.result}\n", ""),
            f"rm -f {systemd.owed_marker(UNIT)}": (0, "", ""),
        }
    )
    result = run_on(make_nr(), HOST, ensure_service, unit=UNIT)
    assert result.failed is case.failed
    assert next(starts, None) is None, "every start attempt the case expects was made"
    if case.failed:
        assert FAILED_JOB in str(result[0].exception)
    else:
        assert result[0].changed and result[0].diff == f"start {UNIT}\n"


def test_the_drill_drop_in_overrides_kubenorns_restart_policy() -> None:
    """systemd applies drop-ins by file name, the last one winning."""
    from tasks.etcd import DRILL_DROPIN
    from tasks.systemd import dropin_path

    ours = dropin_path("etcd.service", "kubenorn")
    assert sorted([posixpath.basename(ours), posixpath.basename(DRILL_DROPIN)])[-1] == (
        posixpath.basename(DRILL_DROPIN)
    )
