"""A lock per runbook and inventory, so two runs (say, cron's and a person's) never overlap."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubenorn.history import check_writable, history_path


class AlreadyRunning(Exception):
    """Another run holds the lock; the message says which process."""


def lock_path(runbook: str, inventory_dir: Path) -> Path:
    digest = hashlib.sha256(str(inventory_dir.resolve()).encode()).hexdigest()[:12]
    return history_path().parent / f"{runbook}-{digest}.lock"


@contextmanager
def exclusive(runbook: str, inventory_dir: Path) -> Iterator[Path]:
    """Hold the lock of `runbook` on `inventory_dir`, or raise AlreadyRunning at once."""
    check_writable()  # the lock lives beside the history: HistoryError naming it, not a trace
    path = lock_path(runbook, inventory_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"{runbook} is already running on {inventory_dir} (pid {holder}; lock {path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        # The kernel drops the lock when the process dies: a killed run never leaves it stuck.
        yield path
