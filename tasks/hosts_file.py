"""/etc/hosts: a block kubenorn manages, with every cluster name, leaving the rest untouched."""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Result, Task

from tasks.files import ensure_file, read_file

HOSTS_FILE = "/etc/hosts"
BEGIN = "# BEGIN kubenorn: managed block, edits inside are overwritten"
END = "# END kubenorn"


def render_block(entries: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The managed block: one `address name...` line per entry, in the order given."""
    lines = [f"{address} {' '.join(names)}" for address, names in entries]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def replace_block(current: str, block: str) -> str:
    """`current` with its managed block replaced by `block` (appended when absent)."""
    lines = current.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == END]
    if starts and ends and ends[-1] > starts[0]:
        return "".join(lines[: starts[0]]) + block + "".join(lines[ends[-1] + 1 :])
    separator = "" if not current or current.endswith("\n") else "\n"
    return current + separator + block


def ensure_hosts_file(
    task: Task, *, entries: Sequence[tuple[str, Sequence[str]]], dry_run: bool | None = None
) -> Result:
    """Ensure /etc/hosts carries exactly `entries` in kubenorn's managed block."""
    current = (read_file(task, HOSTS_FILE) or b"").decode()
    desired = replace_block(current, render_block(entries))
    written = task.run(task=ensure_file, path=HOSTS_FILE, content=desired, dry_run=dry_run)
    return Result(host=task.host, changed=written.changed, diff=written[0].diff)
