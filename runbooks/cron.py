"""Re-verify from cron: `python -m runbooks.cron install|remove [-i INVENTORY] [--schedule ...]`.

install  writes /etc/cron.d/kubenorn-verify: verify --quiet on a schedule, so cron mails only
         when something is wrong (its exit code tells the monitoring status)
remove   deletes that file
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shlex
import sys
from pathlib import Path

from kubenorn.cli import EXIT_OK, ArgumentParser, UsageError, main_wrapper
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import REPO_ROOT, default_inventory_dir

CRON_FILE = Path("/etc/cron.d/kubenorn-verify")

KEYWORDS = (
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
)
NAMES = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat"
_VALUE = rf"(?:[0-9]{{1,2}}|{NAMES})"
_RANGE = rf"(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/[0-9]{{1,2}})?"
CRON_FIELD = re.compile(rf"{_RANGE}(?:,{_RANGE})*", re.IGNORECASE)


def check_schedule(schedule: str) -> str:
    """`schedule` if it is five cron fields or an @keyword; else a UsageError saying so."""
    fields = schedule.split()
    if schedule.strip() in KEYWORDS or (
        len(fields) == 5 and all(CRON_FIELD.fullmatch(f) for f in fields)
    ):
        return " ".join(fields)
    raise UsageError(
        f"--schedule {schedule!r}: not a cron schedule "
        f"(five fields such as '*/10 * * * *', or one of {', '.join(KEYWORDS)})"
    )


def check_entry(inventory: Path, schedule: str, user: str) -> None:
    """Refuse what would give a broken or injected cron line, naming the option."""
    for option, value in (("-i", str(inventory)), ("--schedule", schedule), ("--user", user)):
        if any(c in value for c in "\r\n\0"):
            raise UsageError(f"{option} {value!r}: a newline or NUL would break the cron line")
    check_schedule(schedule)
    if not (inventory / "hosts.yaml").is_file():
        raise UsageError(f"-i {inventory}: not an inventory directory (no hosts.yaml in it)")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user on this machine") from None


def crontab_entry(inventory: Path, schedule: str, user: str, python: Path) -> str:
    """The cron.d file: a bare environment and working directory /, as cron gives.

    Every word is shell-quoted; `%`, which cron turns into a newline, is escaped.
    """
    words = [str(python), "-m", "runbooks.verify", "-i", str(inventory), "--quiet"]
    command = "cd / && " + shlex.join(words).replace("%", "\\%")
    return (
        "# Managed by kubenorn (python -m runbooks.cron): re-verify the cluster.\n"
        "# verify --quiet prints only when something is wrong, so cron mails only then.\n"
        "SHELL=/bin/sh\n"
        "PATH=/usr/bin:/bin\n"
        f"{schedule} {user} {command}\n"
    )


def install(path: Path, content: str) -> bool:
    """Write the cron file atomically; whether it changed."""
    if path.exists() and path.read_text() == content:
        return False
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(content)
    temporary.chmod(0o644)
    os.replace(temporary, path)
    return True


def cron(argv: list[str]) -> int:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["install", "remove"])
    parser.add_argument("-i", "--inventory", type=Path, help="inventory to verify")
    parser.add_argument("--schedule", default="*/10 * * * *", help="cron schedule")
    parser.add_argument("--user", default="root", help="the user cron runs verify as")
    parser.add_argument(
        "--cron-file", type=Path, default=CRON_FILE, metavar="FILE", help=f"default {CRON_FILE}"
    )
    args = parser.parse_args(argv)
    if args.action == "remove":
        existed = args.cron_file.exists()
        args.cron_file.unlink(missing_ok=True)
        print(f"{args.cron_file}: {'removed' if existed else 'was not installed'}")
        return EXIT_OK
    inventory = (args.inventory or default_inventory_dir()).resolve()
    check_entry(inventory, args.schedule, args.user)
    schedule = check_schedule(args.schedule)
    python = REPO_ROOT / ".venv" / "bin" / "python"
    with exclusive("cron install", inventory):
        changed = install(args.cron_file, crontab_entry(inventory, schedule, args.user, python))
    print(f"{args.cron_file}: {'installed' if changed else 'already up to date'}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return main_wrapper(cron, argv)


if __name__ == "__main__":
    sys.exit(main())
