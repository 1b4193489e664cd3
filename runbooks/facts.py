"""Gather facts from every host and print them: `python -m runbooks.facts -i INVENTORY`."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from kubenorn import cli
from kubenorn.records import Record
from kubenorn.report import make_console
from kubenorn.run import Run
from tasks.facts import gather_facts

COLUMNS = ("os_id", "os_version", "package_manager", "init_system", "kernel", "hostname")


def facts_table(records: list[Record]) -> Table:
    """One row per host that answered, from the facts step's records."""
    table = Table(title="facts")
    for column in ("host", *COLUMNS, "addresses"):
        table.add_column(column)
    for record in sorted(records, key=lambda r: r.host):
        if record.task != "facts" or not isinstance(record.data, dict):
            continue
        facts = record.data
        cells = [str(facts[column]) for column in COLUMNS]
        table.add_row(record.host, *cells, " ".join(facts["addresses"]))
    return table


def gather(options: cli.Options, console: Console) -> Run:
    """The closed run that gathered the selected hosts' facts, its table printed unless quiet."""
    run = cli.new_run(options, "facts", progress=console)
    run.step("facts", gather_facts)
    if not options.quiet:
        console.print(facts_table(run.records))
    cli.finish(run, options, cli.EXIT_FAILED if run.failed else cli.EXIT_OK, console)
    return run


def run(argv: list[str]) -> int:
    args = cli.parser(__doc__ or "").parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("facts", args.retry_failed)
    return gather(cli.Options.parsed(args, argv), make_console()).exit_code


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
