"""PKI on the hosts: distribute from the control machine's state, and read back to check.

The plan is recomputed from the inventory the Nornir object was loaded from; key material is
read from the state directory inside the task and passed only to subtasks (whose arguments
Nornir does not log), never as a top-level task argument.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from pathlib import Path

from nornir.core.task import AggregatedResult, Result, Task

from kubenorn.cluster import Cluster, Host, cluster_of_nornir
from kubenorn.pki.deployed import RemoteFile, deployed_findings
from kubenorn.pki.placement import content, directories, placements
from kubenorn.pki.rehearsal import with_pki_dir
from kubenorn.pki.store import Store
from kubenorn.profiles import CONTROL_PLANE, WORKER, unit_of
from tasks.compose import combined
from tasks.etcd import UNIT as ETCD_UNIT
from tasks.files import (
    FileMeta,
    ensure_directory,
    ensure_file,
    file_meta,
    files_in_place,
    read_file,
)
from tasks.systemd import owe_restarts

# Set by a run whose PKI state is not the inventory's own (a dry run's throwaway copy).
PKI_DIR_SETTING = "kubenorn_pki_dir"


def cluster_of(task: Task) -> Cluster:
    """The cluster model of the inventory this task's Nornir object was loaded from."""
    cluster = cluster_of_nornir(task.nornir)
    pki_dir = task.nornir.config.user_defined.get(PKI_DIR_SETTING)
    return with_pki_dir(cluster, Path(pki_dir)) if pki_dir else cluster


IN_CLUSTER_TRUST = ("ca.crt", "sa.pub")


def certificate_readers(host: Host) -> list[str]:
    """The services that read this host's PKI files: a change owes each a restart."""
    units = [ETCD_UNIT] if host.has_role("etcd") else []
    units += map(unit_of, CONTROL_PLANE) if host.has_role("controllers") else []
    units += map(unit_of, WORKER) if host.has_role("nodes") else []
    return units


def ensure_certificates(task: Task, *, dry_run: bool | None = None) -> Result:
    """Ensure this host holds exactly the PKI files its roles need, with modes and owners;
    a change owes the services that read them a restart, recorded on the host first."""
    cluster = cluster_of(task)
    host = cluster.host(task.host.name)
    store = Store(cluster.pki.dir)
    # All read before any is written; files a service writes itself (and restarts for) skipped.
    wanted = [(p, content(store, p)) for p in placements(cluster, host) if p.service is None]
    results = [
        task.run(
            task=ensure_directory,
            path=d.path,
            mode=d.mode,
            owner=d.owner,
            group=d.group,
            dry_run=dry_run,
        )
        for d in directories(cluster, host)
    ]
    desired = {p.path: (data, FileMeta(p.mode, p.owner, p.group)) for p, data in wanted}
    in_place = files_in_place(task, desired)
    stale = [(p, data) for p, data in wanted if p.path not in in_place]
    if stale:
        # Owe first: a run that dies after a certificate is written still restarts its readers.
        task.run(task=owe_restarts, units=certificate_readers(host), dry_run=dry_run)
    results += [
        task.run(
            task=ensure_file,
            path=p.path,
            content=data,
            mode=p.mode,
            owner=p.owner,
            group=p.group,
            secret=p.secret,
            dry_run=dry_run,
        )
        for p, data in stale
    ]
    result = combined(task, results)
    result.result = [p.path for p, _ in stale]  # what changed: deploy reads the trust files
    return result


def trust_changed(certificates: AggregatedResult) -> bool:
    """Whether a deploy's certificates step changed what pods trust or present: the cluster CA
    (their kube-root-ca.crt) or the service-account key (their tokens). Pods that talk to the
    apiserver keep the old ones until they restart."""
    return any(
        posixpath.basename(path) in IN_CLUSTER_TRUST
        for result in certificates.values()
        if not result.failed
        for path in result[0].result or []
    )


def check_deployed_certificates(task: Task, *, warn_days: int | None = None) -> Result:
    """Read this host's PKI files and return findings about them; changes nothing."""
    cluster = cluster_of(task)
    host = cluster.host(task.host.name)
    files = {}
    for placement in placements(cluster, host):
        data = read_file(task, placement.path)
        meta = file_meta(task, placement.path) if data is not None else None
        files[placement.path] = RemoteFile(
            data, meta.mode if meta else None, meta.owner if meta else None
        )
    warn = cluster.pki.warn_days if warn_days is None else warn_days
    findings = deployed_findings(cluster, host, files, now=datetime.now(UTC), warn_days=warn)
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])
