"""What every runbook shares: its options, loading the inventory, --limit, and exit codes."""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from nornir.core import Nornir
from nornir.core.inventory import Host
from rich.console import Console

from kubenorn import history, kill_point
from kubenorn.cluster import ClusterError
from kubenorn.image_archives import ImageArchiveError
from kubenorn.junit import write_junit
from kubenorn.lock import AlreadyRunning
from kubenorn.nornir_setup import InventoryError, init_nornir
from kubenorn.pki.store import PkiError
from kubenorn.private_files import private_dir
from kubenorn.progress import StepProgress
from kubenorn.report import make_console, print_summary
from kubenorn.run import Run, RunInterrupted
from kubenorn.text import scrub_secrets

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNKNOWN = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A runbook was asked for something that cannot be done; exit 3 with this message."""


ERROR_PREFIX = "error: "  # every error message a runbook prints starts so, on stderr


def error_message(text: str) -> None:
    """Print an error for people: one prefix, on stderr, secrets scrubbed."""
    print(f"{ERROR_PREFIX}{scrub_secrets(text)}", file=sys.stderr)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error exits 3 (UNKNOWN): monitoring reads argparse's 2 as CRITICAL."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        error_message(f"{self.prog}: {message}")
        self.exit(EXIT_UNKNOWN)


def inventory_dir(value: str) -> Path:
    """-i: not a file (hosts.yaml for its folder is the usual slip); a missing one is reported
    with the inventory's own errors."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file; give the inventory directory")
    return path


def workers(value: str) -> int:
    """--workers: a whole number of hosts, at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: at least 1 host at a time")
    return number


def output_file(value: str) -> Path:
    """--json/--junit: a file that can be written, checked before any host is touched."""
    path = Path(value)
    directory = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory; give a file name")
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: directory {directory} does not exist")
    # Tried, not asked: access() says yes to root where the filesystem still says no.
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{value}: not writable ({error.strerror})") from None
    if not existed:
        path.unlink()
    return path


def output_dir(path: Path, option: str) -> Path:
    """A directory to write into (created 0700 if missing), tried before any host is touched."""
    try:
        private_dir(path)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kubenorn-write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"{option} {path}: not writable ({error.strerror or error})") from None
    return path


def parser(description: str, *, dry_run: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the options every runbook takes, each checked as it is parsed."""
    result = ArgumentParser(description=description)
    result.add_argument(
        "-i",
        "--inventory",
        type=inventory_dir,
        help="inventory directory (default: config.yaml's)",
    )
    result.add_argument(
        "-l",
        "--limit",
        nargs="+",
        default=[],
        metavar="HOST|GROUP|GLOB",
        help="run only on these hosts, groups or name patterns (also comma-separated)",
    )
    result.add_argument(
        "--workers",
        type=workers,
        help="hosts in flight at once (default: every host, at most config.yaml's "
        "hosts_in_flight, 50)",
    )
    result.add_argument(
        "--json", type=output_file, metavar="FILE", help="write the run's records here"
    )
    result.add_argument(
        "--junit", type=output_file, metavar="FILE", help="write the run as JUnit XML"
    )
    result.add_argument(
        "-v", "--verbose", action="store_true", help="more detail: OK findings, the step table"
    )
    result.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing when all is well, a short report otherwise",
    )
    result.add_argument(
        "--retry-failed",
        nargs="?",
        const="last",
        metavar="RUN",
        help="rerun, in a new process, only the hosts that failed in RUN "
        "(default: the last run of this runbook)",
    )
    if dry_run:
        result.add_argument("--dry-run", action="store_true", help="show changes, make none")
    return result


def retry_failed(runbook: str, wanted: str) -> int:
    """Rerun `runbook` with the options of run `wanted` (or the last), only on its failed hosts."""
    run_id = history.latest_run_id(runbook) if wanted == "last" else wanted
    runs = {run["run_id"]: run for run in history.runs(limit=10_000)}
    if run_id is None or run_id not in runs:
        raise UsageError(f"--retry-failed: no run {run_id or 'of ' + runbook} in the history")
    failed = sorted({r["host"] for r in history.records_of(run_id) if r["status"] == "failed"})
    if not failed:  # notes on stderr: standard output is the runbook's (verify's verdict)
        print(f"run {run_id} had no failed host: nothing to retry", file=sys.stderr)
        return EXIT_OK
    recorded: list[str] = json.loads(runs[run_id]["argv"])
    # After `--` comes an ad-hoc command (runbooks.run), not options.
    split = recorded.index("--") if "--" in recorded else len(recorded)
    options = without_options(recorded[:split], ("-l", "--limit", "--retry-failed"))
    module = f"runbooks.{runs[run_id]['runbook']}"
    command = [sys.executable, "-m", module, *options, "--limit", *failed, *recorded[split:]]
    print(f"retrying {', '.join(failed)} from run {run_id}", file=sys.stderr)
    return subprocess.run(command, check=False).returncode


def without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`argv` without the named options and the values that follow them."""
    kept: list[str] = []
    skipping = False
    for arg in argv:
        if arg.startswith("-"):
            skipping = arg.split("=", 1)[0] in options
        if not skipping:
            kept.append(arg)
    return kept


@dataclass(frozen=True)
class Options:
    """What every runbook takes, typed: the command line's (`parsed`) or the Python API's."""

    inventory: Path | None = None  # None: config.yaml's
    limit: Sequence[str] = ()  # hosts, groups or name patterns (each also comma-separated)
    workers: int | None = None
    dry_run: bool = False
    quiet: bool = False
    verbose: bool = False
    json: Path | None = None
    junit: Path | None = None
    argv: Sequence[str] = ()  # the command line the history keeps: --retry-failed reruns it

    @classmethod
    def parsed(cls, args: argparse.Namespace, argv: list[str]) -> Options:
        """The options `parser()` parsed from `argv`."""
        return cls(
            inventory=args.inventory,
            limit=tuple(args.limit),
            workers=args.workers,
            dry_run=getattr(args, "dry_run", False),
            quiet=args.quiet,
            verbose=args.verbose,
            json=args.json,
            junit=args.junit,
            argv=tuple(argv),
        )


def new_run(options: Options, runbook: str, *, progress: Console | None) -> Run:
    """A Run on the hosts `options` select, its progress shown on `progress` unless quiet."""
    history.check_writable()  # before any host is touched: a run must be recordable
    display = StepProgress(progress) if progress is not None and not options.quiet else None
    return Run(
        load(options), runbook, argv=list(options.argv), dry_run=options.dry_run, progress=display
    )


def load(options: Options) -> Nornir:
    """The Nornir object the options ask for, limited to the hosts they name."""
    nr = init_nornir(options.inventory, dry_run=options.dry_run, workers=options.workers)
    return limit(nr, options.limit) if options.limit else nr


def in_group(name: str) -> Callable[[Host], bool]:
    """A host filter: members of group `name` (a role)."""
    return lambda host: name in {group.name for group in host.groups}


def named(*names: str) -> Callable[[Host], bool]:
    """A host filter: the hosts `names`."""
    wanted = set(names)
    return lambda host: host.name in wanted


def all_but(name: str) -> Callable[[Host], bool]:
    """A host filter: every host but `name`."""
    return lambda host: host.name != name


def limit(nr: Nornir, patterns: Sequence[str]) -> Nornir:
    """Keep the hosts named, in a named group, or matching a glob; unknown names are errors."""
    selected: set[str] = set()
    for pattern in (p for item in patterns for p in item.split(",") if p):
        matched = {
            name
            for name, host in nr.inventory.hosts.items()
            if fnmatch.fnmatchcase(name, pattern)
            or pattern in {g.name for g in host.groups}
            or (pattern == "all" and "all" not in nr.inventory.groups)  # as Ansible's `all`
        }
        if not matched:
            raise UsageError(f"--limit {pattern}: no host or group of that name in the inventory")
        selected |= matched
    return nr.filter(filter_func=lambda host: host.name in selected)


def finish(
    run: Run, options: Options, exit_code: int, console: Console, *, summary: bool = True
) -> int:
    """Close the run, print its summary (unless quiet and fine) and write the reports asked for."""
    kill_point.reached("summary")
    info = run.close(exit_code)
    if summary and not (options.quiet and exit_code == EXIT_OK):
        print_summary(info, run.records, run.steps, console)
    if options.json:
        run.write_json(options.json)
    if options.junit:
        write_junit(options.junit, info, run.records, run.steps)
    return exit_code


# What stops a runbook before it can do its work: one message, exit 3.
COULD_NOT_RUN: tuple[type[Exception], ...] = (
    InventoryError,
    UsageError,
    AlreadyRunning,
    ClusterError,
    PkiError,
    ImageArchiveError,
    history.HistoryError,
)


def close_interrupted(run: Run, console: Console) -> None:
    """Close a run Ctrl-C stopped (exit 130) and print its summary."""
    info = run.close(EXIT_INTERRUPTED)
    print_summary(info, run.records, run.steps, console)


def main_wrapper(body: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run a runbook body, turning bad input and Ctrl-C into a message and an exit code."""
    try:
        return body(sys.argv[1:] if argv is None else argv)
    except COULD_NOT_RUN as error:
        error_message(str(error))
        return EXIT_UNKNOWN
    except RunInterrupted as stop:
        close_interrupted(stop.run, make_console())
        print("interrupted: tasks in flight finished, nothing further started", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
