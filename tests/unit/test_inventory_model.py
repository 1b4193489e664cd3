"""The inventory model: one definition of every key, its JSON Schema, typos refused everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pki_support import INVENTORIES, inventory_copy

from kubenorn.cluster import inspect
from kubenorn.inventory_model import json_schema, validate_entry
from kubenorn.nornir_setup import REPO_ROOT, InventoryError, init_nornir
from runbooks import facts, inventory, preflight

SHIPPED = ["inventory", "lab/inventory", "lab/inventory-1.6"]
FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")


def test_the_committed_schema_is_the_models_schema() -> None:
    """`python -m runbooks.inventory schema` writes it; run it after changing a model."""
    committed = (REPO_ROOT / "schema" / "inventory.schema.json").read_text()
    assert committed == inventory.schema_text()


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("file", FILES)
def test_every_shipped_inventory_file_references_and_passes_the_schema(
    name: str, file: str
) -> None:
    path = REPO_ROOT / name / file
    first = path.read_text().splitlines()[0]
    reference = first.removeprefix("# yaml-language-server: $schema=")
    assert reference != first, f"{path}: no schema comment on the first line"
    assert (path.parent / reference).resolve() == REPO_ROOT / "schema" / "inventory.schema.json"
    schema = json.loads((path.parent / reference).read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_inventories_make_a_cluster(name: str) -> None:
    cluster, problems = inspect(REPO_ROOT / name)
    assert [str(p) for p in problems] == []
    assert cluster is not None


# A typo in each file, and where it must be named.
TYPOS = {
    "a host's data": (
        "hosts.yaml",
        lambda d: d["kube.node01"]["data"].update(adress="10.99.0.21"),
        "hosts.yaml: kube.node01: data.adress: unknown key (did you mean 'address'?)",
    ),
    "a host's own key": (
        "hosts.yaml",
        lambda d: d["kube.node01"].update(user="root"),
        "hosts.yaml: kube.node01: user: unknown key",
    ),
    "a group's nested section": (
        "groups.yaml",
        lambda d: d["nodes"]["data"].update(load_balancer={"on_controlers": True}),
        "groups.yaml: group nodes: data.load_balancer.on_controlers: unknown key "
        "(did you mean 'on_controllers'?)",
    ),
    "a defaults section": (
        "defaults.yaml",
        lambda d: d["data"]["ssh"].update(known_host="known_hosts"),
        "defaults.yaml: defaults: data.ssh.known_host: unknown key (did you mean 'known_hosts'?)",
    ),
    "a secret": (
        "hosts.yaml",
        lambda d: d["kube.node01"].update(password="hunter2"),
        "hosts.yaml: kube.node01: password: a secret never lives in the inventory",
    ),
    "a wrong type": (
        "defaults.yaml",
        lambda d: d["data"]["ssh"].update(verify_host_keys="no"),
        "defaults.yaml: defaults: data.ssh.verify_host_keys: "
        "must be true or false (unquoted), not 'no'",
    ),
}


def with_typo(tmp_path: Path, file: str, change) -> Path:  # noqa: ANN001 - an edit
    copy = inventory_copy("good", tmp_path)
    document = yaml.safe_load((copy / file).read_text())
    change(document)
    (copy / file).write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


@pytest.mark.parametrize("case", TYPOS.values(), ids=TYPOS.keys())
def test_a_typo_is_refused_naming_file_host_and_key(tmp_path: Path, case) -> None:  # noqa: ANN001
    file, change, expected = case
    copy = with_typo(tmp_path, file, change)
    cluster, problems = inspect(copy)
    assert cluster is None
    assert any(str(p).startswith(expected) for p in problems), [str(p) for p in problems]
    with pytest.raises(InventoryError, match="cannot load inventory"):
        init_nornir(copy)
    schema = json.loads((REPO_ROOT / "schema" / "inventory.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load((copy / file).read_text()), schema)


def test_preflight_calls_a_typo_critical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, change, expected = TYPOS["a host's data"]
    copy = with_typo(tmp_path, file, change)
    assert preflight.main(["-i", str(copy), "--no-pki"]) == 2
    out = capsys.readouterr().out
    assert "CRITICAL kube.node01" in out and "data.adress: unknown key" in out


def test_any_other_runbook_exits_3_before_touching_a_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No connection plugin is faked: touching a host would fail differently."""
    file, change, expected = TYPOS["a defaults section"]
    copy = with_typo(tmp_path, file, change)
    assert facts.main(["-i", str(copy), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert expected in captured.err


def test_show_prints_what_a_host_resolves(capsys: pytest.CaptureFixture[str]) -> None:
    assert inventory.main(["show", "kube.node01", "-i", str(INVENTORIES / "good")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hostname"] == "10.99.0.21"
    assert shown["groups"] == ["nodes"]
    assert shown["data"]["address"] == "10.99.0.21"  # the host's own
    assert shown["data"]["role"] == "node"  # from its group
    assert shown["data"]["cluster"]["name"] == "testcluster"  # from defaults


def test_show_of_an_unknown_host_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert inventory.main(["show", "kube.node09", "-i", str(INVENTORIES / "good")]) == 3
    assert "kube.node09: no such host" in capsys.readouterr().err


def test_the_schema_describes_each_value_for_editors() -> None:
    definitions = json_schema()["$defs"]
    address = definitions["HostData"]["properties"]["address"]["anyOf"][0]
    assert address["description"] == "an IP address"
    assert definitions["Ssh"]["additionalProperties"] is False


def test_the_readmes_inventory_reference_is_the_models() -> None:
    """`python -m runbooks.inventory reference` prints it; paste it after changing a model."""
    readme = (REPO_ROOT / "README.md").read_text()
    begin, end = "<!-- inventory-reference:begin -->\n", "<!-- inventory-reference:end -->"
    assert readme.split(begin)[1].split(end)[0] == inventory.reference()


def test_the_reference_names_where_each_key_goes() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in inventory.reference().splitlines()}
    assert "| defaults.yaml |" in rows["data.cluster.kubernetes_version"]
    assert "| hosts, groups, defaults |" in rows["data.ssh.known_hosts"]
    assert "required for every host" in rows["data.address"]


def test_the_files_are_read_once_per_version_and_each_nornir_gets_its_own_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubenorn import inventory_files

    reads: list[str] = []
    real_read = inventory_files._read

    def counting(path: Path, problems: list) -> object:  # noqa: ANN001 - the real signature
        reads.append(path.name)
        return real_read(path, problems)

    monkeypatch.setattr(inventory_files, "_read", counting)
    copy = inventory_copy("good", tmp_path)
    first, second = init_nornir(copy), init_nornir(copy)
    inspect(copy)
    assert sorted(reads) == sorted(FILES)  # three runs of Nornir and a model: one reading
    first.inventory.hosts["kube.node01"].data["cached"] = "facts"
    assert "cached" not in second.inventory.hosts["kube.node01"].data
    hosts = copy / "hosts.yaml"
    hosts.write_text(hosts.read_text().replace("10.99.0.21", "10.99.0.29"))
    assert init_nornir(copy).inventory.hosts["kube.node01"]["address"] == "10.99.0.29"
    assert reads.count("hosts.yaml") == 2


SCHEMA_AND_MODEL_AGREE = [
    ("data.fqdn", "Controller01.Example.test", True),
    ("data.fqdn", "under_score.example.test", False),
    ("data.kubernetes.leader_election.lease_duration", "1m30s", True),
    ("data.kubernetes.leader_election.lease_duration", "15", False),
    ("data.kubernetes.kube_reserved", "cpu=100m, memory=128Mi", True),
    ("data.kubernetes.kube_reserved", "cpu", False),
    ("data.cluster.kubernetes_version", "1.37.2", True),
    ("data.cluster.kubernetes_version", "1.37.x", False),
    ("data.etcd.cert_dir", "etc/etcd", False),
]


@pytest.mark.parametrize(("key", "value", "valid"), SCHEMA_AND_MODEL_AGREE)
def test_the_schema_and_the_model_agree(key: str, value: str, valid: bool) -> None:
    document = yaml.safe_load((INVENTORIES / "good" / "defaults.yaml").read_text())
    document["data"]["kubernetes"]["leader_election"] = {
        "lease_duration": "15s",
        "renew_deadline": "10s",
        "retry_period": "2s",
    }
    *parents, last = key.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    problems = validate_entry("defaults.yaml", "defaults", document)[1]
    assert (problems == []) is valid, problems
    schema = json.loads((REPO_ROOT / "schema" / "inventory.schema.json").read_text())
    assert jsonschema.Draft202012Validator(schema).is_valid(document) is valid
