"""Command lines of the simulated binaries: the flags of one Kubernetes version, nothing else."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NOTE = "This is a SIMULATOR of {binary} for testing kubenorn in its lab; it is not Kubernetes."
FLAG_TABLES = Path(__file__).resolve().parent.parent / "flags.json"


class UsageError(Exception):
    """A command line the real binary would reject; the message is the real binary's wording."""


def flag_table(binary: str, version: str, tables: Path = FLAG_TABLES) -> dict[str, str]:
    """name -> "bool" or "string" for `binary` at `version`."""
    return json.loads(tables.read_text())[version][binary]


def parse(argv: list[str], table: dict[str, str]) -> dict[str, str]:
    """Flag values from `argv` the way pflag reads them; UsageError as the real binary says it."""
    values: dict[str, str] = {}
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--"):
            raise UsageError(f"unknown command {arg!r}")
        name, has_value, value = arg[2:].partition("=")
        kind = table.get(name)
        if kind is None:
            raise UsageError(f"unknown flag: --{name}")
        if kind == "bool":
            values[name] = value if has_value else "true"
            continue
        if not has_value:
            if not rest:
                raise UsageError(f"flag needs an argument: --{name}")
            value = rest.pop(0)
        values[name] = value
    return values


def command_line(binary: str, version: str, argv: list[str]) -> dict[str, str]:
    """Handle --version and --help (exit 0) and bad flags (exit 1); return the flags."""
    if "--version" in argv:
        print(f"Kubernetes v{version}")
        raise SystemExit(0)
    table = flag_table(binary, version)
    if "--help" in argv or "-h" in argv:
        print(NOTE.format(binary=binary))
        print(f"\nUsage:\n  {binary} [flags]\n\nFlags:")
        for name, kind in sorted(table.items()):
            print(f"      --{name}{'' if kind == 'bool' else ' string'}")
        raise SystemExit(0)
    try:
        return parse(argv, table)
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        print(f"Run '{binary} --help' for usage.", file=sys.stderr)
        raise SystemExit(1) from None


def duration(text: str) -> float:
    """Seconds in a Go duration such as 15s, 1m30s or 500ms."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index : index + 2] == "ms" else char
        total += float(number) * units[unit]
        number, index = "", index + len(unit)
    return total + (float(number) if number else 0.0)
