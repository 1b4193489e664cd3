"""Ctrl-C: tasks in flight finish, nothing further starts, the summary prints, exit 130 (and
verify's first line is still a verdict)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
from nornir.core import Nornir
from nornir.core.task import Result, Task
from pki_support import INVENTORIES

from kubenorn import cli
from kubenorn.monitoring import interrupted_line
from kubenorn.run import Run, RunInterrupted


def slow_step(task: Task) -> Result:
    time.sleep(0.6)
    return Result(host=task.host, result="finished")


def test_ctrl_c_lets_tasks_in_flight_finish_and_starts_nothing_more(
    nr: Nornir, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(nr, "interrupt-test", argv=[])

    def body(argv: list[str]) -> int:
        threading.Timer(0.2, signal.raise_signal, args=(signal.SIGINT,)).start()
        run.step("first", slow_step)
        run.step("second", slow_step)
        return 0

    started = time.monotonic()
    assert cli.main_wrapper(body, []) == 130
    assert time.monotonic() - started >= 0.6, "the step in flight was abandoned"
    first = [r for r in run.records if r.task == "first"]
    assert len(first) == len(nr.inventory.hosts) and {r.status for r in first} == {"ok"}
    assert not [r for r in run.records if r.task == "second"]
    assert run.info.exit_code == 130
    captured = capsys.readouterr()
    assert "interrupt-test" in captured.out and "interrupted" in captured.err


@pytest.mark.parametrize("during", ["a step", "the start"])
def test_an_interrupted_verify_still_gives_an_unknown_verdict_first(
    nr: Nornir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], during: str
) -> None:
    from runbooks import verify

    run = Run(nr, "verify", argv=[])

    def interrupted(*args: Any, **kwargs: Any) -> Run:
        raise RunInterrupted(run) if during == "a step" else KeyboardInterrupt

    monkeypatch.setattr(verify, "verify_cluster", interrupted)
    assert verify.main(["-i", str(INVENTORIES / "good"), "--quiet"]) == 130
    captured = capsys.readouterr()
    first, *rest = captured.out.splitlines()
    assert first == interrupted_line() == "KUBENORN UNKNOWN - interrupted: no verdict"
    assert captured.err.startswith("interrupted")
    if during == "a step":  # then the summary of the run, closed with 130
        assert run.info.exit_code == 130 and rest[-1] == "0 hosts, 0 changed steps, 0 failed hosts"
    else:
        assert rest == []
