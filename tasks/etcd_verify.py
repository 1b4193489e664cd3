"""etcd verification: observe each member from its own host, then judge the cluster as a whole.

Severity follows quorum: a member down while a quorum remains is a WARNING (the cluster
serves), and CRITICAL once the remaining members cannot form a quorum. A member's data disk
is judged on its own: nearly full is a WARNING, too full for etcd to write is CRITICAL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding, Status
from tasks import etcdctl
from tasks.etcd import UNIT, client_tls, member_of
from tasks.etcdctl import DiskSpace, EndpointStatus, Member
from tasks.systemd import unit_state


@dataclass
class MemberView:
    """What one member's host saw: its unit, its own health and status, the member list."""

    host: str
    reachable: bool = True
    active: bool = False
    healthy: bool = False
    error: str = ""
    status: EndpointStatus | None = None
    members: list[Member] = field(default_factory=list)
    disk: DiskSpace | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def observe_etcd_member(task: Task, *, cluster: Cluster) -> Result:
    """Observe this etcd member over TLS with the health-check client certificate."""
    member = member_of(cluster, task.host.name)
    tls = client_tls(cluster, member.host)
    view = MemberView(task.host.name)
    _, view.active = unit_state(task, UNIT)
    seen = etcdctl.observe(task, tls, member.client_url, task.host["etcd"]["data_dir"])
    view.disk = seen.disk
    view.healthy = bool(seen.health) and all(h.healthy for h in seen.health)
    view.error = "; ".join(h.error for h in seen.health if h.error)
    if view.healthy:
        view.status = seen.status[0] if seen.status else None
        view.members = seen.members
    return Result(host=task.host, result=view, record_data=view.as_dict())


def member_severity(healthy: int, total: int) -> Status:
    """WARNING while a quorum of `total` is healthy, CRITICAL once it is not."""
    return "WARNING" if healthy >= total // 2 + 1 else "CRITICAL"


def judge_etcd(
    cluster: Cluster, views: dict[str, MemberView], selected: set[str] | None = None
) -> list[Finding]:
    """Findings for every member and for the cluster, from the members' views.

    `selected` (the hosts --limit kept; None for all): a member outside it is not judged, and
    the cluster-wide checks (quorum, leader, member list) need every member in it.
    """
    everyone = [m.host.name for m in cluster.etcd.members]
    warn = cluster.etcd.disk_warn_free_percent
    disks = [_disk(v, v.disk, warn) for v in views.values() if v.disk is not None]
    if selected is not None and not set(everyone) <= selected:
        return _judge_limited(everyone, views, selected) + disks
    names = everyone
    views = {
        n: views.get(n) or MemberView(n, False, error="not checked in this run") for n in names
    }
    healthy = [n for n in names if views[n].healthy]
    if not any(view.reachable for view in views.values()):
        # Nothing was observed: no check could run, which is no verdict (UNKNOWN, its cause).
        causes = "; ".join(f"{n}: {views[n].error or 'unreachable'}" for n in names)
        detail = f"could not check: no member reachable ({causes})" if names else "no members"
        return [f for n in names for f in _member(views[n], "UNKNOWN")] + [
            Finding(check, "cluster", "UNKNOWN", detail)
            for check in ("etcd.quorum", "etcd.leader", "etcd.members")
        ]
    severity = member_severity(len(healthy), len(names))
    findings = [f for n in names for f in _member(views[n], severity)]
    quorum_status: Status = "OK" if len(healthy) == len(names) else severity
    findings.append(
        Finding(
            "etcd.quorum",
            "cluster",
            quorum_status,
            f"{len(healthy)} of {len(names)} members healthy (quorum {len(names) // 2 + 1})",
        )
    )
    findings += _leader(views, healthy)
    findings += _membership(cluster, views, healthy)
    return findings + disks


def _judge_limited(
    everyone: list[str], views: dict[str, MemberView], selected: set[str]
) -> list[Finding]:
    """The members --limit kept, judged alone; the cluster-wide checks skipped with a note."""
    names = [n for n in everyone if n in selected]
    left_out = ", ".join(n for n in everyone if n not in selected)
    note = f"skipped: --limit leaves out etcd members {left_out} (a cluster check needs all)"
    judged = {
        n: views.get(n) or MemberView(n, False, error="not checked in this run") for n in names
    }
    down = [n for n in names if not judged[n].healthy]
    # Those left out may be healthy: the best case still loses quorum when this is CRITICAL.
    severity = member_severity(len(everyone) - len(down), len(everyone))
    findings = [f for n in names for f in _member(judged[n], severity)]
    return findings + [
        Finding(check, "cluster", "OK", note)
        for check in ("etcd.quorum", "etcd.leader", "etcd.members")
    ]


def _member(view: MemberView, severity: Status) -> list[Finding]:
    if not view.reachable:  # counts as down while others were observed; its cause said
        detail = f"host unreachable: {view.error or 'no cause reported'}"
        return [Finding("etcd.health", view.host, severity, detail)]
    found = [
        Finding(
            "etcd.unit",
            view.host,
            "OK" if view.active else severity,
            f"{UNIT} is {'active' if view.active else 'not active'}",
        ),
        Finding(
            "etcd.health",
            view.host,
            "OK" if view.healthy else severity,
            "healthy over TLS" if view.healthy else f"unhealthy: {view.error or 'no answer'}",
        ),
    ]
    if view.status is not None:
        s = view.status
        found.append(
            Finding(
                "etcd.status",
                view.host,
                "OK",
                f"leader {s.leader_id:x}, raft term {s.raft_term}, index "
                f"{s.raft_index}, db {s.db_size} bytes, etcd {s.version}",
            )
        )
    return found


# etcd preallocates each write-ahead-log segment at 64 MB: with less free space than that its
# next segment cannot be made, and the member stops at its next write.
WAL_SEGMENT_BYTES = 64_000_000


def _disk(view: MemberView, disk: DiskSpace, warn_free_percent: int) -> Finding:
    """The member's data directory: enough free space, nearly full (WARNING), or too full for
    etcd to write (CRITICAL), whatever etcd itself says."""
    free = f"{disk.available / 2**20:.0f} MiB free of {disk.size / 2**20:.0f} MiB"
    detail = f"{disk.path}: {free} ({disk.free_percent:.0f}%)"
    if disk.available < WAL_SEGMENT_BYTES:
        detail += ": too little for etcd's next 64 MB WAL segment (free space, then see README)"
        return Finding("etcd.disk", view.host, "CRITICAL", detail)
    if disk.free_percent < warn_free_percent:
        detail += f": under {warn_free_percent}% (etcd.disk_warn_free_percent)"
        return Finding("etcd.disk", view.host, "WARNING", detail)
    return Finding("etcd.disk", view.host, "OK", detail)


def _leader(views: dict[str, MemberView], healthy: list[str]) -> list[Finding]:
    statuses = [views[n].status for n in healthy]
    seen = {status.leader_id for status in statuses if status is not None}
    seen.discard(0)
    if len(seen) == 1 and healthy:
        leader = next(iter(seen))
        name = next(
            (m.name for n in healthy for m in views[n].members if m.member_id == leader),
            f"{leader:x}",
        )
        return [
            Finding(
                "etcd.leader",
                "cluster",
                "OK",
                f"one leader, {name}, agreed by {len(healthy)} members",
            )
        ]
    if not seen:
        detail = "no leader" if healthy else "no leader: no member healthy"
    else:
        detail = f"members disagree: {sorted(f'{s:x}' for s in seen)}"
    return [Finding("etcd.leader", "cluster", "CRITICAL", detail)]


def _membership(
    cluster: Cluster, views: dict[str, MemberView], healthy: list[str]
) -> list[Finding]:
    expected = {(m.name, m.peer_url) for m in cluster.etcd.members}
    reported = next((views[n].members for n in healthy if views[n].members), None)
    if reported is None:
        return [Finding("etcd.members", "cluster", "UNKNOWN", "no healthy member to ask")]
    actual = {(m.name, peer) for m in reported for peer in m.peer_urls}
    if actual == expected:
        return [Finding("etcd.members", "cluster", "OK", f"{len(expected)} members as inventory")]
    missing = sorted(f"{n}={u}" for n, u in expected - actual)
    extra = sorted(f"{n}={u}" for n, u in actual - expected)
    return [
        Finding(
            "etcd.members",
            "cluster",
            "CRITICAL",
            f"member list differs from the inventory: missing {missing}, unexpected {extra}",
        )
    ]
