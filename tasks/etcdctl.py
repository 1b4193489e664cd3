"""Ask etcd about itself with etcdctl on a member host, over TLS with a client certificate.

The health-check client's key is root's (0600, in etcd's 0750 directory): etcdctl runs
through sudo, which is a no-op for root."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nornir.core.task import Task

from tasks.ssh import CommandResult, run


@dataclass(frozen=True)
class ClientTls:
    """The files etcdctl presents on the host: the etcd CA, a client certificate and its key."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class EndpointHealth:
    endpoint: str
    healthy: bool
    error: str


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader_id: int
    raft_term: int
    raft_index: int
    db_size: int
    version: str


@dataclass(frozen=True)
class DiskSpace:
    """The filesystem holding a member's data directory, as df saw it, in bytes."""

    path: str
    size: int
    available: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.available / self.size if self.size else 0.0


@dataclass(frozen=True)
class Member:
    member_id: int
    name: str  # empty until the member first starts
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False  # a non-voting member catching up (etcd 3.4+)


def etcdctl_command(
    tls: ClientTls, endpoints: Sequence[str], *args: str, json_output: bool = True
) -> list[str]:
    """The etcdctl v3 command line for `args` against `endpoints` (JSON output by default)."""
    return [
        "env", "ETCDCTL_API=3", "etcdctl",
        f"--endpoints={','.join(endpoints)}",
        f"--cacert={tls.ca}", f"--cert={tls.cert}", f"--key={tls.key}",
        "--dial-timeout=2s", "--command-timeout=5s",
        *(["-w", "json"] if json_output else []),
        *args,
    ]  # fmt: skip


# etcdctl before 3.3.14 prints `endpoint health` as text whatever -w says, a line each:
# "URL is healthy: successfully committed proposal: took = 2ms", "URL is unhealthy: WHY".
_HEALTH_LINE = re.compile(r"^(?P<endpoint>\S+) is (?P<state>healthy|unhealthy)(?:: (?P<why>.*))?$")


def parse_health(output: str) -> list[EndpointHealth]:
    """`endpoint health -w json` output (one entry per endpoint, healthy or not); an older
    etcdctl's text lines alike."""
    if not output.lstrip().startswith("["):
        return [_health_line(m) for line in output.splitlines() if (m := _HEALTH_LINE.match(line))]
    entries = json.loads(output)
    return [
        EndpointHealth(e["endpoint"], bool(e.get("health")), e.get("error", "") or "")
        for e in entries
    ]


def _health_line(found: re.Match[str]) -> EndpointHealth:
    healthy = found["state"] == "healthy"
    return EndpointHealth(found["endpoint"], healthy, "" if healthy else found["why"] or "")


def parse_status(output: str) -> list[EndpointStatus]:
    """`endpoint status -w json` output; endpoints that did not answer are absent."""
    statuses = []
    for entry in json.loads(output or "[]"):
        status: dict[str, Any] = entry["Status"]
        header = status.get("header", {})
        statuses.append(
            EndpointStatus(
                endpoint=entry["Endpoint"],
                member_id=int(header.get("member_id", 0)),
                leader_id=int(status.get("leader", 0)),
                raft_term=int(status.get("raftTerm", header.get("raft_term", 0))),
                raft_index=int(status.get("raftIndex", 0)),
                db_size=int(status.get("dbSize", 0)),
                version=str(status.get("version", "")),
            )
        )
    return statuses


def parse_members(output: str) -> list[Member]:
    """`member list -w json` (or `member add -w json`) output: the members."""
    return [
        Member(
            member_id=int(m["ID"]),
            name=m.get("name", ""),
            peer_urls=tuple(m.get("peerURLs", [])),
            client_urls=tuple(m.get("clientURLs", [])),
            learner=bool(m.get("isLearner", False)),
        )
        for m in json.loads(output or "{}").get("members", [])
    ]


def parse_df(output: str, path: str) -> DiskSpace | None:
    """`df -P -B1 PATH` output: the size and available bytes; None when it said nothing usable."""
    lines = output.splitlines()
    fields = lines[-1].split() if len(lines) >= 2 else []
    try:
        return DiskSpace(path, int(fields[1]), int(fields[3]))
    except (IndexError, ValueError):
        return None


def health(task: Task, tls: ClientTls, endpoints: Sequence[str]) -> list[EndpointHealth]:
    """Health of each endpoint, asked from this host (exit 1 just means some are unhealthy)."""
    command = etcdctl_command(tls, endpoints, "endpoint", "health")
    result = run(task, command, sudo=True, ok_codes=(0, 1))
    if result.stdout.strip():
        return parse_health(result.stdout)
    # Nothing parseable: every endpoint is unhealthy for the reason etcdctl gave.
    reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
    return [EndpointHealth(endpoint, False, reason) for endpoint in endpoints]


def status(task: Task, tls: ClientTls, endpoints: Sequence[str]) -> list[EndpointStatus]:
    """Status of each endpoint that answers."""
    command = etcdctl_command(tls, endpoints, "endpoint", "status")
    result = run(task, command, sudo=True, ok_codes=(0, 1))
    return parse_status(result.stdout) if result.stdout.strip() else []


def members(task: Task, tls: ClientTls, endpoints: Sequence[str]) -> list[Member]:
    """The member list as the cluster sees it."""
    command = etcdctl_command(tls, endpoints, "member", "list")
    return parse_members(run(task, command, sudo=True).stdout)


def add_member(
    task: Task, tls: ClientTls, endpoints: Sequence[str], name: str, peer_url: str, *, learner: bool
) -> list[Member]:
    """`member add`: the membership with the new member in it."""
    args = ["member", "add", name, f"--peer-urls={peer_url}", *(["--learner"] if learner else [])]
    added = parse_members(run(task, etcdctl_command(tls, endpoints, *args), sudo=True).stdout)
    # etcd before 3.2 answers with the new member alone: the membership is asked for.
    return added or members(task, tls, endpoints)


def remove_member(task: Task, tls: ClientTls, endpoints: Sequence[str], member_id: int) -> None:
    command = etcdctl_command(tls, endpoints, "member", "remove", f"{member_id:x}")
    run(task, command, sudo=True)


def promote_member(
    task: Task, tls: ClientTls, endpoints: Sequence[str], member_id: int
) -> CommandResult:
    """`member promote`: exit 0 once the learner has caught up with the leader."""
    # Not -w json: etcdctl 3.5 panics printing a promotion's answer that way.
    command = etcdctl_command(
        tls, endpoints, "member", "promote", f"{member_id:x}", json_output=False
    )
    return run(task, command, sudo=True, ok_codes=(0, 1))


# $1: the data directory; then the etcdctl command line up to its action. Per action a line
# "== kubenorn-etcd ACTION RC", its output, a line "== kubenorn-etcd-stderr", what it said on
# stderr. The data directory's free space first (what a member that cannot write lacks); status
# and the member list only when the endpoint answered healthy.
OBSERVE = r"""
data=$1
shift
err=$(mktemp) || exit 1
trap 'rm -f "$err"' EXIT
ask() {
  out=$("$@" 2>"$err")
  rc=$?
  printf '== kubenorn-etcd %s %s\n%s\n== kubenorn-etcd-stderr\n' "$action" "$rc" "$out"
  cat "$err"
  return "$rc"
}
action=disk; ask df -P -B1 -- "$data"
action=health; ask "$@" endpoint health || exit 0
action=status; ask "$@" endpoint status
action=members; ask "$@" member list
exit 0
"""


@dataclass(frozen=True)
class Observation:
    """One member's data disk, health, status and member list, as one command saw them."""

    disk: DiskSpace | None
    health: list[EndpointHealth]
    status: list[EndpointStatus]
    members: list[Member]


def observe(task: Task, tls: ClientTls, endpoint: str, data_dir: str) -> Observation:
    """`data_dir`'s free space, health of `endpoint`; when healthy, its status and the member
    list: one command."""
    argv = ["sh", "-c", OBSERVE, "sh", data_dir, *etcdctl_command(tls, [endpoint])]
    output = run(task, argv, sudo=True, timeout=30).stdout  # root's 0600 client key
    sections: dict[str, tuple[str, str]] = {}
    for part in output.split("== kubenorn-etcd ")[1:]:
        header, _, rest = part.partition("\n")
        out, _, err = rest.partition("== kubenorn-etcd-stderr\n")
        name, _, _rc = header.partition(" ")
        sections[name] = (out.strip(), err.strip())
    out, err = sections.get("health", ("", "no answer"))
    if out:
        health = parse_health(out)
    else:
        reason = (err.splitlines() or ["no answer"])[-1]
        health = [EndpointHealth(endpoint, False, reason)]
    status = parse_status(sections.get("status", ("", ""))[0])
    members = parse_members(sections.get("members", ("", ""))[0])
    disk = parse_df(sections.get("disk", ("", ""))[0], data_dir)
    return Observation(disk, health, status, members)
