"""Run history: every run appended to SQLite, and read back as rows or pandas DataFrames."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubenorn.nornir_setup import CONFIG_FILE
from kubenorn.private_files import create_private
from kubenorn.records import Record, RunInfo

HISTORY_ENV = "KUBENORN_HISTORY_DB"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, runbook TEXT NOT NULL, inventory TEXT NOT NULL, argv TEXT NOT NULL,
    dry_run INTEGER NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, exit_code INTEGER,
    user TEXT, control_host TEXT
);
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT NOT NULL REFERENCES runs(run_id), host TEXT NOT NULL, task TEXT NOT NULL,
    status TEXT NOT NULL, changed INTEGER NOT NULL, duration REAL NOT NULL, diff TEXT,
    message TEXT, data TEXT
);
CREATE TABLE IF NOT EXISTS findings (
    run_id TEXT NOT NULL REFERENCES runs(run_id), host TEXT NOT NULL, check_name TEXT NOT NULL,
    status TEXT NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS records_by_run ON records(run_id);
CREATE INDEX IF NOT EXISTS findings_by_run ON findings(run_id);
"""


def history_path() -> Path:
    """The history database: $KUBENORN_HISTORY_DB, else config.yaml's user_defined.history_db."""
    if override := os.environ.get(HISTORY_ENV):
        return Path(override).expanduser()
    config = yaml.safe_load(CONFIG_FILE.read_text()) or {}
    configured = (config.get("user_defined") or {}).get("history_db")
    return Path(configured or "~/.local/share/kubenorn/history.sqlite").expanduser()


class HistoryError(Exception):
    """The history database cannot be written; the message names it and how to choose another."""


def check_writable(path: Path | None = None) -> None:
    """Create the database (0600, schema) and try a write; HistoryError naming it when refused.

    A run checks this before touching any host, so it cannot end unrecorded, in a traceback.
    """
    path = path or history_path()
    try:
        with connect(path) as db:
            db.execute("BEGIN IMMEDIATE")  # takes the write lock: a read-only file refuses it
    except (OSError, sqlite3.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise HistoryError(
            f"history database {path}: cannot be written ({reason}); set {HISTORY_ENV} or"
            " user_defined.history_db in config.yaml to a writable path"
        ) from None


@contextmanager
def connect(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """A connection to the history database, created 0600 (in a 0700 directory) on first use."""
    path = path or history_path()
    create_private(path)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.executescript(SCHEMA)
        with connection:
            yield connection


def append_run(
    info: RunInfo,
    records: list[Record],
    findings: list[dict[str, Any]] | None = None,
    path: Path | None = None,
) -> None:
    """Append one finished run, its records and its findings, in one transaction."""
    with connect(path) as db:
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.run_id,
                info.runbook,
                info.inventory,
                json.dumps(info.argv),
                int(info.dry_run),
                info.started_at,
                info.finished_at,
                info.exit_code,
                info.user,
                info.control_host,
            ),
        )
        db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.run_id,
                    r.host,
                    r.task,
                    r.status,
                    int(r.changed),
                    r.duration,
                    r.diff,
                    r.message,
                    json.dumps(r.data, default=str) if r.data is not None else None,
                )
                for r in records
            ],
        )
        db.executemany(
            "INSERT INTO findings VALUES (?, ?, ?, ?, ?)",
            [
                (info.run_id, f["host"], f["check"], f["status"], f["detail"])
                for f in findings or []
            ],
        )


def runs(path: Path | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first."""
    with connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [dict(row) for row in rows]


def records_of(run_id: str, path: Path | None = None) -> list[dict[str, Any]]:
    """Every record of one run, in the order they were appended."""
    with connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM records WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [dict(row) for row in rows]


def latest_run_id(runbook: str | None = None, path: Path | None = None) -> str | None:
    """The id of the newest run (of `runbook`, when given)."""
    with connect(path) as db:
        query = "SELECT run_id FROM runs" + (" WHERE runbook = ?" if runbook else "")
        row = db.execute(
            query + " ORDER BY started_at DESC, rowid DESC LIMIT 1", (runbook,) if runbook else ()
        ).fetchone()
        return row[0] if row else None


def load_dataframes(path: Path | None = None) -> dict[str, Any]:
    """The history as pandas DataFrames: {"runs": ..., "records": ..., "findings": ...}."""
    import pandas

    with connect(path) as db:
        return {
            table: pandas.read_sql_query(f"SELECT * FROM {table}", db)  # noqa: S608 - fixed names
            for table in ("runs", "records", "findings")
        }
