"""A test hook: the run kills itself with SIGKILL at a named point, as a crash or `kill -9` would.

Only the fault suite sets KUBENORN_TEST_KILL_AT (tests/lab/test_lab_faults.py); unset, every
call here is one dictionary lookup. Its value is a point name, optionally `+SECONDS`: the kill
then comes that long after the point is reached (in the middle of a step). Points: each step's
name when it starts, `file-rename` between a file's temporary copy and its rename, `summary`.
"""

from __future__ import annotations

import os
import signal
import threading

KILL_AT_ENV = "KUBENORN_TEST_KILL_AT"


def reached(point: str) -> None:
    """SIGKILL this process now, or after the delay, if the hook names `point`."""
    wanted = os.environ.get(KILL_AT_ENV)
    if not wanted:
        return
    name, _, delay = wanted.partition("+")
    if name != point:
        return
    if not delay:
        os.kill(os.getpid(), signal.SIGKILL)
    timer = threading.Timer(float(delay), os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()
