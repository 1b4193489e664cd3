"""Validate an inventory and its PKI before any host is touched: `python -m runbooks.preflight`.

Prints every problem with its file, host and field. Exit 0 all clear, 1 warnings only,
2 errors (the deploy refuses to start), 3 the inventory could not be read at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubenorn import cli
from kubenorn.findings import exit_code, print_findings, worst
from kubenorn.nornir_setup import default_inventory_dir
from kubenorn.preflight import preflight
from kubenorn.report import make_console


def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-i", "--inventory", type=Path, help="inventory directory (default: inventory/)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the findings as JSON")
    parser.add_argument("--no-pki", action="store_true", help="skip the PKI check")
    parser.add_argument("-v", "--verbose", action="store_true", help="show OK findings too")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    inventory = args.inventory or default_inventory_dir()
    if not inventory.is_dir():
        cli.error_message(f"{inventory}: no such inventory directory")
        return cli.EXIT_UNKNOWN
    findings = preflight(inventory, pki=not args.no_pki)
    print_findings(findings, make_console(), title=f"preflight {inventory}", verbose=args.verbose)
    code = exit_code(findings)
    if args.json:
        document = {
            "status": worst(findings),
            "exit_code": code,
            "findings": [f.as_dict() for f in findings],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
