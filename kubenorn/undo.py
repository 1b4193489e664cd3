"""Undo: a destructive step registers how to put things back before it runs; `finally` runs it.

A drill kills an etcd leader or stops an apiserver. Whatever happens next (a failed check, a
timeout, an exception, Ctrl-C), every undo still pending runs before the run ends, last
registered first, and each becomes a finding: OK saying what was put back, or CRITICAL naming
the host and unit left down. Ctrl-C while undoing is noted and deferred (each undo is bounded
by its own timeouts), then the run ends as interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console

from kubenorn.findings import Finding, print_problems
from kubenorn.interrupts import ctrl_c_deferred
from kubenorn.records import failure_message
from kubenorn.run import Run, RunInterrupted


@dataclass(frozen=True)
class Undo:
    """What puts one destructive step back: `task` as step `step` on `host`, about `unit`."""

    step: str
    host: str
    unit: str
    action: str  # what the undo does, for the report: "start etcd.service, wait until healthy"
    task: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


class Undos:
    """The undos a run owes; a context manager that runs whatever is left on the way out.

    Register an undo *before* its destructive step runs: a step interrupted half way, or one
    whose result was lost, still gets undone (every undo is safe to run when nothing needs it).
    """

    def __init__(self, run: Run, console: Console) -> None:
        self.run = run
        self.console = console
        self.pending: list[Undo] = []
        self.findings: list[Finding] = []
        self.interrupted = False  # Ctrl-C arrived while undoing

    def register(
        self, step: str, host: str, unit: str, action: str, task: Callable[..., Any], **kwargs: Any
    ) -> Undo:
        undo = Undo(step, host, unit, action, task, kwargs)
        self.pending.append(undo)
        return undo

    @property
    def ok(self) -> bool:
        """Every undo run so far worked."""
        return all(f.ok for f in self.findings)

    def undo_all(self) -> bool:
        """Run every pending undo, last registered first; True when all of them worked."""
        with ctrl_c_deferred(
            self.console, "undoing first (each step is bounded by its timeouts)"
        ) as pressed:
            while self.pending:
                self._undo(self.pending.pop())
        self.interrupted = self.interrupted or bool(pressed)
        return self.ok

    def _undo(self, undo: Undo) -> None:
        changed, problem = self._attempt(undo)
        if problem:
            detail = f"{undo.unit} LEFT DOWN: undo failed ({undo.action}): {problem}"
            self.findings.append(Finding("drill.undo", undo.host, "CRITICAL", detail))
            return
        done = "put back" if changed else "nothing to put back"
        detail = f"{undo.unit}: {undo.action}: {done}"
        self.findings.append(Finding("drill.undo", undo.host, "OK", detail))

    def _attempt(self, undo: Undo) -> tuple[bool, str]:
        """(changed, what went wrong: empty when the undo worked)."""
        try:
            results = self.run.step(
                undo.step,
                undo.task,
                only=lambda host: host.name == undo.host,
                even_failed=True,
                **undo.kwargs,
            )
        except Exception as error:  # noqa: BLE001 - reported as the undo's failure
            return False, f"{type(error).__name__}: {error}"
        result = results.get(undo.host)
        if result is None:
            return False, "host not in this run"
        if result.failed:
            return False, failure_message(next(r for r in result if r.failed))
        return result.changed, ""

    def report(self) -> None:
        """Print what was undone, and keep it with the run's findings (JSON, history)."""
        if self.findings:
            self.console.print("undone:")
            print_problems(self.console, self.findings)
        self.run.findings.extend(f.as_dict() for f in self.findings)

    def __enter__(self) -> Undos:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.undo_all()
        self.report()
        if exc_type is KeyboardInterrupt or (exc is None and self.interrupted):
            # The run is closed and summarized as interrupted (exit 130), undo records included.
            raise RunInterrupted(self.run) from None
