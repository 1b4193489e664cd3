"""The cluster's certificates: `python -m runbooks.pki -i INVENTORY init|check|rotate`.

init    issue what the inventory needs and is missing or no longer valid; keep the rest
check   findings for every certificate (with --remote, as deployed on the hosts);
        exit 0 OK, 1 WARNING, 2 CRITICAL, 3 could not check
rotate  renew leaf certificates (all, or the names or hosts given), same keys unless --new-keys;
        with --encryption-key, rotate the key that encrypts Secrets at rest on every apiserver
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from kubenorn import cli
from kubenorn.cluster import KEY_ALGORITHMS, Cluster, ClusterError, load_cluster
from kubenorn.findings import Finding, exit_code, print_findings, worst
from kubenorn.lock import exclusive
from kubenorn.nornir_setup import default_inventory_dir, init_nornir
from kubenorn.pki import encryption
from kubenorn.pki.issue import init
from kubenorn.pki.local import check_state
from kubenorn.pki.rotate import rotate
from kubenorn.pki.store import PkiError, Store
from kubenorn.records import failure_message
from kubenorn.report import make_console
from kubenorn.run import Run
from kubenorn.text import for_console
from tasks.encryption import apply_encryption_phase, rewrite_secrets
from tasks.pki import check_deployed_certificates


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the command; after it, only when given (no reset to default).
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-i", "--inventory", type=Path, help="inventory directory (default: inventory/)", **default
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the outcome", **default)
    parser.add_argument("-v", "--verbose", action="store_true", help="show OK too", **default)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("init", help="issue what is missing or no longer valid")
    issue.add_argument("--key-algorithm", choices=KEY_ALGORITHMS, help="for new keys")
    check = commands.add_parser("check", help="report findings; exit 0/1/2/3")
    check.add_argument("--remote", action="store_true", help="check the files on the hosts")
    check.add_argument("--warn-days", type=int, help="WARNING this many days before expiry")
    check.add_argument("--limit", nargs="+", default=[], metavar="HOST|GROUP|GLOB")
    renew = commands.add_parser("rotate", help="renew leaf certificates")
    renew.add_argument("names", nargs="*", metavar="NAME|HOST", help="default: every leaf")
    renew.add_argument("--new-keys", action="store_true", help="replace the keys too")
    renew.add_argument("--key-algorithm", choices=KEY_ALGORITHMS, help="for --new-keys")
    renew.add_argument(
        "--encryption-key",
        action="store_true",
        help="rotate the Secrets encryption key on every apiserver (or finish a rotation)",
    )
    for sub in (issue, check, renew):
        _common(sub, top=False)
    return parser


def write_json(path: Path | None, document: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def do_init(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    changes = init(cluster, algorithm=args.key_algorithm)
    done = [c for c in changes if c.action != "kept"]
    width = max((len(c.item) for c in done), default=0)
    for change in done:
        console.print(
            for_console(f"{change.action:<8} {change.item:<{width}}  {change.detail}".rstrip())
        )
    if done:
        console.print(f"{len(done)} changed, {len(changes) - len(done)} already valid")
    else:
        console.print(f"nothing to issue: all {len(changes)} items valid in {cluster.pki.dir}")
    write_json(args.json, {"command": "init", "changes": [asdict(c) for c in changes]})
    return cli.EXIT_OK


def do_check(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    if args.remote:
        findings = remote_findings(cluster, args)
    else:
        findings = check_state(cluster, warn_days=args.warn_days)
    title = "pki check" + (" --remote" if args.remote else f" ({cluster.pki.dir})")
    print_findings(findings, console, title=title, verbose=args.verbose)
    code = exit_code(findings)
    document = {"status": worst(findings), "exit_code": code}
    write_json(args.json, document | {"findings": [f.as_dict() for f in findings]})
    return code


def remote_findings(cluster: Cluster, args: argparse.Namespace) -> list[Finding]:
    """Findings from every (selected) host's deployed files; UNKNOWN for a host not read."""
    nr = init_nornir(cluster.inventory_dir)
    nr = cli.limit(nr, args.limit) if args.limit else nr
    run = Run(nr, "pki", argv=args.argv)
    results = run.step("pki_check", check_deployed_certificates, warn_days=args.warn_days)
    findings: list[Finding] = []
    for host, multi in sorted(results.items()):
        if multi.failed:
            findings.append(Finding("pki.remote", host, "UNKNOWN", failure_message(multi[0])))
        else:
            findings += multi[0].result
    run.findings = [f.as_dict() for f in findings]
    run.close(exit_code(findings))
    return findings


def do_rotate(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    if args.encryption_key:
        if args.names or args.new_keys:
            raise cli.UsageError("--encryption-key rotates that key alone: no names, no --new-keys")
        return do_rotate_encryption_key(cluster, args, console)
    renewals, kubeconfigs = rotate(
        cluster, args.names, new_keys=args.new_keys, algorithm=args.key_algorithm
    )
    width = max((len(r.name) for r in renewals), default=0)
    for r in renewals:
        serial = f"serial {_short(r.old_serial)} -> {_short(r.new_serial)}"
        until = f"until {r.old_not_after:%Y-%m-%d} -> {r.new_not_after:%Y-%m-%d}"
        key = "key replaced" if r.key_replaced else "key kept"
        console.print(f"renewed  {r.name:<{width}}  {serial}  {until}  {key}")
    for change in kubeconfigs:
        console.print(f"written  {change.item}")
    console.print(f"{len(renewals)} renewed, {len(kubeconfigs)} kubeconfigs rewritten")
    document = {
        "renewals": [asdict(r) for r in renewals],
        "kubeconfigs": [asdict(c) for c in kubeconfigs],
    }
    write_json(args.json, {"command": "rotate"} | document)
    return cli.EXIT_OK


class RotationStopped(Exception):
    """A phase of the key rotation did not reach every controller; the saved phase stands."""


def rotation_steps(
    run: Run, cluster: Cluster, store: Store, say: Callable[[str], None]
) -> encryption.RotationSteps:
    """The rotation's steps on this run's controllers: each phase applied one controller at a
    time (each healthy before the next), Secrets rewritten through the first; RotationStopped
    when a step did not reach every controller."""
    first = cluster.controllers[0].name

    def step(
        name: str, task: Callable[..., Any], only: Callable[[Any], bool], serial: bool
    ) -> None:
        results = run.step(name, task, only=only, serial=serial, cluster=cluster)
        wanted = [h for h in run.nr.inventory.hosts.values() if only(h)]
        failed = [h.name for h in wanted if h.name in run.failed or h.name not in results]
        if failed:
            why = [failure_message(results[h][0]) for h in failed if h in results]
            raise RotationStopped(f"{name} failed on {', '.join(failed)}: {'; '.join(why)}")

    def apply(phase: encryption.EncryptionState) -> None:
        say(f"Secrets key: applying {phase.phase} ({', '.join(k.name for k in phase.key_order())})")
        step(f"encryption-{phase.phase}", apply_encryption_phase, cli.in_group("controllers"), True)

    def rewrite() -> None:
        say(f"Secrets key: rewriting every Secret through {first}")
        step("rewrite-secrets", rewrite_secrets, lambda h: h.name == first, False)

    return encryption.RotationSteps(apply, rewrite, lambda s: encryption.save_state(store, s))


def all_controllers_in(run: Run, cluster: Cluster) -> bool:
    """Whether every controller is in this run and has not failed in it."""
    return all(h.name in run.hosts and h.name not in run.failed for h in cluster.controllers)


def do_rotate_encryption_key(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    """Rotate the Secrets key in the order that keeps every apiserver able to read every Secret
    (kubenorn/pki/encryption.py), each phase saved before it is applied, so a rerun resumes."""
    if cluster.kubernetes.profile.encryption_config is None:
        profile = cluster.kubernetes.profile.name
        raise PkiError(f"profile {profile} does not encrypt Secrets at rest: nothing to rotate")
    store = Store(cluster.pki.dir)
    state = encryption.required_state(store)
    run = Run(init_nornir(cluster.inventory_dir), "pki", argv=args.argv)
    steps = rotation_steps(run, cluster, store, lambda text: console.print(for_console(text)))
    provider = cluster.kubernetes.security.encryption_provider
    try:
        done = encryption.rotate_key(state, lambda: encryption.new_key(provider), steps)
    except RotationStopped as error:
        run.close(cli.EXIT_FAILED)
        saved = encryption.required_state(store).phase
        console.print(for_console(f"key rotation stopped at phase {saved}: {error}"))
        console.print("fix the cause and run `rotate --encryption-key` again: it resumes there")
        return cli.EXIT_FAILED
    run.close(cli.EXIT_OK)
    for line in done:
        console.print(for_console(line))
    write_json(args.json, {"command": "rotate", "encryption_key": done})
    return cli.EXIT_OK


def finish_encryption(
    run: Run, cluster: Cluster, say: Callable[[str], None], *, dry_run: bool
) -> list[str]:
    """After a deploy's control plane: turn Secrets encryption on, or finish a key rotation
    left under way, when every controller is in the run and healthy; what was done."""
    if cluster.kubernetes.profile.encryption_config is None:
        return []
    store = Store(cluster.pki.dir)
    state = encryption.required_state(store)
    if state.phase == "stable":
        return []
    what = "turn Secrets encryption on" if state.introducing else "finish the Secrets key rotation"
    if dry_run:
        return [f"would {what} (phase {state.phase})"]
    if not all_controllers_in(run, cluster):
        return [f"did not {what}: not every controller was deployed (a full deploy will)"]

    def no_new_key() -> encryption.EncryptionKey:
        raise AssertionError("a rotation under way needs no new key")

    try:
        return encryption.rotate_key(state, no_new_key, rotation_steps(run, cluster, store, say))
    except RotationStopped as error:
        phase = encryption.required_state(store).phase
        return [f"could not {what}: stopped at phase {phase}: {error}"]


def _short(serial: int) -> str:
    """The first 8 hex digits: enough to tell two serials apart on screen."""
    return f"{serial:x}"[:8]


COMMANDS = {"init": do_init, "check": do_check, "rotate": do_rotate}


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    console = make_console()
    try:
        cluster = load_cluster(args.inventory or default_inventory_dir())
        if args.command == "check":  # reads only
            return do_check(cluster, args, console)
        with exclusive(f"pki {args.command}", cluster.inventory_dir):
            return COMMANDS[args.command](cluster, args, console)
    except (ClusterError, PkiError) as error:
        cli.error_message(str(error))
        return cli.EXIT_UNKNOWN


def main(argv: list[str] | None = None) -> int:
    return cli.main_wrapper(run, argv)


if __name__ == "__main__":
    sys.exit(main())
