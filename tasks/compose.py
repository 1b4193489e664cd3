"""Composing tasks: one Result for a component from the results of the steps it ran."""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import MultiResult, Result, Task


def combined(task: Task, steps: Sequence[MultiResult], diff_suffix: str = "") -> Result:
    """Changed if any step changed; the steps' diffs in the order they ran."""
    diff = "".join(step[0].diff or "" for step in steps) + diff_suffix
    return Result(host=task.host, changed=any(step.changed for step in steps), diff=diff)
