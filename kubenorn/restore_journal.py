"""The restore journal: which etcd restore is under way, kept on the control machine.

INVENTORY/.restore/journal.json (0600 in a 0700 directory) names the restore (its id, its
snapshot and that snapshot's sha256, the cluster token all its members restore with) and its
phase:

  staging    no member has restored data in use: a failure can put every member back on its
             original data, and a new restore (another snapshot) may start afresh
  committed  every member had its restored data staged, and some may have it in use: only this
             snapshot, with this token, may finish the job
  done       finished; the next restore is a new one

The journal is written (and fsynced) before the step it allows: "committed" before the first
member's data is swapped, so a run killed at any point leaves a journal that says enough.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from kubenorn.private_files import private_dir
from kubenorn.records import now_iso

Phase = Literal["staging", "committed", "done"]


class UnfinishedRestore(Exception):
    """A committed restore of another snapshot must be finished first."""


@dataclass
class Journal:
    restore_id: str
    snapshot: str
    sha256: str
    token: str
    phase: Phase
    started_at: str
    updated_at: str


def journal_path(inventory_dir: Path) -> Path:
    return inventory_dir / ".restore" / "journal.json"


def load_journal(inventory_dir: Path) -> Journal | None:
    path = journal_path(inventory_dir)
    try:
        return Journal(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        raise UnfinishedRestore(f"{path}: not a restore journal ({error})") from None


def save_journal(inventory_dir: Path, journal: Journal) -> None:
    """Write `journal` whole or not at all, and durably, before the step it allows."""
    path = journal_path(inventory_dir)
    private_dir(path.parent)
    journal.updated_at = now_iso()
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(asdict(journal), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def begin(
    inventory_dir: Path, snapshot: Path, cluster_name: str, run_id: str
) -> tuple[Journal, Journal | None]:
    """The restore this run carries out, and an abandoned uncommitted one it replaces (if any).

    Resumes the journal's restore when it is unfinished and of the same snapshot; refuses
    another snapshot while a committed restore is unfinished (UnfinishedRestore).
    """
    previous = load_journal(inventory_dir)
    digest = sha256_of(snapshot)
    if previous is not None and previous.phase != "done":
        if previous.sha256 == digest:
            return previous, None
        if previous.phase == "committed":
            raise UnfinishedRestore(
                f"restore {previous.restore_id} of {previous.snapshot} (sha256 "
                f"{previous.sha256[:12]}, started {previous.started_at}) is committed on the "
                "members but not finished: re-run with that snapshot to finish it "
                f"(journal {journal_path(inventory_dir)})"
            )
    journal = Journal(
        restore_id=run_id,
        snapshot=str(snapshot),
        sha256=digest,
        token=f"{cluster_name}-etcd-restore-{run_id}",
        phase="staging",
        started_at=now_iso(),
        updated_at=now_iso(),
    )
    save_journal(inventory_dir, journal)
    abandoned = previous if previous is not None and previous.phase == "staging" else None
    return journal, abandoned
