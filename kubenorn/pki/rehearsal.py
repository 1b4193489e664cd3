"""The PKI a deploy will use: issued in place, or, for a dry run, in a throwaway copy.

A dry run changes nothing, the PKI state included, yet its diffs need the certificates a real
run would distribute. So it issues what is missing into a private temporary copy of the state
(CA keys included: the copy is 0700 and removed when the run ends) and reads from there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from kubenorn.cluster import Cluster
from kubenorn.pki.issue import Change, init
from kubenorn.pki.store import PkiError


def with_pki_dir(cluster: Cluster, directory: Path) -> Cluster:
    """The same cluster, reading its PKI state from `directory`."""
    return replace(cluster, pki=replace(cluster.pki, dir=directory))


@contextmanager
def deploy_pki(cluster: Cluster, *, dry_run: bool) -> Iterator[tuple[Cluster, list[Change]]]:
    """The cluster whose PKI state the deploy reads, and what init issued or renewed for it."""
    if not dry_run:
        yield cluster, issue(cluster)
        return
    with tempfile.TemporaryDirectory(prefix="kubenorn-dry-run-pki-") as scratch:
        copy = Path(scratch) / "pki"
        if cluster.pki.dir.is_dir():
            try:
                shutil.copytree(cluster.pki.dir, copy)
            except shutil.Error as error:  # every file it could not copy: (source, copy, why)
                why = "; ".join(f"{source}: {reason}" for source, _, reason in error.args[0])
                raise PkiError(f"cannot be read: {why}") from None
        rehearsed = with_pki_dir(cluster, copy)
        try:
            issued = issue(rehearsed)
        except PkiError as error:  # name the user's file, not its throwaway copy
            raise PkiError(str(error).replace(str(copy), str(cluster.pki.dir))) from None
        yield rehearsed, issued


def issue(cluster: Cluster) -> list[Change]:
    """What init issued or renewed (the items it kept left out)."""
    return [change for change in init(cluster) if change.action != "kept"]
