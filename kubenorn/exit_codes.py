"""What each runbook's exit codes mean: the one table the README shows (between its
`exit-codes` markers) and the unit tests hold every runbook's docstring and --help to.

The codes themselves are kubenorn.cli's EXIT_* and, for the runbooks that judge with findings,
the monitoring-plugin codes of kubenorn.findings.EXIT_CODES.
"""

from __future__ import annotations

from kubenorn.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNKNOWN
from kubenorn.findings import EXIT_CODES

WARNING, CRITICAL = EXIT_CODES["WARNING"], EXIT_CODES["CRITICAL"]
CODES = (EXIT_OK, EXIT_FAILED, CRITICAL, EXIT_UNKNOWN, EXIT_INTERRUPTED)

COULD_NOT_RUN = "could not run: bad options or inventory, the inventory's lock held"
INTERRUPTED = "interrupted (Ctrl-C): tasks in flight finished, nothing further started"

# kubenorn command -> exit code -> meaning; a code a runbook never returns is absent.
MEANINGS: dict[str, dict[int, str]] = {
    "inventory": {
        EXIT_OK: "done",
        EXIT_UNKNOWN: "the inventory has errors, or the host is unknown",
        EXIT_INTERRUPTED: "interrupted",
    },
    "preflight": {
        EXIT_OK: "all clear",
        WARNING: "warnings only",
        CRITICAL: "errors: deploy refuses to run",
        EXIT_UNKNOWN: "the inventory could not be read at all, or bad options",
        EXIT_INTERRUPTED: "interrupted",
    },
    "pki": {
        EXIT_OK: "done; `check`: every certificate OK",
        WARNING: "`check`: a WARNING (expiring within `pki.warn_days`); "
        "`rotate --encryption-key`: stopped, resumable",
        CRITICAL: "`check`: a CRITICAL (expired, wrong key, SANs, chain)",
        EXIT_UNKNOWN: "could not run or check: bad options, inventory or PKI state, the lock held",
        EXIT_INTERRUPTED: "interrupted",
    },
    "facts": {
        EXIT_OK: "every host answered",
        EXIT_FAILED: "some host failed",
        EXIT_UNKNOWN: COULD_NOT_RUN,
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "deploy": {
        EXIT_OK: "every targeted host succeeded",
        EXIT_FAILED: "some host failed (it went no further)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", an unreadable PKI file or image archive, "
        "a CRITICAL preflight finding",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "verify": {
        EXIT_OK: "OK: every check passed",
        WARNING: "WARNING: the cluster serves, something is wrong (see Verify)",
        CRITICAL: "CRITICAL: the cluster is broken or exposed (see Verify)",
        EXIT_UNKNOWN: "UNKNOWN: " + COULD_NOT_RUN + ", or a host or check could not be judged",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "run": {
        EXIT_OK: "every host exited 0",
        EXIT_FAILED: "some host exited non-zero or was not reached",
        EXIT_UNKNOWN: "bad options or inventory",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "drill": {
        EXIT_OK: "the drill's promise held and the cluster is healthy again",
        EXIT_FAILED: "it did not, or an undo failed (a CRITICAL names the unit left down)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", `--host` naming no controller",
        EXIT_INTERRUPTED: "interrupted: the undos ran",
    },
    "etcd-backup": {
        EXIT_OK: "OK: a verified snapshot was made",
        CRITICAL: "CRITICAL: no verified snapshot was made",
        EXIT_UNKNOWN: "UNKNOWN: " + COULD_NOT_RUN + ", a `--dest` that cannot be written",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "etcd-restore": {
        EXIT_OK: "restored: every member healthy on the snapshot's data",
        EXIT_FAILED: "not restored: every member put back on one side (the findings say which)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", no `--yes`, a bad snapshot, "
        "another snapshot while a committed restore is unfinished",
        EXIT_INTERRUPTED: "interrupted: every member started again on one side",
    },
    "node": {
        EXIT_OK: "`add`: joined and Ready; `remove`: drained, deleted from the API, the host reset",
        EXIT_FAILED: "a step failed (a re-run finishes an `add`; a drain that could not finish "
        "leaves the node cordoned and deletes nothing)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", a host that is not only a worker",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "reset": {
        EXIT_OK: "every selected host reset",
        EXIT_FAILED: "a host failed (the output lists what it may still hold)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", no `--yes`, a `--limit` that splits etcd",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "upgrade": {
        EXIT_OK: "every component runs the inventory's version, every gate passed",
        EXIT_FAILED: "a gate failed: the rollout stopped there (a re-run finishes it); or no etcd "
        "snapshot could be taken (nothing changed)",
        EXIT_UNKNOWN: COULD_NOT_RUN + ", no `--yes`, what the version-skew policy forbids",
        EXIT_INTERRUPTED: INTERRUPTED,
    },
    "history": {
        EXIT_OK: "done",
        EXIT_UNKNOWN: "no such run, bad options, an unreadable history",
        EXIT_INTERRUPTED: "interrupted",
    },
    "cron": {
        EXIT_OK: "installed, up to date or removed",
        EXIT_UNKNOWN: "bad `--schedule`, `-i`, `--user`, the lock held",
        EXIT_INTERRUPTED: "interrupted",
    },
    "lab": {
        EXIT_OK: "done; `up` and `status`: every host running with ssh answering",
        EXIT_FAILED: "a lab error, or not every host up",
        EXIT_UNKNOWN: "bad options",
        EXIT_INTERRUPTED: "interrupted",
    },
}


def markdown_table() -> str:
    """The README's table: a row per runbook, a column per exit code."""
    header = "| runbook | " + " | ".join(f"`{code}`" for code in CODES) + " |"
    rows = [header, "|---" * (len(CODES) + 1) + "|"]
    for command, meanings in MEANINGS.items():
        cells = [meanings.get(code, "") for code in CODES]
        rows.append(f"| `{command}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
