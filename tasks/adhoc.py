"""An ad-hoc command on a host: whatever it exits with is its answer, not an error."""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from kubenorn.text import scrub_secrets
from tasks.ssh import run


def run_adhoc(task: Task, *, argv: Sequence[str], sudo: bool = False) -> Result:
    """Run `argv` (one argument with a space: a shell command line, through `sh -c`); failed
    when it exits non-zero, with rc, stdout and stderr in the result either way. Private keys
    and secret-like values in the output are redacted: it is shown, recorded and kept."""
    command = ["sh", "-c", argv[0]] if len(argv) == 1 and " " in argv[0].strip() else list(argv)
    done = run(task, command, sudo=sudo, ok_codes=range(256))
    stdout, stderr = scrub_secrets(done.stdout), scrub_secrets(done.stderr)
    return Result(
        host=task.host,
        result=stdout,
        failed=done.rc != 0,
        rc=done.rc,
        stdout=stdout,
        stderr=stderr,
        record_data={"rc": done.rc, "stdout": stdout, "stderr": stderr},
    )
