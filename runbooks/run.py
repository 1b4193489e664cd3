"""Run an ad-hoc command on the selected hosts, in parallel:
`python -m runbooks.run -i INVENTORY -l nodes -- uptime`.

Hosts that gave the same answer (exit status and output) are printed together; a host whose
command exits non-zero, or that cannot be reached, makes the exit 1. One argument with a space
runs through the host's shell (`sh -c`); several are one command, each argument quoted.
Exit 0 every host exited 0, 1 some did not (or was not reached), 3 bad options or inventory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from nornir.core.task import AggregatedResult, MultiResult
from rich.console import Console

from kubenorn import cli
from kubenorn.report import make_console, print_nornir_result
from kubenorn.run import Run
from kubenorn.text import for_console
from tasks.adhoc import run_adhoc


@dataclass(frozen=True)
class Answer:
    """What a host answered: the exit status and output (or, unreached, why)."""

    rc: int | None
    stdout: str
    stderr: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.error


def answer_of(result: MultiResult) -> Answer:
    first = result[0]
    rc = getattr(first, "rc", None)
    if rc is None:  # the command did not run: no connection, a timeout
        error = str(first.exception) if first.exception else str(first.result)
        return Answer(None, "", "", error.strip().splitlines()[-1] if error.strip() else "failed")
    return Answer(rc, first.stdout or "", first.stderr or "")


def grouped(results: AggregatedResult) -> list[tuple[Answer, list[str]]]:
    """Identical answers with the hosts that gave them: failures first, then by host."""
    groups: dict[Answer, list[str]] = {}
    for host in sorted(results):
        groups.setdefault(answer_of(results[host]), []).append(host)
    return sorted(groups.items(), key=lambda item: (item[0].ok, item[1]))


def print_groups(groups: list[tuple[Answer, list[str]]], console: Console) -> None:
    for answer, hosts in groups:
        count = f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}"
        if answer.error:
            status = f"[bold red]unreached[/]: {for_console(answer.error)}"
        elif answer.rc:
            status = f"[bold red]exit {answer.rc}[/]"
        else:
            status = "[green]exit 0[/]"
        console.print(f"{for_console(', '.join(hosts))} ({count}): {status}")
        for text in (answer.stdout, answer.stderr):
            for line in text.rstrip("\n").splitlines():
                console.print(f"    {for_console(line)}", soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser(__doc__ or "")
    parser.add_argument(
        "--sudo", action="store_true", help="run through sudo (for a non-root SSH user)"
    )
    parser.add_argument(
        "command", nargs="+", metavar="-- COMMAND", help="the command and its arguments"
    )
    return parser


def run_command(
    command: Sequence[str], options: cli.Options, console: Console, *, sudo: bool = False
) -> Run:
    """The closed run of `command` on the selected hosts, its answers printed grouped (unless
    quiet and every host exited 0)."""
    # No progress display: the answers are the output.
    session = cli.new_run(options, "run", progress=None)
    results = session.step("run", run_adhoc, argv=list(command), sudo=sudo)
    code = cli.EXIT_FAILED if results.failed else cli.EXIT_OK
    if options.verbose:
        print_nornir_result(results, console)
    if not (options.quiet and code == cli.EXIT_OK):
        print_groups(grouped(results), console)
    cli.finish(session, options, code, console, summary=False)
    return session


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.retry_failed:
        return cli.retry_failed("run", args.retry_failed)
    options = cli.Options.parsed(args, argv)
    return run_command(args.command, options, make_console(), sudo=args.sudo).exit_code


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
