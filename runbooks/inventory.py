"""The inventory as kubenorn reads it: `python -m runbooks.inventory show HOST -i INVENTORY`
prints the data a host resolves (host, then its groups, then defaults: like
`ansible-inventory --host`); `schema` writes the JSON Schema that the inventory files
reference (schema/inventory.schema.json); `reference` prints every key as a Markdown table (the
README's inventory reference). `runbooks.preflight` lists every problem.

Exit 0 done, 3 the inventory has errors or the host is unknown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kubenorn import cli
from kubenorn.inventory_files import read_inventory
from kubenorn.inventory_model import CLUSTER_SECTIONS, json_schema
from kubenorn.nornir_setup import REPO_ROOT, default_inventory_dir

SCHEMA_FILE = REPO_ROOT / "schema" / "inventory.schema.json"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser("show", help="print the data a host resolves, as JSON")
    show.add_argument("host", metavar="HOST")
    show.add_argument("-i", "--inventory", type=cli.inventory_dir, help="inventory directory")
    commands.add_parser("reference", help="print every inventory key as a Markdown table")
    schema = commands.add_parser("schema", help="write the inventory's JSON Schema")
    schema.add_argument(
        "-o", "--output", type=Path, default=SCHEMA_FILE, help=f"(default: {SCHEMA_FILE})"
    )
    return parser


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def reference() -> str:
    """Every key an inventory file may hold, where it may be set, its value and default."""
    schema = json_schema()
    rows = ["| key | set in | value | default |", "|---|---|---|---|"]
    groups = ("groups", {"description": "a list of group names (its roles)"}, False)
    keys = _walk(schema, schema["$defs"]["Defaults"], "")
    for key, node, required in [*keys[:4], groups, *keys[4:]]:
        if key.startswith("data.") and key.split(".")[1] in CLUSTER_SECTIONS:
            where = "defaults.yaml"
        elif key == "groups":
            where = "hosts, groups"
        else:
            where = "hosts, groups, defaults"
        kind = node.get("description") or _kind(node)
        default = "required" if required else _default(node)
        if key == "data.address":
            default = "required for every host"
        rows.append(f"| `{key}` | {where} | {kind} | {default} |")
    return "\n".join(rows) + "\n"


def _walk(
    schema: dict[str, Any], node: dict[str, Any], prefix: str
) -> list[tuple[str, dict[str, Any], bool]]:
    rows = []
    required = set(node.get("required", []))
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        target = _unwrap(schema, prop)
        if "properties" in target:
            rows += _walk(schema, target, f"{key}.")
        else:
            rows.append((key, {**target, "default": prop.get("default")}, name in required))
    return rows


def _unwrap(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1 and "description" not in node:
        node = options[0]
    if "$ref" in node:
        return _unwrap(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[-1]])
    return node


def _kind(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if node.get("type") == "array" and node.get("items", {}).get("type") == "string":
        return "a list of strings"
    kinds = {"boolean": "true or false", "array": "a list", "object": "a mapping"}
    return kinds.get(node.get("type", ""), node.get("type", "a value"))


def _default(node: dict[str, Any]) -> str:
    value = node.get("default")
    if value in (None, [], {}, ()):
        return ""
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def resolved(inventory_dir: Path, name: str) -> dict[str, Any]:
    """What Nornir resolves for host `name`: its own keys, groups, and every data key."""
    inventory = read_inventory(inventory_dir)
    errors = [p for p in inventory.problems if p.status == "CRITICAL"]
    if errors:
        raise cli.UsageError("\n".join(str(p) for p in errors))
    if name not in inventory.hosts:
        raise cli.UsageError(f"{name}: no such host in {inventory_dir / 'hosts.yaml'}")
    host = inventory.hosts[name]
    return {
        "name": host.name,
        "hostname": host.hostname,
        "port": host.port,
        "username": host.username,
        "platform": host.platform,
        "groups": [group.name for group in host.extended_groups()],
        "data": dict(sorted(host.items())),
    }


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "reference":
        print(reference(), end="")
        return cli.EXIT_OK
    if args.command == "schema":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(schema_text())
        print(f"wrote {args.output}")
        return cli.EXIT_OK
    inventory_dir = (args.inventory or default_inventory_dir()).resolve()
    print(json.dumps(resolved(inventory_dir, args.host), indent=2, default=str))
    return cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
