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


def block_span(lines: Sequence[str]) -> tuple[int, int] | None:
    """The first and last line of the managed block in `lines`; None when it has none."""
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == END]
    if starts and ends and ends[-1] > starts[0]:
        return starts[0], ends[-1]
    return None


def replace_block(current: str, block: str) -> str:
    """`current` with its managed block replaced by `block` (appended when absent)."""
    lines = current.splitlines(keepends=True)
    span = block_span(lines)
    if span is not None:
        return "".join(lines[: span[0]]) + block + "".join(lines[span[1] + 1 :])
    separator = "" if not current or current.endswith("\n") else "\n"
    return current + separator + block


def remove_block(current: str) -> str:
    """`current` without kubenorn's managed block (unchanged when it has none)."""
    lines = current.splitlines(keepends=True)
    span = block_span(lines)
    if span is None:
        return current
    return "".join(lines[: span[0]]) + "".join(lines[span[1] + 1 :])


def ensure_hosts_block_absent(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure /etc/hosts carries no kubenorn block; the rest of the file is left as it is."""
    current = read_file(task, HOSTS_FILE)
    if current is None:
        return Result(host=task.host, changed=False)
    desired = remove_block(current.decode())
    written = task.run(task=ensure_file, path=HOSTS_FILE, content=desired, dry_run=dry_run)
    return Result(host=task.host, changed=written.changed, diff=written[0].diff)


def ensure_hosts_file(
    task: Task, *, entries: Sequence[tuple[str, Sequence[str]]], dry_run: bool | None = None
) -> Result:
    """Ensure /etc/hosts carries exactly `entries` in kubenorn's managed block."""
    current = (read_file(task, HOSTS_FILE) or b"").decode()
    desired = replace_block(current, render_block(entries))
    written = task.run(task=ensure_file, path=HOSTS_FILE, content=desired, dry_run=dry_run)
    return Result(host=task.host, changed=written.changed, diff=written[0].diff)
