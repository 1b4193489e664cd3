"""Preflight: good and bad inventories, every problem with its file, host and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from fake_cluster import write_ssh_files
from pki_support import INVENTORIES, inventory_copy

from kubenorn.cluster import load_cluster
from kubenorn.findings import Finding
from kubenorn.nornir_setup import REPO_ROOT
from kubenorn.pki.issue import init
from kubenorn.preflight import preflight
from runbooks.preflight import main


def problems(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.status, f.host, f.detail) for f in findings if not f.ok]


def test_a_good_inventory_with_its_pki_passes(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    init(load_cluster(inventory))
    out = tmp_path / "preflight.json"
    assert main(["-i", str(inventory), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["status"] == "OK"
    assert len(document["findings"]) == 1 + 28  # the inventory, then every PKI item


def test_the_lab_inventory_passes_once_its_pki_is_issued(tmp_path: Path) -> None:
    inventory = tmp_path / "lab"
    shutil.copytree(
        REPO_ROOT / "lab" / "inventory",
        inventory,
        ignore=shutil.ignore_patterns(".pki", "id_ed25519*", "known_hosts"),
    )
    write_ssh_files(inventory)  # `lab up` writes the lab's own: this machine may never have
    assert main(["-i", str(inventory)]) == 2  # no PKI yet: the deploy would have nothing
    init(load_cluster(inventory))
    assert main(["-i", str(inventory)]) == 0


def test_a_missing_pki_is_an_error_before_a_deploy(tmp_path: Path) -> None:
    findings = preflight(inventory_copy("good", tmp_path))
    assert [(f.check, f.status) for f in findings if not f.ok] == [("pki.state", "CRITICAL")]


def test_the_reference_designs_etcd_naming_mistake_is_caught(capsys) -> None:  # noqa: ANN001
    """ETCD_NAME=kube.controller01 but ETCD_INITIAL_CLUSTER="app02=http://kube.controller01:2380,..."."""
    assert main(["-i", str(INVENTORIES / "reference-naming-mistake"), "--no-pki"]) == 2
    out = capsys.readouterr().out
    found = problems(preflight(INVENTORIES / "reference-naming-mistake", pki=False))
    assert (
        "CRITICAL",
        "kube.controller01",
        "hosts.yaml: data.etcd_name: ETCD_NAME 'kube.controller01' is not in "
        "etcd.initial_cluster (app02, app03, app04)",
    ) in found
    mismatch = [d for _, _, d in found if "names member kube.controller01 'app02'" in d]
    assert mismatch and mismatch[0].startswith("defaults.yaml: data.etcd.initial_cluster: ")
    assert sum("peers must use https" in d for _, _, d in found) == 3
    assert len(found) == 9
    assert "ETCD_NAME 'kube.controller02' is not in etcd.initial_cluster" in out


def test_an_imported_initial_cluster_that_agrees_passes(tmp_path: Path) -> None:
    inventory = inventory_copy("reference-naming-mistake", tmp_path)
    defaults = inventory / "defaults.yaml"
    fixed = ",".join(f"kube.controller0{i}=https://kube.controller0{i}:2380" for i in (1, 2, 3))
    text = defaults.read_text()
    start = text.index('initial_cluster: "') + len('initial_cluster: "')
    defaults.write_text(text[:start] + fixed + text[text.index('"', start) :])
    assert problems(preflight(inventory, pki=False)) == []


def test_duplicates_are_errors(capsys) -> None:  # noqa: ANN001
    assert main(["-i", str(INVENTORIES / "duplicates"), "--no-pki"]) == 2
    hosts = {h for _, h, _ in problems(preflight(INVENTORIES / "duplicates", pki=False))}
    assert hosts == {"kube.node01", "KUBE.NODE01", "kube.controller02", "kube.controller03"}


def test_an_even_number_of_etcd_members_is_a_warning() -> None:
    assert main(["-i", str(INVENTORIES / "even-members"), "--no-pki"]) == 1
    assert problems(preflight(INVENTORIES / "even-members", pki=False)) == [
        (
            "WARNING",
            "group etcd",
            "hosts.yaml: groups: 2 etcd members: no member may fail; use 3 or 5",
        )
    ]


@pytest.mark.parametrize(("members", "expected"), [(1, "WARNING"), (4, "WARNING"), (5, None)])
def test_etcd_quorum_sizes(tmp_path: Path, members: int, expected: str | None) -> None:
    inventory = inventory_copy("good", tmp_path)
    hosts = "".join(
        f"etcd{i}:\n  groups: [etcd]\n  data:\n    address: 10.99.1.{i}\n" for i in range(members)
    )
    (inventory / "hosts.yaml").write_text(
        hosts + "cp:\n  groups: [controllers]\n  data:\n    address: 10.99.2.1\n"
        "wk:\n  groups: [nodes]\n  data:\n    address: 10.99.2.2\n    pod_cidr: 10.200.1.0/24\n"
    )
    trust_every_host(inventory)
    statuses = [s for s, _, _ in problems(preflight(inventory, pki=False))]
    assert statuses == ([expected] if expected else [])


def trust_every_host(inventory: Path) -> None:
    """known_hosts entries for every host hosts.yaml names (one made-up key for all)."""
    known_hosts = inventory / "known_hosts"
    key = known_hosts.read_text().splitlines()[-1].split(" ", 1)[1]
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    lines = [f"{h.get('hostname') or name} {key}" for name, h in hosts.items()]
    known_hosts.write_text("\n".join(lines) + "\n")


def test_an_apiserver_name_nodes_cannot_resolve() -> None:
    assert main(["-i", str(INVENTORIES / "unresolvable-endpoint"), "--no-pki"]) == 2
    [(status, host, detail)] = problems(preflight(INVENTORIES / "unresolvable-endpoint", pki=False))
    assert (status, host) == ("CRITICAL", "defaults")
    assert detail.startswith(
        "defaults.yaml: data.cluster.apiserver.address: nodes cannot resolve 'kube-apiserver'"
    )


def test_an_apiserver_name_that_is_an_inventory_host_resolves(tmp_path: Path) -> None:
    inventory = inventory_copy("unresolvable-endpoint", tmp_path)
    defaults = inventory / "defaults.yaml"
    defaults.write_text(
        defaults.read_text().replace("name: kube-apiserver", "name: kube.controller01")
    )
    assert problems(preflight(inventory, pki=False)) == []


def test_unsupported_versions() -> None:
    found = problems(preflight(INVENTORIES / "bad-version", pki=False))
    assert [d.split(": ")[1] for _, _, d in found] == [
        "data.cluster.kubernetes_version",
        "data.etcd.version",
    ]
    assert "Kubernetes 1.12.0 has no profile" in found[0][2]
    assert "1.6 (>= 1.6, < 1.7), supported (>= 1.35, < 1.38)" in found[0][2]


def test_a_runtime_the_version_cannot_use_names_each_node(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    defaults = inventory / "defaults.yaml"
    defaults.write_text(defaults.read_text().replace('"1.37.2"', '"1.6.0"'))
    found = problems(preflight(inventory, pki=False))
    assert {d.split(": ")[0] for _, _, d in found} == {"defaults.yaml"}
    assert [h for _, h, _ in found] == ["kube.node01", "kube.node02"]
    assert all("data.runtime.kind" in d for _, _, d in found)
    assert "'containerd': Kubernetes 1.6.0 runs on docker" in found[0][2]


def test_missing_groups_and_fields_are_all_listed(capsys) -> None:  # noqa: ANN001
    assert main(["-i", str(INVENTORIES / "missing-fields")]) == 2
    out = capsys.readouterr().out
    for expected in (
        "group nodes",
        "groups.yaml: missing role group",
        "hosts.yaml: data.address: missing (expected an IP address)",
        "defaults.yaml: data.cluster.domain: missing",
        "defaults.yaml: data.etcd.peer_port: missing",
    ):
        assert expected in out
    assert "hosts.yaml: data.addr: unknown key (did you mean 'address'?)" in out
    assert "CRITICAL (7 CRITICAL)" in out


def test_a_host_inside_the_service_range(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    hosts = inventory / "hosts.yaml"
    hosts.write_text(hosts.read_text().replace("address: 10.99.0.22", "address: 10.32.0.22"))
    [(status, host, detail)] = problems(preflight(inventory, pki=False))
    assert (status, host) == ("CRITICAL", "kube.node02")
    assert "10.32.0.22 is inside cluster.service_cidr 10.32.0.0/24" in detail


def test_a_missing_inventory_directory_could_not_be_checked(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["-i", str(tmp_path / "nowhere")]) == 3
    assert "no such inventory directory" in capsys.readouterr().err


def ssh_findings(inventory: Path) -> list[tuple[str, str, str]]:
    return [(s, h, d) for s, h, d in problems(preflight(inventory, pki=False)) if s != "OK"]


def set_ssh(inventory: Path, **settings: object) -> None:
    path = inventory / "defaults.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["ssh"].update(settings)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_the_good_inventorys_ssh_settings_pass(tmp_path: Path) -> None:
    assert ssh_findings(inventory_copy("good", tmp_path)) == []


def test_a_missing_key_file_and_known_hosts_are_named(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    (inventory / "id_ed25519").unlink()
    (inventory / "known_hosts").unlink()
    assert ssh_findings(inventory) == [
        ("CRITICAL", "defaults",
         f"defaults.yaml: data.ssh.key_file: {inventory}/id_ed25519: missing"),
        ("CRITICAL", "defaults",
         f"defaults.yaml: data.ssh.known_hosts: {inventory}/known_hosts: missing"),
    ]  # fmt: skip


def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    (inventory / "id_ed25519").unlink()
    (inventory / "id_ed25519").mkdir()  # root reads any file, whatever its mode
    [(status, where, detail)] = ssh_findings(inventory)
    assert (status, where) == ("CRITICAL", "defaults")
    assert detail.endswith("data.ssh.key_file: " + f"{inventory}/id_ed25519: not a file")


def test_a_host_missing_from_known_hosts_is_named_as_ssh_looks_it_up(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    known_hosts = inventory / "known_hosts"
    kept = [line for line in known_hosts.read_text().splitlines() if "kube.node02" not in line]
    # By name only: the SSH layer looks kube.node01 up by its hostname, 10.99.0.21.
    kept = [line.replace("10.99.0.21,", "") for line in kept]
    known_hosts.write_text("\n".join(kept) + "\n")
    assert ssh_findings(inventory) == [
        ("CRITICAL", "kube.node01", f"hosts.yaml: data.ssh.known_hosts: {known_hosts} has no "
         "entry for 10.99.0.21: the connection would be refused"),
        ("CRITICAL", "kube.node02", f"hosts.yaml: data.ssh.known_hosts: {known_hosts} has no "
         "entry for 10.99.0.22: the connection would be refused"),
    ]  # fmt: skip


def test_a_port_other_than_22_is_looked_up_in_brackets(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    path = inventory / "defaults.yaml"
    path.write_text(path.read_text().replace("port: 22\n", "port: 2222\n", 1))
    found = ssh_findings(inventory)
    assert len(found) == 5 and all("no entry for [10.99.0." in d for _, _, d in found), found
    known_hosts = inventory / "known_hosts"
    lines = known_hosts.read_text().splitlines()[1:]
    bracketed = [f"[{line.split(',')[0]}]:2222 {line.split(' ', 1)[1]}" for line in lines]
    known_hosts.write_text("\n".join(bracketed) + "\n")
    assert ssh_findings(inventory) == []


def test_no_known_hosts_needed_when_host_keys_are_not_verified(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    (inventory / "known_hosts").unlink()
    set_ssh(inventory, verify_host_keys=False)
    assert ssh_findings(inventory) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("connect_timeout", "ten"), ("command_timeout", True), ("command_timeout", 0)],
)
def test_timeouts_must_be_numbers(tmp_path: Path, field: str, value: object) -> None:
    inventory = inventory_copy("good", tmp_path)
    set_ssh(inventory, **{field: value})
    found = ssh_findings(inventory)
    assert len(found) == 1  # where it is set, not once per host that inherits it
    assert found[0][1] == "defaults"
    assert f"defaults.yaml: data.ssh.{field}: {value!r}: not a number" in found[0][2], found


def test_a_port_must_be_a_number(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    path = inventory / "hosts.yaml"
    path.write_text(
        path.read_text().replace(
            "  hostname: 10.99.0.22\n", "  hostname: 10.99.0.22\n  port: twenty-two\n"
        )
    )
    assert ssh_findings(inventory) == [
        (
            "CRITICAL",
            "kube.node02",
            "hosts.yaml: port: must be a whole number from 1 to 65535, not 'twenty-two'",
        )
    ]


def test_a_host_in_no_role_group_is_an_error(tmp_path: Path) -> None:
    inventory = inventory_copy("good", tmp_path)
    path = inventory / "hosts.yaml"
    path.write_text(path.read_text() + "kube.spare:\n  hostname: 10.99.0.30\n  data:\n"
                    "    address: 10.99.0.30\n")  # fmt: skip
    trust_every_host(inventory)
    assert ssh_findings(inventory) == [
        (
            "CRITICAL",
            "kube.spare",
            "hosts.yaml: groups: in no role group (etcd, controllers, nodes)",
        )
    ]
