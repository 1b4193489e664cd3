"""The lab logic that needs no lab: the Kubernetes wrapper module, suites, mirrors, cgroups."""

from __future__ import annotations

import threading
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from kubenorn.nornir_setup import REPO_ROOT
from lab.kernel import cgroup_mounted, own_cgroups, remove_host_cgroups
from lab.kubebuild import (
    COMMANDS,
    MODULE,
    Build,
    ldflags,
    parse_version,
    staging_replacements,
    wrapper_go_mod,
)
from lab.settings import LabError, LabHost, debian_mirror, extra_hosts, load_settings, ssh_files

RELEASE_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/spf13/pflag v1.0.10
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kubelet => ./staging/src/k8s.io/kubelet
)
"""


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1.37.2", "v1.37.2"), ("v1.36.3", "v1.36.3"), (" 1.35.4 ", "v1.35.4")],
)
def test_a_version_is_normalised(given: str, expected: str) -> None:
    assert parse_version(given) == expected


@pytest.mark.parametrize("given", ["1.37", "latest", "v1.37.2-rc.0", "1.37.2.1", ""])
def test_a_version_that_is_not_major_minor_patch_is_refused(given: str) -> None:
    with pytest.raises(LabError, match="is not MAJOR.MINOR.PATCH"):
        parse_version(given)


def test_each_staging_module_is_replaced_by_its_published_version() -> None:
    assert staging_replacements(RELEASE_GO_MOD, "v0.37.2") == [
        "\tk8s.io/api => k8s.io/api v0.37.2",
        "\tk8s.io/client-go => k8s.io/client-go v0.37.2",
        "\tk8s.io/kubelet => k8s.io/kubelet v0.37.2",
    ]


def test_a_go_mod_without_staging_replacements_is_refused() -> None:
    with pytest.raises(LabError, match="no staging replace block"):
        staging_replacements("module k8s.io/kubernetes\n", "v0.37.2")


def test_the_wrapper_requires_the_release_names_the_commands_and_keeps_its_go_settings() -> None:
    text = wrapper_go_mod("v1.37.2", RELEASE_GO_MOD)
    assert f"require {MODULE} v1.37.2" in text
    assert "\tk8s.io/kubelet => k8s.io/kubelet v0.37.2" in text
    assert "go 1.26.0" in text and "godebug default=go1.26" in text
    for package in COMMANDS.values():
        assert f"\t{MODULE}/{package}\n" in text
    assert "./staging" not in text


def test_the_committed_wrapper_matches_what_the_generator_makes_of_it() -> None:
    """The committed go.mod was generated (then tidied): its replace block is the generator's."""
    committed = (REPO_ROOT / "lab" / "kubernetes" / "v1.37.2" / "go.mod").read_text()
    assert f"require {MODULE} v1.37.2" in committed or f"\t{MODULE} v1.37.2" in committed
    assert "./staging" not in committed
    assert "k8s.io/client-go => k8s.io/client-go v0.37.2" in committed


def test_the_version_is_stamped_into_both_version_packages(tmp_path: Path) -> None:
    build = Build("v1.37.2", tmp_path)
    info = tmp_path / "go" / "mod" / "cache" / "download" / MODULE / "@v" / "v1.37.2.info"
    info.parent.mkdir(parents=True)
    info.write_text('{"Version":"v1.37.2","Time":"2026-10-27T12:01:04Z"}')
    flags = ldflags(build)
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.37.2" in flags
        assert f"-X {package}.gitMinor=37" in flags
        assert f"-X {package}.buildDate=2026-10-27T12:01:04Z" in flags


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/", {"memory": "/process_api/x"}),
        ("3:cpuset:/a/b\n9:name=systemd:/", {"cpuset": "/a/b", "name=systemd": "/"}),
    ],
)
def test_the_lab_process_cgroups_are_read_per_controller(
    text: str, expected: dict[str, str]
) -> None:
    found = own_cgroups(text)
    assert {k: found[k] for k in expected} == expected
    if "cpu,cpuacct" in text:
        assert found["cpu"] == found["cpuacct"] == "/"


def test_each_lab_inventory_has_its_suite_and_what_the_lab_builds() -> None:
    supported = load_settings(REPO_ROOT / "lab" / "inventory")
    reference = load_settings(REPO_ROOT / "lab" / "inventory-1.6")
    assert (supported.suite, supported.kubernetes_build) == ("trixie", "1.37.2")
    assert (reference.suite, reference.kubernetes_build) == ("bookworm", None)
    assert supported.repo_url.endswith(":8080/trixie")
    # Both use one SSH key and known_hosts: the hosts are the same names and addresses.
    assert supported.ssh_files == reference.ssh_files


def test_an_inventory_the_lab_does_not_know_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="not a lab inventory"):
        load_settings(tmp_path)


def test_ssh_files_resolve_from_the_inventory_directory(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text(
        "data:\n  ssh: {key_file: ../keys/id, known_hosts: known_hosts}\n"
    )
    assert ssh_files(tmp_path) == {
        "key_file": (tmp_path.parent / "keys" / "id").resolve(),
        "known_hosts": (tmp_path / "known_hosts").resolve(),
    }


def test_a_missing_ssh_setting_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text("data:\n  ssh: {key_file: id}\n")
    with pytest.raises(LabError, match=r"defaults.yaml: data.ssh.known_hosts is not set"):
        ssh_files(tmp_path)


SOURCES = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ("bookworm", "http://mirror.example/debian"),
        ("bookworm-security", "http://security.example/debian-security"),
        # Not named by the machine's sources: the mirror of the machine's own suite serves it.
        ("trixie", "http://mirror.example/debian"),
    ],
)
def test_the_mirror_comes_from_the_machines_own_sources(
    tmp_path: Path, suite: str, expected: str
) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES)
    assert debian_mirror(suite, (sources,), machine_suite="bookworm") == expected


def test_no_mirror_at_all_is_an_error_naming_the_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("")
    with pytest.raises(LabError, match="no Debian mirror for trixie"):
        debian_mirror("trixie", (sources,), machine_suite="bookworm")


MOUNTINFO = (
    "610 600 0:52 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,size=4096k\n"
    "611 610 0:30 / /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup ro,memory\n"
    "612 610 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)


@pytest.mark.parametrize(
    ("target", "mounted"),
    [
        ("/sys/fs/cgroup/memory", True),
        ("/sys/fs/cgroup/cpu", False),
        ("/sys/fs/cgroup", False),
        ("/sys/fs/cgroup/unified", False),
    ],
)
def test_a_host_is_rebound_only_once_nspawn_mounted_its_cgroup(target: str, mounted: bool) -> None:
    assert cgroup_mounted(MOUNTINFO, Path(target)) is mounted


def test_a_hosts_cgroups_are_removed_deepest_first_in_every_controller(tmp_path: Path) -> None:
    dirs = {c: tmp_path / c / "kubenorn-lab" / "kube.node01" for c in ("memory", "pids")}
    for directory in dirs.values():
        (directory / "system.slice" / "kubelet.service").mkdir(parents=True)
    remove_host_cgroups(dirs)
    assert not any(d.exists() for d in dirs.values())
    assert (tmp_path / "memory" / "kubenorn-lab").is_dir()  # other hosts' parent stays


def test_a_cgroup_still_busy_is_waited_for_then_removed(tmp_path: Path) -> None:
    directory = tmp_path / "pids" / "kube.node01"
    directory.mkdir(parents=True)
    busy = directory / "cgroup.procs"  # a file makes rmdir fail as a populated cgroup does
    busy.write_text("4242")
    threading.Timer(0.3, busy.unlink).start()
    remove_host_cgroups({"pids": directory}, timeout=5.0)
    assert not directory.exists()


def test_a_cgroup_that_stays_busy_is_an_error_naming_it(tmp_path: Path) -> None:
    directory = tmp_path / "memory" / "kube.node01"
    directory.mkdir(parents=True)
    (directory / "cgroup.procs").write_text("4242")
    with pytest.raises(LabError, match="memory/kube.node01 cannot be removed"):
        remove_host_cgroups({"memory": directory}, timeout=0.2)


def test_extra_hosts_follow_the_inventorys_on_free_addresses() -> None:
    settings = load_settings(REPO_ROOT / "lab" / "inventory").without_extras()
    own = settings.hosts
    grown = settings.with_extras(2)
    assert grown.hosts[: len(own)] == own
    assert grown.extras == (
        LabHost("kube.extra01", "10.240.0.101"),
        LabHost("kube.extra02", "10.240.0.102"),
    )
    assert grown.with_extras(1).extras == grown.extras  # those there stay
    assert grown.without_extras().hosts == own
    with pytest.raises(LabError, match="room for 0 to 100 extra hosts"):
        settings.with_extras(101)


def test_extra_hosts_on_an_inventory_hosts_address_are_refused() -> None:
    gateway = IPv4Interface("10.240.0.1/24")
    own = (LabHost("kube.node01", "10.240.0.102"),)
    raw = {"prefix": "kube.extra", "first_address": "10.240.0.101", "most": 3}
    with pytest.raises(LabError, match=r"kube\.extra02 would be 10\.240\.0\.102"):
        extra_hosts(raw, gateway, own)
    beyond = {**raw, "first_address": "10.240.0.254"}
    with pytest.raises(LabError, match="not a free host address"):
        extra_hosts(beyond, gateway, ())


def test_the_lab_commands_print_errors_with_every_runbooks_prefix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab import kubebuild
    from runbooks import lab as lab_runbook

    def refuse(*args: object) -> None:
        raise LabError("no lab here")

    monkeypatch.setattr(lab_runbook.Lab, "load", refuse)
    monkeypatch.setattr(kubebuild, "ensure_version", refuse)
    assert lab_runbook.main(["status"]) == 1
    assert kubebuild.main(["v1.37.2"]) == 1
    assert capsys.readouterr().err == "error: no lab here\nerror: no lab here\n"
