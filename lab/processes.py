"""Commands the lab runs on the machine, and the background processes it keeps (by PID file)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lab.settings import LabError


def sh(
    argv: list[str],
    *,
    check: bool = True,
    timeout: float = 600,
    input_text: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv`; LabError naming the command and its stderr when it fails."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            cwd=cwd,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"`{' '.join(argv)}`: {error}") from error
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-1500:]
        raise LabError(f"`{' '.join(argv)}` exited {done.returncode}: {detail}")
    return done


def start_background(
    argv: list[str], log: Path, pid_file: Path, before_exec: Callable[[], None] | None = None
) -> int:
    """Start `argv` detached (own session, no stdin), record its PID; the PID. `before_exec`
    runs in the child just before it executes `argv` (e.g. to join cgroups)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=before_exec,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def alive_pid(pid_file: Path, must_contain: str) -> int | None:
    """The PID in `pid_file` if that process lives and its command line has `must_contain`."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if must_contain in cmdline else None


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _exists(pid):
                return
            time.sleep(0.1)
    if _exists(pid):
        raise LabError(f"process {pid} survived SIGKILL")


def _exists(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
