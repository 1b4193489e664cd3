"""What the Kubernetes drills do on hosts: read a leader, kill or stop a component, probe the LB."""

from __future__ import annotations

import posixpath
import shlex

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.profiles import unit_of
from tasks.components import wait_etcd
from tasks.etcd import UNIT as ETCD_UNIT
from tasks.etcd import revive_member
from tasks.kube_units import start_components
from tasks.kube_verify import api_get, leader_record
from tasks.ssh import RemoteError, run
from tasks.systemd import unit_state

# Requests through the node's load balancer for `seconds`; prints "<answered 200> <other>".
PROBE_SCRIPT = """
end=$(( $(date +%s) + {seconds} )); ok=0; bad=0
while [ "$(date +%s)" -lt "$end" ]; do
  code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 --cacert {ca} {url})
  if [ "$code" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  sleep {interval}
done
echo "$ok $bad"
"""


def read_leader(task: Task, *, cluster: Cluster, component: str) -> Result:
    """The leader record of `component`, read through this controller's apiserver."""
    profile = cluster.kubernetes.profile
    obj, error = api_get(task, cluster, profile.leader_path(component))
    if obj is None:
        raise RemoteError(f"{task.host.name}: cannot read the {component} leader: {error}")
    return Result(host=task.host, result=leader_record(profile, obj))


def kill_component(task: Task, *, component: str) -> Result:
    """SIGKILL `component`'s main process, as a crash would; systemd restarts it."""
    unit = unit_of(component)
    run(task, ["systemctl", "kill", "--signal=SIGKILL", "--kill-who=main", unit], sudo=True)
    return Result(host=task.host, changed=True, diff=f"killed {unit} (SIGKILL)\n")


def stop_component(task: Task, *, component: str) -> Result:
    """Stop `component` until started again."""
    run(task, ["systemctl", "stop", unit_of(component)], sudo=True)
    return Result(host=task.host, changed=True, diff=f"stopped {unit_of(component)}\n")


def revive_etcd(task: Task, *, cluster: Cluster) -> Result:
    """Undo of a killed member: no drill drop-in, etcd started, healthy under one leader."""
    down = not unit_state(task, ETCD_UNIT)[1]
    task.run(task=revive_member)
    task.run(task=wait_etcd, cluster=cluster, dry_run=False)
    return Result(host=task.host, changed=down, diff=f"started {ETCD_UNIT}\n" if down else "")


def restart_component(task: Task, *, cluster: Cluster, component: str) -> Result:
    """Undo of a killed or stopped component: running (started if it is not) and healthy."""
    started = task.run(task=start_components, cluster=cluster, components=(component,))
    return Result(host=task.host, changed=started.changed, diff=started[0].diff)


def probe_load_balancer(
    task: Task, *, cluster: Cluster, seconds: int, interval: float = 0.1
) -> Result:
    """GET the apiserver's health through this node's load balancer for `seconds`; count."""
    endpoint = cluster.apiserver
    path = task.host["load_balancer"]["health_check"]
    script = PROBE_SCRIPT.format(
        seconds=seconds,
        interval=interval,
        ca=shlex.quote(posixpath.join(cluster.kubernetes.cert_dir, "ca.crt")),
        url=shlex.quote(f"https://{endpoint.name}:{endpoint.port}{path}"),
    )
    answered = run(task, ["sh", "-c", script], timeout=seconds + 60).stdout.split()
    ok, errors = int(answered[0]), int(answered[1])
    return Result(host=task.host, result=(ok, errors))
