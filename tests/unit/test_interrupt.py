"""Ctrl-C: tasks in flight finish, nothing further starts, the summary prints, exit 130."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from nornir.core import Nornir
from nornir.core.task import Result, Task

from kubenorn import cli
from kubenorn.run import Run


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
