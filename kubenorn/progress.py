"""Progress of a run: a live bar per step on a terminal, one plain line per step otherwise."""

from __future__ import annotations

import threading
from typing import Any

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


class StepProgress:
    """A Nornir processor that reports hosts done and failed for each step as it runs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=console,
            transient=True,
        )
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def task_started(self, task: Task) -> None:
        if self.live:
            self.progress.start()
            total = len(task.nornir.inventory.hosts)
            self._bars[task.name] = self.progress.add_task(task.name, total=total, failed=0)

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        if not self.live:
            return
        with self._lock:
            bar = self._bars[task.name]
            failed = self.progress.tasks[bar].fields["failed"] + int(result.failed)
            self.progress.update(bar, advance=1, failed=failed)

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        if self.live:
            self.progress.stop()
            return
        failed = sorted(result.failed_hosts)
        changed = sum(1 for r in result.values() if r.changed and not r.failed)
        self.console.print(
            f"{task.name}: {len(result)} hosts, {changed} changed, "
            f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else "")
        )

    def task_instance_started(self, task: Task, host: Host) -> None:
        return None

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        return None

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        return None
