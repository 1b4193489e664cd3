"""An ad-hoc command on a host: whatever it exits with is its answer, not an error."""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from tasks.ssh import run


def run_adhoc(task: Task, *, argv: Sequence[str], sudo: bool = False) -> Result:
    """Run `argv` (one argument: a shell command line, through `sh -c`); failed when it exits
    non-zero, with rc, stdout and stderr in the result either way."""
    command = ["sh", "-c", argv[0]] if len(argv) == 1 and " " in argv[0].strip() else list(argv)
    done = run(task, command, sudo=sudo, ok_codes=range(256))
    return Result(
        host=task.host,
        result=done.stdout,
        failed=done.rc != 0,
        rc=done.rc,
        stdout=done.stdout,
        stderr=done.stderr,
        record_data={"rc": done.rc, "stdout": done.stdout, "stderr": done.stderr},
    )
