"""The fault suite's hook: a run kills itself with SIGKILL at a named point."""

from __future__ import annotations

import subprocess
import sys


def test_the_kill_hook_kills_only_at_its_point() -> None:
    """The fault suite's SIGKILL hook: a child process dies at the named point, not before."""
    code = (
        "from kubenorn import kill_point\n"
        "kill_point.reached('facts'); print('after facts', flush=True)\n"
        "kill_point.reached('hosts'); print('after hosts', flush=True)\n"
    )
    env = {"KUBENORN_TEST_KILL_AT": "hosts", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == -9
    assert done.stdout == "after facts\n"
