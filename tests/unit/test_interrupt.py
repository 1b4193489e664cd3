"""Ctrl-C: tasks in flight finish, nothing further starts, the summary prints, exit 130 (and
verify's first line is still a verdict)."""

from __future__ import annotations

import io
import os
import signal
import threading
from typing import Any

import pytest
from nornir.core import Nornir
from nornir.core.task import Result, Task
from pki_support import INVENTORIES
from rich.console import Console

from kubenorn import cli
from kubenorn.interrupts import ctrl_c_deferred
from kubenorn.monitoring import interrupted_line
from kubenorn.run import Run, RunInterrupted


def test_ctrl_c_lets_tasks_in_flight_finish_and_starts_nothing_more(
    nr: Nornir, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(nr, "interrupt-test", argv=[])
    in_flight, pressed = threading.Event(), threading.Event()

    def slow_step(task: Task) -> Result:
        in_flight.set()
        pressed.wait(10)  # Ctrl-C comes while every host's task is still running
        return Result(host=task.host, result="finished")

    def press_ctrl_c() -> None:
        in_flight.wait(10)
        os.kill(os.getpid(), signal.SIGINT)
        pressed.set()

    def body(argv: list[str]) -> int:
        threading.Thread(target=press_ctrl_c, daemon=True).start()
        run.step("first", slow_step)
        run.step("second", slow_step)
        return 0

    assert cli.main_wrapper(body, []) == 130
    first = [r for r in run.records if r.task == "first"]
    assert len(first) == len(nr.inventory.hosts), "the step in flight was abandoned"
    assert {r.status for r in first} == {"ok"}
    assert not [r for r in run.records if r.task == "second"]
    assert run.info.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    captured = capsys.readouterr()
    assert "interrupt-test" in captured.out and "interrupted" in captured.err


def test_inside_a_block_that_defers_ctrl_c_every_step_runs_and_the_block_has_it(
    nr: Nornir,
) -> None:
    """An undo or a restore putting members back runs steps: Ctrl-C is theirs to act on."""
    run = Run(nr, "nested-test", argv=[])

    def press_ctrl_c(task: Task) -> Result:
        os.kill(os.getpid(), signal.SIGINT)
        return Result(host=task.host)

    with ctrl_c_deferred(Console(file=io.StringIO()), "undoing first") as pressed:
        run.step("first", press_ctrl_c)
        run.step("second", lambda task: Result(host=task.host))
    assert pressed and not run.failed
    assert {r.task for r in run.records} == {"first", "second"}


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
