"""One lock per inventory, taken by every runbook that changes hosts or PKI state, and verify.

Two runs on one inventory (cron's verify and a person's deploy, two backups) never overlap: the
second exits 3 naming the holder (pid, runbook, start time).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubenorn.history import check_writable, history_path
from kubenorn.records import now_iso


class AlreadyRunning(Exception):
    """Another run holds the lock; the message says which process, runbook and since when."""


def lock_path(inventory_dir: Path) -> Path:
    digest = hashlib.sha256(str(inventory_dir.resolve()).encode()).hexdigest()[:12]
    return history_path().parent / f"inventory-{digest}.lock"


def describe_holder(text: str) -> str:
    """`pid N, runbook R, started T` from a lock file's content (older files held a bare pid)."""
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']}, runbook {holder['runbook']}, started {holder['started_at']}"
    except (ValueError, TypeError, KeyError):
        return f"pid {text}" if text else "another process"


@contextmanager
def exclusive(runbook: str, inventory_dir: Path) -> Iterator[Path]:
    """Hold the lock of `inventory_dir` for `runbook`, or raise AlreadyRunning at once."""
    check_writable()  # the lock lives beside the history: HistoryError naming it, not a trace
    path = lock_path(inventory_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = describe_holder(handle.read().strip())
            raise AlreadyRunning(
                f"{runbook} not started: already running on {inventory_dir} ({holder}; lock {path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "runbook": runbook, "started_at": now_iso()}))
        handle.flush()
        # The kernel drops the lock when the process dies: a killed run never leaves it stuck.
        yield path
