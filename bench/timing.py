"""Wall time beside the control machine's own CPU time, for the bench scripts.

The lab's hosts share the machine's cores, so wall time partly measures them; the CPU time of
this process (and the children it waited for) is what the control machine itself spent.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable


def cpu_seconds() -> float:
    """User + system CPU of this process and the children it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, action: Callable[[], object]) -> float:
    """Run `action`, print its wall and CPU time (and its exit code if it returns one)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    outcome = action()
    wall = time.perf_counter() - started
    code = f"   exit {outcome}" if isinstance(outcome, int) else ""
    print(f"{label:<36} {wall:8.2f} s wall {cpu_seconds() - cpu:7.2f} s CPU{code}")
    return wall
