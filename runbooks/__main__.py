"""`kubenorn COMMAND ...`: one command line for every runbook (`kubenorn deploy ...` is
`python -m runbooks.deploy ...`); also `python -m runbooks COMMAND ...`."""

from __future__ import annotations

import importlib
import sys

from kubenorn.cli import EXIT_OK, EXIT_UNKNOWN, error_message

# command -> runbook module, in the order an operator meets them.
COMMANDS = {
    "inventory": "inventory",
    "preflight": "preflight",
    "pki": "pki",
    "facts": "facts",
    "deploy": "deploy",
    "verify": "verify",
    "run": "run",
    "drill": "drill",
    "etcd-backup": "etcd_backup",
    "etcd-restore": "etcd_restore",
    "node": "node",
    "reset": "reset",
    "upgrade": "upgrade",
    "history": "history",
    "cron": "cron",
    "lab": "lab",
}
ALIASES = {module: command for command, module in COMMANDS.items() if module != command}


def usage() -> str:
    lines = [
        "usage: kubenorn COMMAND [OPTIONS ...]   (kubenorn COMMAND --help for its options)",
        "",
    ]
    for command, module in COMMANDS.items():
        doc = (importlib.import_module(f"runbooks.{module}").__doc__ or "").strip()
        summary = doc.split("\n\n")[0].split(":")[0].replace("\n", " ")
        lines.append(f"  {command:<13} {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    command = ALIASES.get(args[0], args[0])
    if command not in COMMANDS:
        print(usage(), file=sys.stderr)
        error_message(f"{args[0]}: no such command")
        return EXIT_UNKNOWN
    runbook = importlib.import_module(f"runbooks.{COMMANDS[command]}")
    program = sys.argv[0]
    sys.argv[0] = f"kubenorn {command}"  # argparse's prog: usage and errors name the command
    try:
        code: int = runbook.main(args[1:])
    finally:
        sys.argv[0] = program
    return code


if __name__ == "__main__":
    sys.exit(main())
