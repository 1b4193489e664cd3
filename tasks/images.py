"""Images in containerd's k8s.io namespace (the kubelet's), loaded from archives, never pulled.

The archive travels on the SSH channel into `ctr images import -`: nothing is written on the
host outside containerd's own store, so an interrupted load leaves no file to clean up and
containerd's content store keeps only complete blobs. Loaded images are pinned, so the
kubelet's image garbage collection never removes one it could not pull back.
"""

from __future__ import annotations

from collections.abc import Mapping

from nornir.core.task import Result, Task

from kubenorn.cluster import Cluster
from kubenorn.findings import Finding
from kubenorn.image_archives import ImageArchive
from tasks.ssh import RemoteError, run

CTR = ["ctr", "--namespace", "k8s.io"]
PINNED = "io.cri-containerd.pinned=pinned"
IMPORT_TIMEOUT = 600.0


def image_digests(cluster: Cluster) -> dict[str, str]:
    """name -> manifest digest of every inventory image, read from its archive here (the
    control machine); ImageArchiveError names an archive that cannot be used."""
    return {image.name: image.manifest_digest() for image in cluster.kubernetes.images}


def parse_image_list(text: str) -> dict[str, str]:
    """name -> digest from `ctr images ls` output (REF TYPE DIGEST ...)."""
    images = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("sha256:"):
            images[fields[0]] = fields[2]
    return images


def loaded_images(task: Task) -> dict[str, str]:
    return parse_image_list(run(task, [*CTR, "images", "ls"], sudo=True).stdout)


def ensure_images(
    task: Task,
    *,
    images: tuple[ImageArchive, ...],
    digests: Mapping[str, str],
    dry_run: bool | None = None,
) -> Result:
    """Ensure every inventory image is loaded in containerd with its archive's digest."""
    loaded = loaded_images(task)
    missing = [image for image in images if loaded.get(image.name) != digests[image.name]]
    if not missing:
        return Result(host=task.host, changed=False)
    diff = "".join(f"load image {i.name} {digests[i.name]} from {i.archive}\n" for i in missing)
    if task.is_dry_run(dry_run):
        return Result(host=task.host, changed=True, diff=diff)
    for image in missing:
        load_image(task, image, digests[image.name])
    return Result(host=task.host, changed=True, diff=diff)


def load_image(task: Task, image: ImageArchive, digest: str) -> None:
    """Stream the archive into `ctr images import`, pin the image and check its digest."""
    run(
        task,
        [*CTR, "images", "import", "-"],
        sudo=True,
        stdin=image.archive.read_bytes(),
        timeout=IMPORT_TIMEOUT,
    )
    run(task, [*CTR, "images", "label", image.name, PINNED], sudo=True)
    found = loaded_images(task).get(image.name)
    if found != digest:
        raise RemoteError(
            f"{task.host.name}: {image.name} from {image.archive} loaded as {found}, not {digest}"
        )


def judge_images(host: str, loaded: Mapping[str, str], digests: Mapping[str, str]) -> Finding:
    """OK when every image is there with its archive's digest; else CRITICAL naming them."""
    wrong = [
        f"{name} {'missing' if name not in loaded else 'is ' + loaded[name]}"
        for name, digest in digests.items()
        if loaded.get(name) != digest
    ]
    if wrong:
        return Finding("images", host, "CRITICAL", "; ".join(wrong) + " (deploy loads them)")
    return Finding("images", host, "OK", f"{len(digests)} images loaded, none pulled")


def check_images(task: Task, *, digests: Mapping[str, str]) -> Result:
    """Whether this node holds every inventory image as its archive has it."""
    finding = judge_images(task.host.name, loaded_images(task), digests)
    return Result(host=task.host, result=[finding], record_data=[finding.as_dict()])
