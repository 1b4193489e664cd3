"""The container images the lab's cluster runs, built here as OCI archives: nothing is pulled.

The lab inventory's kubernetes.images names each image and its archive; lab.yaml says how the
lab makes each archive (by file name), from what the machine can reach:

- `go`: a module directory under lab/ built with the go command (our pause; CoreDNS from its
  published module through a wrapper go.mod), the binary at the image's `binary` path;
- `deb`: a Debian package of the suite (busybox-static), its `file` taken out of the .deb to
  the image's `binary` path and every applet `busybox --list` names linked beside it.

Each archive is one uncompressed layer in an OCI image layout, written byte for byte the same
from the same inputs (fixed times and owners), so its digest only changes when its content does.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import aptrepo
from lab.kubebuild import go_env
from lab.processes import sh
from lab.settings import LAB_DIR, LabError, LabSettings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ImageRecipe:
    """How the lab makes one archive: the image's name, where it goes and what it holds."""

    name: str  # as the inventory names it, e.g. registry.k8s.io/pause:3.10.1
    archive: Path
    kind: str  # go | deb
    source: str  # the module directory (under lab/) or the Debian package
    binary: str  # its path inside the image
    entrypoint: tuple[str, ...]
    package: str = "."  # the package to build inside the module (go only)
    file: str = ""  # where the binary lies in the .deb (deb only; default: `binary`)


def recipes(settings: LabSettings) -> list[ImageRecipe]:
    """The inventory's images, each with lab.yaml's recipe for its archive's file name."""
    found = []
    for image in settings.images:
        archive = Path(image["archive"])
        recipe = settings.image_recipes.get(archive.name)
        if recipe is None:
            raise LabError(
                f"{settings.inventory}: kubernetes.images: {archive.name}: lab.yaml has no "
                "recipe for it (images: of this inventory's suite)"
            )
        found.append(
            ImageRecipe(
                name=image["name"],
                archive=archive,
                kind="go" if "go" in recipe else "deb",
                source=recipe.get("go") or recipe["deb"],
                binary=recipe["binary"],
                entrypoint=tuple(recipe.get("entrypoint", [])),
                package=recipe.get("package", "."),
                file=recipe.get("file", recipe["binary"]),
            )
        )
    return found


def ensure_images(settings: LabSettings) -> list[Path]:
    """Every archive the inventory names, built unless it exists; the archives."""
    built = []
    for recipe in recipes(settings):
        if not recipe.archive.exists():
            recipe.archive.parent.mkdir(parents=True, exist_ok=True)
            write_archive(recipe, layer_files(settings, recipe))
            print(f"lab: built image {recipe.name} into {recipe.archive}", flush=True)
        built.append(recipe.archive)
    return built


def layer_files(settings: LabSettings, recipe: ImageRecipe) -> dict[str, bytes | str]:
    """path in the image -> file content (bytes) or symlink target (str)."""
    if recipe.kind == "go":
        return {recipe.binary: go_binary(settings, recipe)}
    return busybox_files(settings, recipe)


def go_binary(settings: LabSettings, recipe: ImageRecipe) -> bytes:
    """A static binary built from a module directory under lab/ (no cgo, trimmed paths)."""
    module = LAB_DIR / recipe.source
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "binary"
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), recipe.package]
        env = go_env(settings.state_dir / "go")
        sh(argv, cwd=module, env=env, timeout=3600)
        return out.read_bytes()


def busybox_files(settings: LabSettings, recipe: ImageRecipe) -> dict[str, bytes | str]:
    """The package's busybox binary and a link for each applet it lists."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        apt = aptrepo.private_apt(settings)
        sh(["apt-get", *apt, "download", "-q", recipe.source], cwd=work, timeout=600)
        deb = next(work.glob(f"{recipe.source}_*.deb"))
        sh(["dpkg-deb", "-x", str(deb), str(work / "root")])
        binary = work / "root" / recipe.file.lstrip("/")
        applets = sh([str(binary), "--list"]).stdout.split()
        content = binary.read_bytes()
    directory = recipe.binary.rsplit("/", 1)[0]
    links: dict[str, bytes | str] = {
        f"{directory}/{applet}": Path(recipe.binary).name
        for applet in applets
        if f"{directory}/{applet}" != recipe.binary
    }
    return {recipe.binary: content, **links}


def write_archive(recipe: ImageRecipe, files: dict[str, bytes | str]) -> None:
    """An OCI image layout tar holding one image of one layer, named by annotations that
    `ctr images import` reads; written to a temporary name and renamed (never half)."""
    layer = tar_bytes(files)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": list(recipe.entrypoint) or None, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    )
    annotations = {
        "io.containerd.image.name": recipe.name,
        "org.opencontainers.image.ref.name": recipe.name.rsplit(":", 1)[-1],
    }
    entry = {**descriptor(OCI_MANIFEST, manifest), "annotations": annotations}
    index = canonical({"schemaVersion": 2, "manifests": [entry]})
    blobs = {f"blobs/sha256/{digest(b).split(':')[1]}": b for b in (layer, config, manifest)}
    layout = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        **blobs,
    }
    partial = recipe.archive.with_name(recipe.archive.name + ".partial")
    partial.write_bytes(tar_bytes(layout))
    partial.rename(recipe.archive)


def tar_bytes(files: Mapping[str, bytes | str]) -> bytes:
    """A tar of `files` (bytes: a file, mode 0755; str: a symlink) with fixed times and owners,
    parent directories first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted({p for path in files for p in parents(path)}):
            tar.addfile(entry(directory, tarfile.DIRTYPE))
        for path, content in sorted(files.items()):
            if isinstance(content, str):
                tar.addfile(entry(path, tarfile.SYMTYPE, linkname=content))
            else:
                info = entry(path, tarfile.REGTYPE, size=len(content))
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def entry(path: str, kind: bytes, *, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.strip("/"))
    info.type, info.size, info.linkname = kind, size, linkname
    info.mode = 0o755 if kind != tarfile.SYMTYPE else 0o777
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def descriptor(media_type: str, content: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(content), "size": len(content)}
