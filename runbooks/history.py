"""Explore the run history: `python -m runbooks.history list|show RUN|failed RUN`."""

from __future__ import annotations

import sys

from rich.table import Table

from kubenorn import history
from kubenorn.cli import EXIT_OK, ArgumentParser, UsageError, main_wrapper
from kubenorn.report import make_console
from kubenorn.text import for_console


def runs_table(limit: int) -> Table:
    table = Table(title=f"last {limit} runs ({history.history_path()})")
    for column in ("run", "runbook", "started", "exit", "dry run", "inventory"):
        table.add_column(column)
    for run in history.runs(limit=limit):
        cells = (run["run_id"], run["runbook"], run["started_at"], str(run["exit_code"]))
        table.add_row(
            *map(for_console, cells),
            "yes" if run["dry_run"] else "",
            for_console(run["inventory"]),
        )
    return table


def records_table(run_id: str, *, failed_only: bool) -> Table:
    records = history.records_of(run_id)
    if not records:
        raise UsageError(f"no run {run_id!r} in {history.history_path()}")
    table = Table(title=f"{'failures of ' if failed_only else ''}run {run_id}")
    for column in ("host", "task", "status", "duration", "message"):
        table.add_column(column)
    for record in records:
        if failed_only and record["status"] != "failed":
            continue
        table.add_row(
            for_console(record["host"]),
            for_console(record["task"]),
            record["status"],
            f"{record['duration']:.3f}s",
            for_console(record["message"] or ""),
        )
    return table


def resolve(run_id: str) -> str:
    """`last` means the newest run."""
    if run_id != "last":
        return run_id
    latest = history.latest_run_id()
    if latest is None:
        raise UsageError(f"the history {history.history_path()} holds no run yet")
    return latest


def run(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the newest runs")
    listing.add_argument("-n", type=int, default=20, help="how many runs")
    for name in ("show", "failed"):
        sub = commands.add_parser(name, help=f"{name} the records of a run")
        sub.add_argument("run", nargs="?", default="last", help="run id (default: last)")
    args = parser.parse_args(argv)
    console = make_console()
    if args.command == "list":
        console.print(runs_table(args.n))
        return EXIT_OK
    console.print(records_table(resolve(args.run), failed_only=args.command == "failed"))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
