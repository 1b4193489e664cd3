"""kubectl on a controller, as the cluster admin (its admin kubeconfig is root's: sudo)."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import Any

from nornir.core.task import Task

from kubenorn.cluster import Cluster
from tasks.ssh import CommandResult, run


def kubectl(
    task: Task,
    cluster: Cluster,
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    timeout: float = 60.0,
) -> CommandResult:
    """`kubectl ARGS` through this controller's admin kubeconfig."""
    kubeconfig = posixpath.join(cluster.kubernetes.config_dir, "admin.kubeconfig")
    argv = ["kubectl", "--kubeconfig", kubeconfig, *args]
    return run(task, argv, sudo=True, stdin=stdin, ok_codes=ok_codes, timeout=timeout)


# $1: the admin kubeconfig, then API paths. The host's clock first, then per path a line
# "== kubenorn-api RC" and the object (or, when kubectl failed, what it said).
API_READS = r"""
kubeconfig=$1
shift
date +%s
for path; do
  out=$(kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw "$path" 2>/dev/null)
  rc=$?
  [ "$rc" -eq 0 ] || out=$(kubectl --kubeconfig "$kubeconfig" --request-timeout=5s \
    get --raw "$path" 2>&1 >/dev/null)
  printf '== kubenorn-api %s\n%s\n' "$rc" "$out"
done
"""


def api_reads(
    task: Task, cluster: Cluster, paths: Sequence[str]
) -> tuple[float, list[tuple[dict[str, Any] | None, str]]]:
    """The host's clock and `api_get` of each of `paths`, in one command."""
    kubeconfig = posixpath.join(cluster.kubernetes.config_dir, "admin.kubeconfig")
    argv = ["sh", "-c", API_READS, "sh", kubeconfig, *paths]
    # 5 s per request, asked again for its error when it failed: 12 s per path, and some.
    timeout = 20 + 12 * len(paths)
    output = run(task, argv, sudo=True, ok_codes=range(256), timeout=timeout).stdout
    clock, *sections = output.split("== kubenorn-api ")
    answers: list[tuple[dict[str, Any] | None, str]] = []
    for path, section in zip(paths, sections, strict=False):
        rc, _, text = section.partition("\n")
        text = text.strip()
        if rc.strip() != "0":
            lines = text.splitlines() or [f"kubectl exited {rc.strip()}"]
            answers.append((None, lines[-1][-300:]))
            continue
        try:
            answers.append((json.loads(text), ""))
        except json.JSONDecodeError:
            answers.append((None, f"{path}: not JSON: {text[:120]!r}"))
    answers += [(None, "no answer")] * (len(paths) - len(answers))
    return float(clock.strip() or 0), answers
