"""etcd membership on day two: a member joins a formed cluster, or leaves it, quorum kept.

A member without data (a new controller, or one whose disk is gone) must never start as
`new`: it would found a second cluster, or, under its old identity, panic on a raft log the
others expect it to have. It is added instead (`member add`, as a learner on etcd 3.4+ so it
counts towards quorum only once it has caught up, then promoted), after any stale entry of its
name is removed, and starts with ETCD_INITIAL_CLUSTER_STATE=existing. Every change to the
member list is gated on the quorum the remaining members keep.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster, EtcdMember
from tasks import etcd, etcdctl
from tasks.etcdctl import ClientTls, Member
from tasks.files import ensure_file
from tasks.ssh import RemoteError, run
from tasks.systemd import ensure_service
from tasks.templates import render

PROMOTE_WAIT = 120.0


def probe_etcd(task: Task, *, cluster: Cluster) -> Result:
    """The client URLs of the members that answer healthy, as this host sees them."""
    tls = etcd.client_tls(cluster, cluster.host(task.host.name))
    try:
        answers = etcdctl.health(task, tls, cluster.etcd.client_urls)
    except RemoteError:  # no etcdctl or client certificate yet: a host not deployed
        answers = []
    return Result(host=task.host, result=frozenset(a.endpoint for a in answers if a.healthy))


def check_founding_whole(task: Task, *, cluster: Cluster, in_run: frozenset[str]) -> Result:
    """Check, when no member answered, that every member is in this run to found the cluster.

    A member founding alone (`deploy --limit` of a rebuilt one that cannot reach the others)
    would take the old member's identity with no data: once it reaches them, etcd fails."""
    outside = sorted(m.host.name for m in cluster.etcd.members if m.host.name not in in_run)
    if outside:
        raise RemoteError(
            f"{task.host.name}: no etcd member answered, and {', '.join(outside)} "
            f"{'is' if len(outside) == 1 else 'are'} not in this run: refusing to found a new "
            "etcd cluster with part of its members (a member joins only while another "
            "answers: check the network to them, or deploy every etcd member)"
        )
    return Result(host=task.host, changed=False)


def quorum(voters: int) -> int:
    return voters // 2 + 1


def check_quorum(voters: Sequence[Member], healthy: frozenset[str], change: str) -> None:
    """QuorumRefused unless the healthy `voters` are a quorum of them (the membership after
    `change`)."""
    answering = [m for m in voters if healthy & set(m.client_urls)]
    if len(answering) >= quorum(len(voters)):
        return
    names = ", ".join(m.name or f"{m.member_id:x}" for m in voters)
    raise etcd.QuorumRefused(
        f"refusing to {change}: {len(answering)} of the {len(voters)} voting members left "
        f"({names}) answer healthy, {quorum(len(voters))} needed for quorum"
    )


def unknown_members(cluster: Cluster, listed: Sequence[Member]) -> list[Member]:
    """Members etcd lists whose peer URL no inventory member has."""
    known = {m.peer_url for m in cluster.etcd.members}
    return [m for m in listed if not known & set(m.peer_urls)]


def initial_cluster(cluster: Cluster, listed: Sequence[Member]) -> str:
    """ETCD_INITIAL_CLUSTER for a member joining: exactly the membership etcd holds (etcd
    compares the two by peer URL), in the inventory's order and names, so that it reads as
    deploy renders it whenever the two agree."""
    urls = {url for m in listed for url in m.peer_urls}
    return ",".join(f"{m.name}={m.peer_url}" for m in cluster.etcd.members if m.peer_url in urls)


def has_data(task: Task, data_dir: str) -> bool:
    """Whether the member's data directory holds a member (its WAL and snapshots)."""
    return run(task, ["test", "-d", f"{data_dir}/member"], sudo=True, ok_codes=(0, 1)).rc == 0


def ensure_member_started(
    task: Task, *, cluster: Cluster, healthy: frozenset[str], dry_run: bool | None = None
) -> Result:
    """Ensure this host's member runs in the formed cluster: started if etcd lists it and its
    data is there; otherwise (new, or its data gone) added back under its name, then started."""
    member = etcd.member_of(cluster, task.host.name)
    if member.client_url in healthy:
        return Result(host=task.host, changed=False, result="member")
    tls = etcd.client_tls(cluster, member.host)
    # Asked again: the members before this one in the (serial) step may have come up since.
    answers = etcdctl.health(task, tls, cluster.etcd.client_urls)
    healthy = frozenset(a.endpoint for a in answers if a.healthy)
    if member.client_url in healthy:
        return Result(host=task.host, changed=False, result="member")
    peers = [url for url in cluster.etcd.client_urls if url in healthy]
    listed = etcdctl.members(task, tls, peers)
    strangers = unknown_members(cluster, listed)
    if strangers:
        names = ", ".join(f"{m.name or m.member_id} ({', '.join(m.peer_urls)})" for m in strangers)
        raise RemoteError(
            f"{task.host.name}: etcd lists members the inventory does not have: {names}; "
            "remove them (runbooks.node remove, or etcdctl member remove) before a member joins"
        )
    mine = [m for m in listed if m.name == member.name or member.peer_url in m.peer_urls]
    data_dir = task.host["etcd"]["data_dir"]
    if has_data(task, data_dir) and any(m.name == member.name for m in mine):
        return resume_member(task, member, tls, peers, mine, dry_run=dry_run)
    return join_member(task, cluster, member, tls, healthy, peers, listed, dry_run=dry_run)


def resume_member(
    task: Task,
    member: EtcdMember,
    tls: ClientTls,
    peers: Sequence[str],
    mine: Sequence[Member],
    *,
    dry_run: bool | None,
) -> Result:
    """A listed member with its data, down: start it (and promote it if a join stopped there)."""
    started = task.run(task=ensure_service, unit=etcd.UNIT, dry_run=dry_run)[0]
    learner = [m for m in mine if m.learner]
    if not learner:
        return started
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would promote {member.name}\n")
    promote(task, tls, peers, learner[0])
    return Result(host=task.host, changed=True, diff=(started.diff or "") + "promoted\n")


def join_member(
    task: Task,
    cluster: Cluster,
    member: EtcdMember,
    tls: ClientTls,
    healthy: frozenset[str],
    peers: Sequence[str],
    listed: Sequence[Member],
    *,
    dry_run: bool | None,
) -> Result:
    """Remove what etcd lists under this member's name, add it, start it with its data dir
    empty (an old one moved aside), promote it; quorum checked before the first change."""
    # Added by an earlier run that stopped before the start: that entry is the one to start.
    pending = [m for m in listed if not m.name and member.peer_url in m.peer_urls]
    stale = [
        m
        for m in listed
        if (m.name == member.name or member.peer_url in m.peer_urls) and m not in pending
    ]
    # etcd takes one join at a time: another host's, added but not started or not promoted
    # yet, is finished first (a re-run of that host's deploy), before anything is removed here.
    joining = [m for m in listed if (m.learner or not m.name) and m not in stale + pending]
    if joining:
        names = ", ".join(m.name or f"unstarted {' '.join(m.peer_urls)}" for m in joining)
        raise RemoteError(
            f"refusing to add {member.name}: etcd holds a member still joining ({names}); "
            "deploy that host first, then this one"
        )
    learner = etcd.version_tuple(cluster.etcd.version) >= (3, 4)
    voters = [m for m in listed if not m.learner and m not in stale]
    # A learner votes only once promoted, after catching up; a plain new member at once.
    newcomer = [] if learner or pending else [Member(0, member.name, (member.peer_url,), ())]
    check_quorum([*voters, *newcomer], healthy, f"add {member.name}")
    plan = [f"remove stale member {m.name or 'unnamed'} ({m.member_id:x})" for m in stale]
    plan += [] if pending else [f"add {member.name} ({member.peer_url})"]
    plan += [f"start {etcd.UNIT} joining the cluster (existing)"]
    plan += [f"promote {member.name}"] if learner else []
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff="".join(f"would {p}\n" for p in plan))
    for old in stale:
        etcdctl.remove_member(task, tls, peers, old.member_id)
    if pending:
        joined = [m for m in listed if m not in stale]
    else:
        joined = etcdctl.add_member(task, tls, peers, member.name, member.peer_url, learner=learner)
    task.run(task=write_initial_membership, cluster=cluster, listed=joined)
    set_aside_old_data(task)
    etcd.start_without_waiting(task)
    added = [m for m in joined if member.peer_url in m.peer_urls and m.learner]
    if added:
        promote(task, tls, peers, added[0])
    etcd.wait_healthy(task, etcd.rollout_of(task, cluster))
    return Result(host=task.host, changed=True, diff="".join(f"{p}\n" for p in plan))


def write_initial_membership(task: Task, *, cluster: Cluster, listed: Sequence[Member]) -> Result:
    """Ensure the initial file names the membership etcd holds now, as `existing`."""
    member = etcd.member_of(cluster, task.host.name)
    config = etcd.etcd_config(cluster, member, task.host["etcd"], formed=True)
    config["initial_cluster"] = initial_cluster(cluster, listed)
    content = render(task, "etcd/etcd-initial.conf.j2", etcd=config)
    return task.run(task=ensure_file, path=config["initial_file"], content=content, mode="0600")[0]


def set_aside_old_data(task: Task) -> None:
    """Move a data directory of a removed identity aside (nothing deleted), recreate it empty."""
    settings = task.host["etcd"]
    data_dir = settings["data_dir"]
    aside = f"{data_dir}.before-join-{time.strftime('%Y%m%dT%H%M%S')}"
    script = (
        'if [ -d "$1/member" ]; then mv -- "$1" "$2" && '
        'install -d -m 0700 -o "$3" -g "$3" -- "$1"; fi'
    )
    run(task, ["sh", "-c", script, "sh", data_dir, aside, settings["user"]], sudo=True)


def promote(task: Task, tls: ClientTls, peers: Sequence[str], learner: Member) -> None:
    """Promote `learner` once it has caught up with the leader (etcd refuses before)."""
    deadline = time.monotonic() + PROMOTE_WAIT
    while True:
        answer = etcdctl.promote_member(task, tls, peers, learner.member_id)
        if answer.rc == 0:
            return
        if time.monotonic() >= deadline:
            raise RemoteError(
                f"{task.host.name}: learner {learner.member_id:x} not promoted within "
                f"{PROMOTE_WAIT:.0f}s: {answer.stderr.strip() or answer.stdout.strip()}"
            )
        time.sleep(1.0)


def ensure_member_left(
    task: Task, *, cluster: Cluster, leaving: str, dry_run: bool | None = None
) -> Result:
    """Ensure etcd no longer lists the member of inventory host `leaving` (leadership moved
    away first); refused when the members left would not keep quorum."""
    member = etcd.member_of(cluster, leaving)
    tls = etcd.client_tls(cluster, cluster.host(task.host.name))
    others = [url for url in cluster.etcd.client_urls if url != member.client_url]
    healthy = frozenset(a.endpoint for a in etcdctl.health(task, tls, others) if a.healthy)
    listed = etcdctl.members(task, tls, sorted(healthy) or others)
    gone = [m for m in listed if m.name == member.name or member.peer_url in m.peer_urls]
    if not gone:
        return Result(host=task.host, changed=False, result=f"{member.name}: not an etcd member")
    voters = [m for m in listed if not m.learner and m not in gone]
    check_quorum(voters, healthy, f"remove {member.name}")
    diff = f"remove etcd member {member.name} ({gone[0].member_id:x})\n"
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=f"would {diff}")
    hand_leadership_away(task, tls, cluster, gone[0], healthy)
    etcdctl.remove_member(task, tls, sorted(healthy), gone[0].member_id)
    return Result(host=task.host, changed=True, diff=diff)


def hand_leadership_away(
    task: Task, tls: ClientTls, cluster: Cluster, leaving: Member, healthy: frozenset[str]
) -> None:
    """If `leaving` leads, move leadership to a healthy voter first: no election gap."""
    statuses = etcdctl.status(task, tls, sorted(healthy | set(leaving.client_urls)))
    if not any(s.leader_id == leaving.member_id for s in statuses):
        return
    if etcd.version_tuple(cluster.etcd.version) < (3, 3):
        return
    heir = next(s for s in statuses if s.member_id != leaving.member_id and s.endpoint in healthy)
    command = etcdctl.etcdctl_command(
        tls, list(leaving.client_urls), "move-leader", f"{heir.member_id:x}", json_output=False
    )
    run(task, command, sudo=True)
