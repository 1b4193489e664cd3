"""One runbook execution: steps run in order, a failed host goes no further, records kept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.inventory import Host
from nornir.core.processor import Processor
from nornir.core.task import AggregatedResult
from rich.console import Console

from kubenorn import history, kill_point
from kubenorn.interrupts import ctrl_c_deferred
from kubenorn.nornir_setup import inventory_dir_of
from kubenorn.records import Record, RecordCollector, RunInfo, new_run_id, now_iso

STDERR = Console(stderr=True)


class RunInterrupted(Exception):
    """Ctrl-C stopped the run: tasks in flight finished, no further task started."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"{run.info.runbook} {run.info.run_id} interrupted")
        self.run = run


class Run:
    """Runs steps on the hosts of a Nornir object and keeps a record of every outcome."""

    def __init__(
        self,
        nr: Nornir,
        runbook: str,
        *,
        argv: list[str],
        dry_run: bool = False,
        progress: Processor | None = None,
    ) -> None:
        self.nr = nr
        self.info = RunInfo(
            run_id=new_run_id(),
            runbook=runbook,
            inventory=str(inventory_dir_of(nr)),
            argv=argv,
            dry_run=dry_run,
            started_at=now_iso(),
        )
        self.collector = RecordCollector(self.info.run_id, runbook)
        self.processors: list[Processor] = [self.collector, *([progress] if progress else [])]
        self.failed: set[str] = set()
        self.steps: list[str] = []
        self.step_seconds: dict[str, float] = {}  # each step's wall time (summed if repeated)
        self._started = time.monotonic()
        self.findings: list[dict[str, Any]] = []

    @property
    def records(self) -> list[Record]:
        return self.collector.records

    @property
    def exit_code(self) -> int:
        """The verdict `close` stamped on the run."""
        if self.info.exit_code is None:
            raise RuntimeError(f"run {self.info.run_id} is not closed: it has no exit code yet")
        return self.info.exit_code

    @property
    def hosts(self) -> list[str]:
        return list(self.nr.inventory.hosts)

    def step(
        self,
        name: str,
        task: Callable[..., Any],
        *,
        only: Callable[[Host], bool] | None = None,
        serial: bool = False,
        even_failed: bool = False,
        **kwargs: Any,
    ) -> AggregatedResult:
        """Run `task` as step `name` on every host (matching `only`) that has not failed yet.

        `serial` runs one host at a time in inventory order and stops at the first failure,
        for rollouts where the next host must not start while one is broken. `even_failed`
        runs on hosts that failed an earlier step too: an undo must reach the host it undoes.
        """
        self.steps.append(name)
        kill_point.reached(name)
        started = time.monotonic()
        try:
            return self._step(name, task, only, serial, even_failed, kwargs)
        finally:
            elapsed = time.monotonic() - started
            self.step_seconds[name] = self.step_seconds.get(name, 0.0) + elapsed

    def elapsed(self) -> float:
        """Seconds of wall time since the run began."""
        return time.monotonic() - self._started

    def _step(
        self,
        name: str,
        task: Callable[..., Any],
        only: Callable[[Host], bool] | None,
        serial: bool,
        even_failed: bool,
        kwargs: dict[str, Any],
    ) -> AggregatedResult:
        wanted = [h for h in self.nr.inventory.hosts.values() if only is None or only(h)]
        active = [h.name for h in wanted if even_failed or h.name not in self.failed]
        for host in wanted:
            if host.name not in active:
                self.collector.skipped(host.name, name, "not run: the host failed an earlier step")
        batches = [[h] for h in active] if serial else [active]
        results = AggregatedResult(name)
        for index, batch in enumerate(batches):
            results.update(self._run_batch(name, task, batch, kwargs))
            if serial and results.failed:
                for rest in (h for later in batches[index + 1 :] for h in later):
                    self.collector.skipped(rest, name, f"not run: rollout stopped at {batch[0]}")
                break
        self.failed.update(host for host, result in results.items() if result.failed)
        return results

    def _run_batch(
        self, name: str, task: Callable[..., Any], hosts: list[str], kwargs: dict[str, Any]
    ) -> AggregatedResult:
        selected = set(hosts)
        batch = self.nr.filter(filter_func=lambda host: host.name in selected)
        # Ctrl-C lets the tasks in flight finish (a put is atomic: it lands whole or not at
        # all), then the run stops: nothing further starts.
        with ctrl_c_deferred(
            STDERR, "the tasks in flight finish, nothing further starts"
        ) as pressed:
            # on_failed=True: Nornir would otherwise skip failed hosts silently.
            results = batch.with_processors(self.processors).run(
                task=task, name=name, on_failed=True, **kwargs
            )
        if pressed:
            raise RunInterrupted(self)
        return results

    def close(self, exit_code: int) -> RunInfo:
        """Finish the run: close connections, stamp the verdict, append it to the history."""
        self.nr.close_connections(on_good=True, on_failed=True)
        self.info.finished_at = now_iso()
        self.info.exit_code = exit_code
        history.append_run(self.info, self.records, self.findings)
        return self.info

    def write_json(self, path: Path) -> None:
        """Write `{"run": ..., "records": [...]}` to `path`."""
        document: dict[str, Any] = {
            "run": self.info.as_dict(),
            "records": [record.as_dict() for record in self.records],
        }
        if self.findings:
            document["findings"] = self.findings
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
