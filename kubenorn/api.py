"""kubenorn from Python (a notebook, a script): open an inventory, then run a runbook and read
its result as data.

    from kubenorn import api
    cluster = api.open("lab/inventory")
    cluster.verify().findings            # a pandas DataFrame; the result renders in Jupyter
    cluster.run("uptime", limit="nodes").answers
    cluster.deploy(dry_run=True).records
    cluster.upgrade(dry_run=True).output  # the plan

Each call is the runbook's own typed entry point, the one its command line calls once it has
parsed the options (`runbooks.verify.verify_cluster`, ...): the same lock, the same history,
the same exit code; what the command line would have printed (as under `--quiet`, but for
upgrade) is in `Result.output`. This module sits above the runbooks; nothing in kubenorn/ or
tasks/ imports it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from kubenorn import cli
from kubenorn.availability import INTERVAL
from kubenorn.cluster import Cluster, load_cluster
from kubenorn.findings import EXIT_CODES, exit_code
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.preflight import preflight
from kubenorn.report import PLAIN_WIDTH
from kubenorn.run import Run, RunInterrupted
from kubenorn.text import scrub_secrets

STATUS_OF_EXIT = {code: status for status, code in EXIT_CODES.items()}
RECORD_COLUMNS = ["host", "task", "status", "changed", "duration", "message", "diff"]
FINDING_COLUMNS = ["check", "host", "status", "detail"]
ANSWER_COLUMNS = ["host", "rc", "stdout", "stderr", "error"]


class KubenornError(Exception):
    """The runbook could not run at all (bad inventory or options): its own message."""


@dataclass
class Result:
    """One run: its verdict, records and findings as DataFrames, and what the CLI printed."""

    runbook: str
    exit_code: int
    output: str = ""
    run_id: str = ""
    records: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RECORD_COLUMNS))
    findings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FINDING_COLUMNS))

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def status(self) -> str:
        """OK, WARNING, CRITICAL or UNKNOWN for checks (verify, preflight); else OK or FAILED."""
        if self.runbook in ("verify", "preflight"):
            return STATUS_OF_EXIT.get(self.exit_code, "UNKNOWN")
        return "OK" if self.ok else "FAILED"

    @property
    def steps(self) -> pd.DataFrame:
        """Hosts x steps: each step's top-level status on each host."""
        top = self.records[~self.records["task"].str.contains("/", regex=False)]
        if top.empty:
            return pd.DataFrame()
        order = list(dict.fromkeys(top["task"]))
        return top.pivot_table(
            index="host", columns="task", values="status", aggfunc="last"
        ).reindex(columns=order)

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(set(self.records.loc[self.records["status"] == "failed", "host"]))

    @property
    def data(self) -> pd.DataFrame:
        """What each host's steps returned as a mapping (facts: one column per fact)."""
        rows = {
            row.host: row.data
            for row in self.records.itertuples()
            if "/" not in row.task and isinstance(row.data, dict)
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("host")

    def __str__(self) -> str:
        return self.output

    def _summary(self) -> str:
        hosts = self.records["host"].nunique() if not self.records.empty else 0
        failed = self.failed_hosts
        tail = f", failed: {', '.join(failed)}" if failed else ""
        verdict = f"{self.status} (exit {self.exit_code})"
        return f"{self.runbook} {self.run_id}: {verdict}, {hosts} hosts{tail}"

    def __repr__(self) -> str:
        return f"<kubenorn.api.Result {self._summary()}>"

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        problems = self.findings[self.findings["status"] != "OK"] if len(self.findings) else None
        tables = [("problems", problems)] if problems is not None and len(problems) else []
        return tables + [("hosts x steps", self.steps)]

    def _repr_html_(self) -> str:
        colour = "green" if self.ok else ("darkorange" if self.exit_code == 1 else "red")
        parts = [f'<p><b style="color:{colour}">{html.escape(self._summary())}</b></p>']
        for title, table in self._tables():
            if len(table):
                parts.append(f"<p><i>{html.escape(title)}</i></p>")
                parts.append(table.to_html(escape=True, na_rep="-"))
        return "\n".join(parts)


@dataclass
class RunResult(Result):
    """An ad-hoc command's result: `answers` holds each host's exit status and output."""

    @property
    def answers(self) -> pd.DataFrame:
        top = self.records[self.records["task"] == "run"]
        rows = []
        for row in top.itertuples():
            data = row.data if isinstance(row.data, dict) else {}
            error = "" if data else row.message
            rows.append(
                {
                    "host": row.host,
                    "rc": data.get("rc"),
                    "stdout": data.get("stdout", ""),
                    "stderr": data.get("stderr", ""),
                    "error": error,
                }
            )
        return pd.DataFrame(rows, columns=ANSWER_COLUMNS).sort_values("host", ignore_index=True)

    @property
    def groups(self) -> pd.DataFrame:
        """Identical answers with the hosts that gave them (as the command line prints)."""
        answers = self.answers.fillna({"rc": -1})
        keys = ["rc", "stdout", "stderr", "error"]
        grouped = answers.groupby(keys, sort=False, dropna=False)["host"].agg(", ".join)
        return grouped.reset_index()[["host", *keys]].rename(columns={"host": "hosts"})

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        return [("answers", self.groups)]


class Inventory:
    """An inventory to run against; every method runs one runbook and returns its Result."""

    def __init__(self, inventory: str | Path | None = None, *, workers: int | None = None):
        self.directory = Path(inventory) if inventory is not None else default_inventory_dir()
        self.workers = workers

    def __repr__(self) -> str:
        return f"<kubenorn.api.Inventory {self.directory}>"

    @property
    def cluster(self) -> Cluster:
        """The cluster model (ClusterError names every problem of the inventory)."""
        return load_cluster(self.directory)

    def preflight(self, *, pki: bool = True) -> Result:
        """Preflight's findings: inventory, SSH settings and PKI, before any host is touched."""
        findings = preflight(self.directory, pki=pki)
        frame = pd.DataFrame([f.as_dict() for f in findings], columns=FINDING_COLUMNS)
        return Result("preflight", exit_code(findings), findings=frame)

    def facts(self, *, limit: str | Sequence[str] | None = None) -> Result:
        """Each host's facts: `data` has a column per fact."""
        from runbooks.facts import gather

        options = self._options(limit)
        return _call(lambda console: gather(options, console))

    def verify(
        self, *, limit: str | Sequence[str] | None = None, smoke_test: bool = True
    ) -> Result:
        """Verify (with the workload smoke test unless `smoke_test=False`)."""
        from runbooks.verify import verify_cluster

        options = self._options(limit, *([] if smoke_test else ["--no-smoke-test"]))
        return _call(
            lambda console: verify_cluster(self.cluster, options, console, smoke_test=smoke_test)
        )

    def deploy(
        self,
        *,
        dry_run: bool = True,
        limit: str | Sequence[str] | None = None,
        force: bool = False,
    ) -> Result:
        """Deploy (by default a dry run: the diffs are in `records.diff`, nothing changes)."""
        from runbooks.deploy import deploy_cluster

        options = self._options(limit, *(["--force"] if force else []), dry_run=dry_run)
        return _call(lambda console: deploy_cluster(self.cluster, options, console, force=force))

    def upgrade(
        self,
        *,
        dry_run: bool = True,
        limit: str | Sequence[str] | None = None,
        probe_interval: float | None = None,
    ) -> Result:
        """Upgrade to the inventory's Kubernetes version (by default a dry run: the plan in
        `output`, the diffs in `records.diff`; otherwise the availability report in `output`)."""
        from runbooks.upgrade import upgrade_cluster

        words = [] if dry_run else ["--yes"]
        words += [] if probe_interval is None else ["--probe-interval", str(probe_interval)]
        interval = INTERVAL if probe_interval is None else probe_interval
        options = self._options(limit, *words, dry_run=dry_run, quiet=False)
        return _call(
            lambda console: upgrade_cluster(self.cluster, options, console, probe_interval=interval)
        )

    def run(
        self,
        command: str | Sequence[str],
        *,
        limit: str | Sequence[str] | None = None,
        sudo: bool = False,
    ) -> RunResult:
        """An ad-hoc command on the selected hosts (a string with spaces runs in `sh -c`)."""
        from runbooks.run import run_command

        words = [command] if isinstance(command, str) else list(command)
        options = self._options(limit, *(["--sudo"] if sudo else []), "--", *words)
        result = _call(
            lambda console: run_command(words, options, console, sudo=sudo), kind=RunResult
        )
        assert isinstance(result, RunResult)
        return result

    def _options(
        self,
        limit: str | Sequence[str] | None,
        *words: str,
        dry_run: bool = False,
        quiet: bool = True,
    ) -> cli.Options:
        """A call's options, with the command line it equals (`words` its runbook's own): the
        history keeps that, and --retry-failed reruns it."""
        selected = [limit] if isinstance(limit, str) else list(limit or [])
        argv = ["-i", str(self.directory)]
        argv += ["--limit", ",".join(selected)] if selected else []
        argv += ["--workers", str(self.workers)] if self.workers else []
        argv += [flag for flag, on in (("--quiet", quiet), ("--dry-run", dry_run)) if on]
        return cli.Options(
            inventory=self.directory,
            limit=tuple(selected),
            workers=self.workers,
            dry_run=dry_run,
            quiet=quiet,
            argv=(*argv, *words),
        )


def _call(work: Callable[[Console], Run], kind: type[Result] = Result) -> Result:
    """`work`'s run as a Result, what it printed its output; KubenornError when it cannot run
    at all. Ctrl-C closes the run (exit 130) as on the command line."""
    output = io.StringIO()
    # Plain and wide, as without a terminal; never Jupyter's display (the Result is the view).
    console = Console(file=output, highlight=False, width=PLAIN_WIDTH, force_jupyter=False)
    try:
        run = work(console)
    except cli.COULD_NOT_RUN as error:
        raise KubenornError(scrub_secrets(str(error))) from None
    except RunInterrupted as stop:
        run = stop.run
        cli.close_interrupted(run, console)
    return _result(kind, output.getvalue(), run)


def _result(kind: type[Result], output: str, run: Run) -> Result:
    records = pd.DataFrame([r.as_dict() for r in run.records])
    if records.empty:
        records = pd.DataFrame(columns=[*RECORD_COLUMNS, "data"])
    findings = pd.DataFrame(run.findings, columns=FINDING_COLUMNS)
    return kind(run.info.runbook, run.exit_code, output, run.info.run_id, records, findings)


def open(inventory: str | Path | None = None, *, workers: int | None = None) -> Inventory:
    """The inventory in `inventory` (default: config.yaml's), ready to run against."""
    return Inventory(inventory, workers=workers)


__all__ = ["Inventory", "KubenornError", "Result", "RunResult", "open"]
