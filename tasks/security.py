"""The security check group of verify: one survey command per host, judged on the control
machine against the profile's CIS Benchmark table (kubenorn/security_check.py).

The survey reads the RUNNING processes (/proc/PID/cmdline, and etcd's /proc/PID/environ), so
a drop-in that adds a flag kubenorn never wrote is seen; it prints no key material (of the
encryption configuration only the first provider's name).
"""

from __future__ import annotations

import posixpath

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from kubenorn.pki.placement import placements
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.security_check import HostPaths, judge_host, load_table, parse_survey
from tasks.runtime import CNI_CONFIG
from tasks.ssh import run

# $@: UNIT... -- PATH...; prints @-tagged lines (kubenorn.security_check.parse_survey reads).
SURVEY = r"""
units=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do units="$units $1"; shift; done
[ "$#" -gt 0 ] && shift
unit_paths() {
  systemctl show -p FragmentPath -p DropInPaths --value "$1" 2>/dev/null | tr ' ' '\n' |
    sed -n 's|^\(/.*\)$|@unitfile \1|p'
  systemctl show -p EnvironmentFiles --value "$1" 2>/dev/null |
    sed 's/ (ignore_errors=[a-z]*)/\n/g' | sed -n 's|^ *\(/.*\)$|@envfile \1|p'
}
main_pid() { systemctl show -p MainPID --value "$1" 2>/dev/null || echo 0; }
args() { tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null; }
for unit in $units; do
  echo "@unit $unit"
  pid=$(main_pid "$unit")
  echo "@pid ${pid:-0}"
  unit_paths "$unit"
  case "${pid:-0}" in 0|'') continue ;; esac
  args "$pid" | sed 's/^/@arg /'
  tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep '^ETCD_' | sed 's/^/@env /'
  for f in $(args "$pid" | sed -n 's/^--config=//p'); do
    echo "@configfile $f"
    sed 's/^/@config /' "$f" 2>/dev/null
  done
  for f in $(args "$pid" | sed -n 's/^--encryption-provider-config=//p'); do
    echo "@provider $(grep -A1 'providers:' "$f" | tail -n1 | grep -o '[A-Za-z]*' | head -n1)"
  done
done
{
  for unit in $units; do
    unit_paths "$unit" | sed 's/^@[a-z]* //'
    pid=$(main_pid "$unit")
    case "${pid:-0}" in 0|'') continue ;; esac
    args "$pid" | sed -n 's|^--[^=]*=\(/[^,]*\)$|\1|p'
    # Paths a configuration file names (kube-proxy's kubeconfig is only there).
    for f in $(args "$pid" | sed -n 's/^--config=//p'); do
      sed -n 's|^ *[A-Za-z]*: *"\{0,1\}\(/[^"]*\)"\{0,1\} *$|\1|p' "$f" 2>/dev/null
    done
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's|^ETCD_[A-Z_]*=\(/[^,]*\)$|\1|p'
  done
  for p in "$@"; do echo "$p"; done
} | sort -u | while IFS= read -r p; do
  stat -c '@stat %a %U %G %n' -- "$p" 2>/dev/null || echo "@missing $p"
done
"""


def host_components(cluster: Cluster, name: str) -> list[str]:
    """The components judged on a host, by its roles."""
    host = cluster.host(name)
    components = ["etcd"] if host.has_role("etcd") else []
    components += list(CONTROL_PLANE) if host.has_role("controllers") else []
    components += list(WORKER) if host.has_role("nodes") else []
    return components


def host_paths(cluster: Cluster, name: str) -> HostPaths:
    """The inventory's paths on this host, for the table's path templates and pki: kinds."""
    cert_dir = cluster.kubernetes.cert_dir
    placed = [
        p for p in placements(cluster, cluster.host(name)) if posixpath.dirname(p.path) == cert_dir
    ]
    host = cluster.host(name)
    return HostPaths(
        names={
            "config_dir": cluster.kubernetes.config_dir,
            "cert_dir": cert_dir,
            "cni_config": CNI_CONFIG,
            "etcd_user": cluster.etcd.user,
        },
        certs=tuple(p.path for p in placed if p.kind in ("cert", "public")),
        keys=tuple(p.path for p in placed if p.kind == "key"),
        cert_dir=cert_dir if host.has_role("controllers") or host.has_role("nodes") else None,
    )


def survey_paths(paths: HostPaths, components: list[str]) -> list[str]:
    """Paths the survey stats besides those it finds itself (units, flags, environment)."""
    wanted = [*paths.certs, *paths.keys, *([paths.cert_dir] if paths.cert_dir else [])]
    if "kube-apiserver" in components:
        wanted.append(posixpath.join(paths.names["config_dir"], "admin.kubeconfig"))
    if "kubelet" in components:
        wanted.append(paths.names["cni_config"])
    return wanted


def check_security(task: Task, *, cluster: Cluster) -> Result:
    """This host's security findings: its running components against the profile's table."""
    benchmark = cluster.kubernetes.profile.cis_benchmark
    name = task.host.name
    if benchmark is None:
        note = f"profile {cluster.kubernetes.profile.name} has no CIS table (README: waivers)"
        findings = [Finding("security", name, "OK", note)]
        return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])
    components = host_components(cluster, name)
    paths = host_paths(cluster, name)
    units = [f"{c}.service" for c in components]
    argv = ["sh", "-c", SURVEY, "sh", *units, "--", *survey_paths(paths, components)]
    survey = parse_survey(run(task, argv, sudo=True, ok_codes=range(256), timeout=60).stdout)
    findings = judge_host(
        name, components, survey, load_table(benchmark), paths, benchmark=benchmark
    )
    return Result(host=task.host, result=findings, record_data=[f.as_dict() for f in findings])
