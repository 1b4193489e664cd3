"""Run records: every task outcome of a run as one flat, serialisable row."""

from __future__ import annotations

import getpass
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.inventory import Host
from nornir.core.task import MultiResult, Result, Task

from kubenorn.text import scrub_secrets

Status = Literal["ok", "changed", "failed", "skipped"]


@dataclass
class Record:
    """One task outcome on one host."""

    run_id: str
    runbook: str
    host: str
    task: str
    status: Status
    changed: bool
    duration: float
    diff: str = ""
    message: str = ""
    data: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunInfo:
    """What a run was: which runbook, against what, when, by whom, and its verdict."""

    run_id: str
    runbook: str
    inventory: str
    argv: list[str]
    dry_run: bool
    started_at: str
    user: str = field(default_factory=getpass.getuser)
    control_host: str = field(default_factory=socket.gethostname)
    finished_at: str = ""
    exit_code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_run_id() -> str:
    """A run id that sorts by time and is unique across machines."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def failure_message(result: Result) -> str:
    """The message a person needs: the innermost failure's own words, never a traceback.

    Key material an error quoted (a corrupt kubeconfig's client-key-data) is redacted.
    """
    return scrub_secrets(_failure_text(result))


def _failure_text(result: Result) -> str:
    error = result.exception
    if isinstance(error, NornirSubTaskError):
        inner = next((r for r in error.result if r.failed and r is not error.result[0]), None)
        inner = inner or next((r for r in error.result if r.failed), None)
        return _failure_text(inner) if inner is not None else str(error)
    if error is None:
        return str(result.result or "failed")
    text = str(error).strip()
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


def status_of(result: MultiResult) -> Status:
    if result.failed:
        return "failed"
    return "changed" if result.changed else "ok"


class RecordCollector:
    """A Nornir processor that turns every task and subtask outcome into a Record."""

    def __init__(self, run_id: str, runbook: str) -> None:
        self.run_id = run_id
        self.runbook = runbook
        self.records: list[Record] = []
        self._paths: dict[str, list[tuple[str, float]]] = {}
        self._lock = threading.Lock()

    def task_started(self, task: Task) -> None:
        return None

    def task_completed(self, task: Task, result: Any) -> None:
        return None

    def task_instance_started(self, task: Task, host: Host) -> None:
        self._enter(task, host)

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        self._leave(host, result)

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        self._enter(task, host)

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        self._leave(host, result)

    def skipped(self, host: str, step: str, reason: str) -> None:
        """Record that `step` did not run on `host`."""
        record = Record(self.run_id, self.runbook, host, step, "skipped", False, 0.0, "", reason)
        with self._lock:
            self.records.append(record)

    def _enter(self, task: Task, host: Host) -> None:
        with self._lock:
            self._paths.setdefault(host.name, []).append((task.name, time.monotonic()))

    def _leave(self, host: Host, result: MultiResult) -> None:
        with self._lock:
            stack = self._paths[host.name]
            path = "/".join(name for name, _ in stack)
            _, started = stack.pop()
        own = result[0]
        record = Record(
            run_id=self.run_id,
            runbook=self.runbook,
            host=host.name,
            task=path,
            status=status_of(result),
            changed=bool(result.changed),
            duration=round(time.monotonic() - started, 6),
            diff=own.diff or "",
            message=failure_message(own) if result.failed else "",
            data=getattr(own, "record_data", None),
        )
        with self._lock:
            self.records.append(record)
