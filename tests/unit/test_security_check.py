"""verify's security group: the CIS table as data, the survey's parsing, and the judging of
running components, table-driven. What kubenorn deploys must pass its own table."""

from __future__ import annotations

import os
import posixpath
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from test_kubernetes_profiles import cluster_for, flags_of, inventory_data, rendered

from kubenorn.cluster import Cluster
from kubenorn.pki.encryption import EncryptionKey, EncryptionState, config_text
from kubenorn.profiles import CONTROL_PLANE, WORKER
from kubenorn.security_check import (
    FileStat,
    Survey,
    UnitSurvey,
    compare,
    judge_host,
    load_table,
    parse_survey,
    parse_table,
)
from tasks.etcd import etcd_config, member_of
from tasks.security import SURVEY, host_components, host_paths, survey_paths
from tasks.templates import ENVIRONMENT

TABLE = load_table("cis-1.12")
CONTROLLER, NODE = "kube.controller01", "kube.node01"
# cis-1.12's checks with automated tests that apply to this layout (master, etcd, control
# plane, node); policies (section 5) are about workloads and RBAC objects, not hosts.
AUTOMATED = (
    [f"1.1.{i}" for i in range(1, 22)]
    + [f"1.2.{i}" for i in range(1, 31) if i != 20]
    + [f"1.3.{i}" for i in range(1, 8)]
    + ["1.4.1", "1.4.2"]
    + [f"2.{i}" for i in range(1, 8)]
    + ["3.2.1"]
    + [f"4.1.{i}" for i in range(1, 11)]
    + [f"4.2.{i}" for i in range(1, 15)]
    + ["4.3.1"]
)
WAIVED = {"1.2.1", "1.2.9", "1.2.11", "4.2.7", "4.2.14"}


def test_the_table_covers_every_automated_check_and_waives_few() -> None:
    assert sorted({c.id for c in TABLE}, key=_order) == sorted(AUTOMATED, key=_order)
    assert {c.id for c in TABLE if c.waived} == WAIVED
    assert all(c.waived and len(c.waived) > 40 for c in TABLE if c.id in WAIVED)


def _order(check_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in check_id.split("."))


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"id": "9", "component": "x", "severity": "CRITICAL", "flag": "a", "op": "like"}, "op"),
        ({"id": "9", "component": "x", "severity": "INFO", "flag": "a"}, "severity"),
        ({"id": "9", "component": "x", "severity": "WARNING"}, "exactly one"),
        ({"id": "9", "component": "x", "severity": "WARNING", "flag": "a", "file": "unit"}, "one"),
    ],
)
def test_a_malformed_row_is_refused_naming_it(row: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=f"check 9: .*{problem}"):
        parse_table({"checks": [row]})


@pytest.mark.parametrize(
    ("op", "actual", "expected", "passes"),
    [
        ("eq", "false", "false", True),
        ("eq", "True", "true", True),
        ("eq", "true", "false", False),
        ("noteq", "true", "false", True),
        ("has", "Node,RBAC", "RBAC", True),
        ("has", "127.0.0.1:10249", "127.0.0.1", True),
        ("nothave", "Node,AlwaysAllow", "AlwaysAllow", False),
        ("gte", "30", "30", True),
        ("gte", "7", "30", False),
        ("gte", "thirty", "30", False),
        ("valid_elements", "a,b", "a,b,c", True),
        ("valid_elements", "a,d", "a,b,c", False),
        ("present", "anything", "", True),
    ],
)
def test_compare(op: str, actual: str, expected: str, passes: bool) -> None:
    assert compare(op, actual, expected) is passes


# A deployed host as the survey would see it, built from what the deploy renders.
GOOD_FILE = FileStat("600", "root:root")
KEY = EncryptionKey("kubenorn-test", "aescbc", "A" * 43 + "=")


def etcd_unit(cluster: Cluster, host: str) -> UnitSurvey:
    """etcd as it runs: the package's unit, kubenorn's drop-in, its settings in its environment."""
    unit = UnitSurvey(pid=99, args=["/usr/bin/etcd"], env_files=["/etc/etcd/etcd.conf"])
    unit.unit_files = [
        "/lib/systemd/system/etcd.service",
        "/etc/systemd/system/etcd.service.d/kubenorn.conf",
    ]
    settings = inventory_data("supported")["etcd"]
    text = ENVIRONMENT.get_template("etcd/etcd.conf.j2").render(
        etcd=etcd_config(cluster, member_of(cluster, host), settings, formed=True)
    )
    unit.environment = {
        k: v.strip('"')
        for k, _, v in (line.partition("=") for line in text.splitlines())
        if k.startswith("ETCD_")
    }
    return unit


def kube_unit(cluster: Cluster, host: str, component: str) -> UnitSurvey:
    """A Kubernetes component running with the flags (and files) the deploy renders."""
    files = rendered(cluster, host)
    env = posixpath.join(cluster.kubernetes.config_dir, f"{component}.env")
    flags = flags_of(files[env])
    unit = UnitSurvey(pid=100, env_files=[env])
    unit.unit_files = [f"/etc/systemd/system/{component}.service"]
    unit.args = [f"/usr/bin/{component}", *(f"--{k}={v}" for k, v in flags.items())]
    if "config" in flags:
        unit.config_path = flags["config"]
        unit.config_lines = files[flags["config"]].splitlines()
    if component == "kube-apiserver":
        lines = config_text(EncryptionState(KEY)).splitlines()
        unit.provider = lines[lines.index("  providers:") + 1].strip(" -:")
    return unit


def deployed(cluster: Cluster, host: str) -> Survey:
    """The survey of `host` right after a deploy: the rendered flags running, files private."""
    components = host_components(cluster, host)
    survey = Survey()
    for component in components:
        survey.units[f"{component}.service"] = (
            etcd_unit(cluster, host) if component == "etcd" else kube_unit(cluster, host, component)
        )
    paths = host_paths(cluster, host)
    wanted = [*survey_paths(paths, components)]
    wanted += ["/etc/kubernetes/kube-scheduler.kubeconfig", "/etc/kubernetes/kube-proxy.kubeconfig"]
    for unit in survey.units.values():
        wanted += [*unit.unit_files, *unit.env_files]
        wanted += [value for value in unit.flags.values() if value.startswith("/")]
    survey.stats = dict.fromkeys(wanted, GOOD_FILE)
    survey.stats.update(dict.fromkeys(paths.certs, FileStat("644", "root:root")))
    if "etcd" in components:
        survey.stats["/var/lib/etcd/kubenorn"] = FileStat("700", "etcd:etcd")
    return survey


def judge(cluster: Cluster, host: str, survey: Survey) -> list:  # type: ignore[type-arg]
    return judge_host(
        host,
        host_components(cluster, host),
        survey,
        TABLE,
        host_paths(cluster, host),
        benchmark="cis-1.12",
    )


@pytest.mark.parametrize("host", [CONTROLLER, NODE])
def test_what_kubenorn_deploys_passes_its_own_table(host: str) -> None:
    cluster = cluster_for("supported")
    findings = judge(cluster, host, deployed(cluster, host))
    assert [(f.check, f.detail) for f in findings if not f.ok] == []
    (summary,) = findings
    assert summary.check == "security" and "0 checks pass" not in summary.detail
    assert "waived (README)" in summary.detail


@dataclass(frozen=True)
class Case:
    host: str
    change: Callable[[Survey], None]
    check: str
    status: str
    detail_has: str
    also: tuple[str, ...] = ()  # further checks the same change fails


def unit(survey: Survey, component: str) -> UnitSurvey:
    return survey.units[f"{component}.service"]


def set_config(survey: Survey, component: str, key: str, value: object) -> None:
    config = unit(survey, component).config
    parts = key.split(".")
    target = config
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    unit(survey, component).config_lines = yaml.safe_dump(config).splitlines()


def add_foreign_drop_in(survey: Survey) -> None:
    drop_in = "/etc/systemd/system/kube-apiserver.service.d/x.conf"
    unit(survey, "kube-apiserver").unit_files.append(drop_in)
    survey.stats.update({drop_in: FileStat("600", "admin:admin")})


def lose_kubelet_config(survey: Survey) -> None:
    """As the survey reports a path it could not stat."""
    survey.stats.pop("/etc/kubernetes/kubelet-config.yaml")
    survey.missing.add("/etc/kubernetes/kubelet-config.yaml")


CASES = {
    "a drop-in adds --profiling=true to the apiserver (the last flag wins)": Case(
        CONTROLLER,
        lambda s: unit(s, "kube-apiserver").args.append("--profiling=true"),
        "security.1.2.15",
        "CRITICAL",
        "kube-apiserver: --profiling is 'true', expected eq false",
    ),
    "a bare boolean flag is true": Case(
        CONTROLLER,
        lambda s: unit(s, "kube-controller-manager").args.append("--profiling"),
        "security.1.3.2",
        "CRITICAL",
        "kube-controller-manager: --profiling is 'true'",
    ),
    "the scheduler's file turns profiling on": Case(
        CONTROLLER,
        lambda s: set_config(s, "kube-scheduler", "enableProfiling", True),
        "security.1.4.1",
        "CRITICAL",
        "--profiling / enableProfiling is 'true'",
    ),
    "the kubelet's file opens its API to anonymous requests": Case(
        NODE,
        lambda s: set_config(s, "kubelet", "authentication.anonymous.enabled", True),
        "security.4.2.1",
        "CRITICAL",
        "kubelet: --anonymous-auth / authentication.anonymous.enabled is 'true'",
    ),
    "a kubelet flag overrides its file": Case(
        NODE,
        lambda s: unit(s, "kubelet").args.append("--anonymous-auth=true"),
        "security.4.2.1",
        "CRITICAL",
        "is 'true'",
    ),
    "the audit log keeps too few backups": Case(
        CONTROLLER,
        lambda s: unit(s, "kube-apiserver").args.append("--audit-log-maxbackup=3"),
        "security.1.2.18",
        "CRITICAL",
        "'3', expected gte 10",
    ),
    "no encryption configuration": Case(
        CONTROLLER,
        lambda s: setattr(
            unit(s, "kube-apiserver"),
            "args",
            [a for a in unit(s, "kube-apiserver").args if "encryption" not in a],
        ),
        "security.1.2.27",
        "CRITICAL",
        "--encryption-provider-config not set",
    ),
    "identity writes first": Case(
        CONTROLLER,
        lambda s: setattr(unit(s, "kube-apiserver"), "provider", "identity"),
        "security.1.2.28",
        "CRITICAL",
        "encryption provider is 'identity'",
    ),
    "a token file": Case(
        CONTROLLER,
        lambda s: unit(s, "kube-apiserver").args.append("--token-auth-file=/etc/tokens.csv"),
        "security.1.2.2",
        "CRITICAL",
        "--token-auth-file is set (/etc/tokens.csv); it must not be",
    ),
    "etcd without client certificates": Case(
        CONTROLLER,
        lambda s: unit(s, "etcd").environment.update(ETCD_CLIENT_CERT_AUTH="false"),
        "security.2.2",
        "CRITICAL",
        "etcd: --client-cert-auth is 'false'",
    ),
    "a unit file readable by all": Case(
        CONTROLLER,
        lambda s: s.stats.update(
            {"/etc/systemd/system/kube-apiserver.service": FileStat("644", "root:root")}
        ),
        "security.1.1.1",
        "CRITICAL",
        "/etc/systemd/system/kube-apiserver.service mode 644, at most 600 expected",
    ),
    "an unmanaged drop-in is judged too": Case(
        CONTROLLER,
        add_foreign_drop_in,
        "security.1.1.2",
        "CRITICAL",
        "x.conf owned by admin:admin, root:root expected",
    ),
    "the etcd data directory open to its group": Case(
        CONTROLLER,
        lambda s: s.stats.update({"/var/lib/etcd/kubenorn": FileStat("750", "etcd:etcd")}),
        "security.1.1.11",
        "CRITICAL",
        "mode 750, at most 700 expected",
    ),
    "a key readable by others": Case(
        CONTROLLER,
        lambda s: s.stats.update(
            {"/etc/kubernetes/ssl/apiserver.key": FileStat("644", "root:root")}
        ),
        "security.1.1.21",
        "WARNING",
        "/etc/kubernetes/ssl/apiserver.key mode 644",
    ),
    "the kubelet's configuration file gone": Case(
        NODE,
        lose_kubelet_config,
        "security.4.1.9",
        "CRITICAL",
        "/etc/kubernetes/kubelet-config.yaml missing",
        also=("security.4.1.10",),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_change_on_the_host_is_a_finding_naming_host_component_and_check(case: Case) -> None:
    cluster = cluster_for("supported")
    survey = deployed(cluster, case.host)
    case.change(survey)
    findings = [f for f in judge(cluster, case.host, survey) if not f.ok]
    assert [(f.check, f.host, f.status) for f in findings] == [
        (check, case.host, case.status) for check in (case.check, *case.also)
    ], findings
    assert case.detail_has in findings[0].detail
    assert findings[0].detail.endswith(f"(cis-1.12 {case.check.removeprefix('security.')})")


def test_a_stopped_component_has_its_files_judged_and_its_flags_noted() -> None:
    cluster = cluster_for("supported")
    survey = deployed(cluster, CONTROLLER)
    survey.units["kube-scheduler.service"] = replace(
        unit(survey, "kube-scheduler"), pid=0, args=[], config_lines=[]
    )
    findings = judge(cluster, CONTROLLER, survey)
    assert [f for f in findings if not f.ok] == []
    assert "not running, flags not judged: kube-scheduler" in findings[-1].detail


def test_waived_checks_are_not_judged() -> None:
    cluster = cluster_for("supported")
    survey = deployed(cluster, NODE)
    unit(survey, "kubelet").args.append("--hostname-override=elsewhere")  # 4.2.7, waived
    assert [f for f in judge(cluster, NODE, survey) if not f.ok] == []


def test_the_reference_profile_is_not_judged() -> None:
    assert cluster_for("1.6").kubernetes.profile.cis_benchmark is None
    assert cluster_for("supported").kubernetes.profile.cis_benchmark == "cis-1.12"


def test_the_survey_output_parses() -> None:
    text = "\n".join(
        [
            "@unit kube-apiserver.service",
            "@pid 42",
            "@unitfile /etc/systemd/system/kube-apiserver.service",
            "@envfile /etc/kubernetes/kube-apiserver.env",
            "@arg /usr/bin/kube-apiserver",
            "@arg --profiling=false",
            "@arg --v",
            "@arg 2",
            "@configfile /etc/x.yaml",
            "@config a:",
            "@config   b: 1",
            "@provider aescbc",
            "@unit etcd.service",
            "@pid 0",
            "@stat 600 root root /etc/kubernetes/a file.env",
            "@missing /etc/gone",
        ]
    )
    survey = parse_survey(text)
    apiserver = survey.units["kube-apiserver.service"]
    assert (apiserver.pid, apiserver.provider) == (42, "aescbc")
    assert apiserver.flags == {"profiling": "false", "v": "2"}
    assert apiserver.config == {"a": {"b": 1}}
    assert survey.units["etcd.service"].pid == 0
    assert survey.stats["/etc/kubernetes/a file.env"] == FileStat("600", "root:root")
    assert survey.missing == {"/etc/gone"}


@pytest.fixture
def fake_host(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A running process and a `systemctl` that names it, for the survey script, locally."""
    config = tmp_path / "kube-scheduler-config.yaml"
    config.write_text("enableProfiling: false\nclientConnection:\n  kubeconfig: /x\n")
    config.chmod(0o600)
    encryption = tmp_path / "encryption-config.yaml"
    encryption.write_text(config_text(EncryptionState(KEY)))
    unit_file = tmp_path / "kube-scheduler.service"
    unit_file.write_text("[Service]\n")
    env_file = tmp_path / "kube-scheduler.env"
    env_file.write_text("KUBE_ARGS=\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            f"--config={config}",
            f"--encryption-provider-config={encryption}",
            "--profiling=true",
        ],
        env={**os.environ, "ETCD_DATA_DIR": str(tmp_path)},
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *MainPID*) echo {process.pid} ;;\n"
        f"  *FragmentPath*) echo {shlex.quote(str(unit_file))}; echo ;;\n"
        f'  *EnvironmentFiles*) echo "{env_file} (ignore_errors=no)" ;;\n'
        "esac\n"
    )
    systemctl.chmod(0o755)
    time.sleep(0.2)
    try:
        yield {"path": f"{bin_dir}:{os.environ['PATH']}", "tmp": tmp_path}
    finally:
        process.kill()
        process.wait()


def test_the_survey_script_reads_the_running_process(fake_host: dict[str, object]) -> None:
    tmp = fake_host["tmp"]
    result = subprocess.run(
        ["sh", "-c", SURVEY, "sh", "kube-scheduler.service", "--", "/nonexistent"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(fake_host["path"])},
        check=True,
    )
    survey = parse_survey(result.stdout)
    scheduler = survey.units["kube-scheduler.service"]
    assert scheduler.flags["profiling"] == "true"
    assert scheduler.flags["data-dir"] == str(tmp)  # etcd's environment, read from /proc
    assert scheduler.config == {"enableProfiling": False, "clientConnection": {"kubeconfig": "/x"}}
    assert scheduler.provider == "aescbc"
    assert KEY.secret not in result.stdout  # never key material
    assert scheduler.unit_files == [f"{tmp}/kube-scheduler.service"]
    assert scheduler.env_files == [f"{tmp}/kube-scheduler.env"]
    assert survey.stats[f"{tmp}/kube-scheduler-config.yaml"].mode == "600"
    assert f"{tmp}/kube-scheduler.env" in survey.stats
    # /x: the kubeconfig its configuration file names is stat'ed too (kube-proxy's is only there)
    assert survey.missing == {"/nonexistent", "/x"}


def test_every_component_of_a_host_is_surveyed_by_its_roles() -> None:
    cluster = cluster_for("supported")
    assert host_components(cluster, CONTROLLER) == ["etcd", *CONTROL_PLANE]
    assert host_components(cluster, NODE) == list(WORKER)


def test_units_and_drop_ins_of_packages_and_of_systemd_itself_are_not_judged() -> None:
    cluster = cluster_for("supported")
    survey = deployed(cluster, CONTROLLER)
    theirs = [
        "/usr/lib/systemd/system/service.d/10-timeout-abort.conf",  # Debian's, on every service
        "/run/systemd/generator/kube-apiserver.service.d/50-x.conf",
        "/run/systemd/transient/kube-apiserver.service.d/x.conf",
    ]
    unit(survey, "kube-apiserver").unit_files += theirs
    survey.stats.update(dict.fromkeys(theirs, FileStat("644", "root:root")))
    assert [f for f in judge(cluster, CONTROLLER, survey) if not f.ok] == []
    # A runtime drop-in someone wrote by hand is judged.
    hand = "/run/systemd/system/kube-apiserver.service.d/x.conf"
    unit(survey, "kube-apiserver").unit_files.append(hand)
    survey.stats[hand] = FileStat("644", "root:root")
    assert [f.check for f in judge(cluster, CONTROLLER, survey) if not f.ok] == ["security.1.1.1"]
