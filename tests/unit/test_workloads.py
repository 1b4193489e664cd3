"""Workloads without a registry: image archives, pod routes, the DNS add-on, the smoke test."""

from __future__ import annotations

import hashlib
import json
import shlex
import tarfile
from pathlib import Path

import pytest
import yaml

from kubenorn.cluster import load_cluster
from kubenorn.image_archives import ImageArchive, ImageArchiveError, archive_digest
from kubenorn.inventory_model import validate_entry
from lab.images import ImageRecipe, write_archive
from tasks.addons import changed_objects
from tasks.images import judge_images, parse_image_list
from tasks.pod_network import PodRoute, judge_routes, parse_routes, pod_routes
from tasks.smoke import (
    SmokePods,
    dns_finding,
    not_ready_reason,
    parse_probe,
    pod_network_finding,
    remove_stale_namespaces,
    service_finding,
)
from tasks.ssh import CommandError, CommandResult

LAB = Path(__file__).resolve().parents[2] / "lab" / "inventory"
DIGEST = "sha256:" + "a" * 64


def build(directory: Path, name: str = "kubenorn.lab/busybox:1.37.0") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / "busybox.oci.tar"
    recipe = ImageRecipe(name, archive, "deb", "busybox-static", "/bin/busybox", ("/bin/sh",))
    write_archive(recipe, {"/bin/busybox": b"\x7fELF", "/bin/sh": "busybox"})
    return archive


# --- archives: the lab writes OCI layouts, the product reads them -------------------------


def test_an_archive_the_lab_writes_names_its_image_and_the_manifest_it_holds(
    tmp_path: Path,
) -> None:
    archive = build(tmp_path)
    digest = archive_digest(archive, "kubenorn.lab/busybox:1.37.0")
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    layer = json.loads(manifest)["layers"][0]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"


def test_the_same_inputs_give_the_same_archive_byte_for_byte(tmp_path: Path) -> None:
    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_an_archive_without_the_image_is_refused_naming_both(tmp_path: Path) -> None:
    archive = build(tmp_path)
    with pytest.raises(ImageArchiveError, match=r"busybox.oci.tar: .* does not name other:1"):
        archive_digest(archive, "other:1")


def test_a_docker_archive_is_refused_with_the_conversion(tmp_path: Path) -> None:
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        tar.addfile(info)
    with pytest.raises(ImageArchiveError, match="a docker archive .* `skopeo copy docker-archive:"):
        archive_digest(archive, "x:1")


@pytest.mark.parametrize("content", [b"", b"not a tar at all"])
def test_a_file_that_is_no_archive_is_named(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "broken.tar"
    archive.write_bytes(content)
    with pytest.raises(ImageArchiveError, match="broken.tar: not a readable OCI archive"):
        archive_digest(archive, "x:1")


def test_a_missing_archive_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageArchiveError, match="absent.tar: not a readable OCI archive"):
        ImageArchive("x:1", tmp_path / "absent.tar").manifest_digest()


def test_a_pinned_digest_must_match_the_archive(tmp_path: Path) -> None:
    archive = build(tmp_path)
    with pytest.raises(ImageArchiveError, match="the inventory pins sha256:aaa"):
        ImageArchive("kubenorn.lab/busybox:1.37.0", archive, DIGEST).manifest_digest()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pause.tar", "data.kubernetes.images: 'pause.tar' is not a list"),
        ([{"name": "x:1"}], "data.kubernetes.images.0.archive: missing"),
        ([{"name": "x:1", "archive": "a", "pull": True}], "images.0.pull: unknown key"),
        ([{"name": "x:1", "archive": "a", "digest": "md5:1"}], "images.0.digest: must be sha256"),
    ],
)
def test_inventory_images_are_checked_entry_by_entry(value: object, message: str) -> None:
    defaults = {"data": {"kubernetes": {"config_dir": "/k", "cert_dir": "/k/ssl", "images": value}}}
    _, problems = validate_entry("defaults.yaml", "defaults", defaults)
    assert any(message in str(p) for p in problems), [str(p) for p in problems]


def test_an_archive_path_is_relative_to_the_inventory(tmp_path: Path) -> None:
    from pki_support import inventory_copy

    inventory = inventory_copy("good", tmp_path)
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    images = [{"name": "x:1", "archive": "images/x.tar"}, {"name": "y:1", "archive": "/abs/y.tar"}]
    defaults["data"]["kubernetes"]["images"] = images
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    archives = [image.archive for image in load_cluster(inventory).kubernetes.images]
    assert archives == [inventory.resolve() / "images" / "x.tar", Path("/abs/y.tar")]


# --- images on a node --------------------------------------------------------------------

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CTR_LS = f"""REF TYPE DIGEST SIZE PLATFORMS LABELS
registry.k8s.io/pause:3.10.1 {MANIFEST} {{d}} 1.1 MiB linux/amd64 io.cri-containerd.pinned=pinned
sha256:0123 {MANIFEST} sha256:0123 1.1 MiB linux/amd64 -
"""


def test_loaded_images_are_read_from_ctr() -> None:
    images = parse_image_list(CTR_LS.format(d=DIGEST))
    assert images["registry.k8s.io/pause:3.10.1"] == DIGEST


@pytest.mark.parametrize(
    ("loaded", "status", "detail"),
    [
        ({"p:1": DIGEST}, "OK", "1 images loaded, none pulled"),
        ({}, "CRITICAL", "p:1 missing"),
        ({"p:1": "sha256:" + "b" * 64}, "CRITICAL", "p:1 is sha256:bbb"),
    ],
)
def test_a_node_without_an_image_or_with_another_digest_is_critical(
    loaded: dict[str, str], status: str, detail: str
) -> None:
    finding = judge_images("kube.node01", loaded, {"p:1": DIGEST})
    assert (finding.status, finding.host) == (status, "kube.node01")
    assert detail in finding.detail


# --- pod routes --------------------------------------------------------------------------

ROUTES = """10.200.2.0/24 via 10.240.0.22 dev host0 proto 44
10.200.3.0/24 via 10.240.0.99 dev host0 proto 44
10.32.0.0/24 dev host0 proto 44 scope link src 10.240.0.21
10.240.0.0/24 dev host0 proto kernel scope link src 10.240.0.21
"""


def test_every_host_routes_the_other_nodes_pods_through_them() -> None:
    cluster = load_cluster(LAB)
    routes = pod_routes(cluster, cluster.host("kube.node01"))
    assert routes == [
        PodRoute("10.200.2.0/24", "10.240.0.22", "kube.node02"),
        PodRoute("10.200.3.0/24", "10.240.0.23", "kube.node03"),
    ]
    assert len(pod_routes(cluster, cluster.host("kube.controller01"))) == 3


def test_a_missing_or_misdirected_route_names_the_node_behind_it() -> None:
    wanted = [
        PodRoute("10.200.2.0/24", "10.240.0.22", "kube.node02"),
        PodRoute("10.200.3.0/24", "10.240.0.23", "kube.node03"),
        PodRoute("10.200.4.0/24", "10.240.0.24", "kube.node04"),
    ]
    findings = judge_routes("kube.node01", wanted, parse_routes(ROUTES))
    details = [f.detail for f in findings]
    assert all(f.status == "CRITICAL" for f in findings)
    assert details == [
        "routes 10.200.3.0/24 via 10.240.0.99: kube.node03's pods are reached via 10.240.0.23",
        "has no route to 10.200.4.0/24: kube.node04's pods are reached via 10.240.0.24",
    ]


def test_all_routes_in_place_is_ok() -> None:
    wanted = [PodRoute("10.200.2.0/24", "10.240.0.22", "kube.node02")]
    (finding,) = judge_routes("kube.node01", wanted, parse_routes(ROUTES))
    assert finding.status == "OK"


# --- the DNS add-on ----------------------------------------------------------------------


def test_apply_output_tells_what_changed() -> None:
    output = "serviceaccount/coredns unchanged\nconfigmap/coredns configured\n"
    assert changed_objects(output) == ["configmap/coredns configured"]
    assert changed_objects("deployment.apps/coredns unchanged\n") == []


@pytest.mark.parametrize(("upstream", "forward"), [([], None), (["10.0.0.53"], "10.0.0.53")])
def test_the_dns_manifest_serves_the_cluster_and_forwards_only_when_told(
    upstream: list[str], forward: str | None
) -> None:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    templates = Path(__file__).resolve().parents[2] / "templates"
    env = Environment(loader=FileSystemLoader(templates), undefined=StrictUndefined)
    text = env.get_template("addons/coredns.yaml.j2").render(
        image="kubenorn.lab/coredns:1.15.0",
        replicas=2,
        upstream=upstream,
        domain="cluster.local",
        dns_service_ip="10.32.0.10",
    )
    documents = {d["kind"]: d for d in yaml.safe_load_all(text)}
    assert documents["Service"]["spec"]["clusterIP"] == "10.32.0.10"
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    corefile = documents["ConfigMap"]["data"]["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa" in corefile
    assert ("forward . " + forward in corefile) if forward else ("forward" not in corefile)


# --- the smoke test's verdicts -----------------------------------------------------------

SETUP = SmokePods(
    "kubenorn-smoke-1",
    service_ip="10.32.0.77",
    pod_ips={"kube.node01": "10.200.1.5", "kube.node02": "10.200.2.5", "kube.node03": "10.200.3.5"},
)
GOOD = """pod kube.node02 ok kube.node02
pod kube.node03 ok kube.node03
backend kube.node03 0
backend kube.node01 1
backend kube.node02 1
tries 7
dns ok
by-name ok kube.node02
"""


def test_a_good_probe_is_ok_on_every_count() -> None:
    probe = parse_probe(GOOD)
    findings = [
        pod_network_finding("kube.node01", probe),
        service_finding("kube.node01", probe, SETUP, "from its pod"),
        dns_finding("kube.node01", probe),
    ]
    assert [f.status for f in findings] == ["OK", "OK", "OK"]
    assert "the first after 0s" in findings[1].detail


def test_a_pod_that_did_not_answer_is_named_by_its_node() -> None:
    probe = parse_probe(GOOD.replace("pod kube.node03 ok kube.node03", "pod kube.node03 fail"))
    finding = pod_network_finding("kube.node01", probe)
    assert finding.status == "CRITICAL"
    assert "kube.node03 (no answer)" in finding.detail


def test_a_pod_answering_as_another_is_wrong() -> None:
    probe = parse_probe(GOOD.replace("ok kube.node03", "ok kube.node02"))
    assert "answered as 'kube.node02'" in pod_network_finding("kube.node01", probe).detail


def test_a_backend_never_seen_through_the_service_is_named() -> None:
    probe = parse_probe(GOOD.replace("backend kube.node02 1\n", ""))
    finding = service_finding("kube.node01", probe, SETUP, "from the host")
    assert finding.status == "CRITICAL"
    assert finding.detail.endswith("no answer from the backends on kube.node02")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (("dns ok", "dns fail ;; connection timed out"), "did not resolve the API's name"),
        (("by-name ok kube.node02", "by-name fail bad address"), "cluster DNS: the Service"),
        (("dns ok\n", ""), "did not resolve"),
    ],
)
def test_dns_failures_name_dns(change: tuple[str, str], detail: str) -> None:
    finding = dns_finding("kube.node01", parse_probe(GOOD.replace(*change)))
    assert (finding.check, finding.status) == ("smoke-dns", "CRITICAL")
    assert detail in finding.detail


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (None, "no pod"),
        (
            {
                "status": {
                    "containerStatuses": [
                        {
                            "state": {
                                "waiting": {"reason": "ErrImageNeverPull", "message": "not present"}
                            }
                        }
                    ]
                }
            },
            "ErrImageNeverPull: not present",
        ),
        (
            {
                "status": {
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "message": "0/3 nodes"}
                    ]
                }
            },
            "not scheduled: 0/3 nodes",
        ),
        (
            {
                "status": {
                    "podIP": "10.200.1.5",
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
            "",
        ),
    ],
)
def test_why_a_smoke_pod_is_not_running(pod: dict | None, reason: str) -> None:
    assert not_ready_reason(pod) == reason


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["/etc/kubernetes/ssl/ca.crt"], True),
        (["/etc/kubernetes/ssl/sa.pub", "/etc/kubernetes/ssl/apiserver.crt"], True),
        (["/etc/kubernetes/ssl/kubelet.crt", "/etc/etcd/ssl/ca.crt.bak"], False),
        ([], False),
    ],
)
def test_pods_are_restarted_only_when_what_they_trust_changed(
    changed: list[str], expected: bool
) -> None:
    from nornir.core.task import AggregatedResult, MultiResult, Result

    from tasks.pki import trust_changed

    results = AggregatedResult("certificates")
    results["kube.controller01"] = MultiResult("certificates")
    results["kube.controller01"].append(Result(host=None, result=changed))
    assert trust_changed(results) is expected


def test_a_namespace_gone_between_listing_and_deleting_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last verify's namespace, still terminating when listed, may be gone by the delete."""
    terminating = "namespace/kubenorn-smoke-0a1b2c3d"
    deleted: list[list[str]] = []

    def kubectl(task: object, cluster: object, args: list[str], **_: object) -> CommandResult:
        command = shlex.join(["kubectl", *args])
        if args[0] == "get":
            return CommandResult(command, 0, terminating + "\n", "", 0.1)
        if "--ignore-not-found" not in args:  # as kubectl does for an object already gone
            error = f'Error from server (NotFound): namespaces "{terminating}" not found'
            raise CommandError("kube.controller01", CommandResult(command, 1, "", error, 0.1))
        deleted.append(args)
        return CommandResult(command, 0, "", "", 0.1)

    monkeypatch.setattr("tasks.smoke.kubectl", kubectl)
    remove_stale_namespaces(None, load_cluster(LAB), keep="kubenorn-smoke-ffffffff")  # type: ignore[arg-type]
    assert [args[-1] for args in deleted] == [terminating]
