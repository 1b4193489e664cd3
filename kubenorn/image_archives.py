"""Container images loaded from archives on the control machine instead of pulled.

An air-gapped site (and the lab) lists its images in the inventory as OCI image layout archives
(`skopeo copy docker://IMAGE oci-archive:FILE:IMAGE`, `buildah push IMAGE oci-archive:FILE`).
The archive's index.json names the image and gives its manifest digest; that digest is what
containerd lists once the image is imported, so "loaded" is a comparison of two digests.
The inventory's `kubernetes.images` entries are checked by kubenorn.inventory_model (Image).
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class ImageArchiveError(Exception):
    """An archive that cannot be loaded as the inventory says; the message names it."""


@dataclass(frozen=True)
class ImageArchive:
    """An image the nodes load from an archive on the control machine (never pulled)."""

    name: str  # as the pods and containerd's sandbox_image name it
    archive: Path
    digest: str | None = None  # sha256:..., pinned by the inventory; else the archive's

    def manifest_digest(self) -> str:
        """The digest the archive holds for this image; the pin must match it."""
        found = archive_digest(self.archive, self.name)
        if self.digest is not None and found != self.digest:
            raise ImageArchiveError(
                f"{self.archive}: {self.name} is {found}, the inventory pins {self.digest}"
            )
        return found


def archive_digest(archive: Path, name: str) -> str:
    """The manifest digest an OCI archive's index gives for `name`."""
    index = read_index(archive)
    for manifest in index.get("manifests") or []:
        names = (manifest.get("annotations") or {}).items()
        if any(key in NAME_ANNOTATIONS and value == name for key, value in names):
            return str(manifest["digest"])
    raise ImageArchiveError(f"{archive}: its index.json does not name {name}")


def read_index(archive: Path) -> dict[str, Any]:
    """index.json of an OCI image layout tar; a docker-archive (manifest.json) is refused."""
    try:
        with tarfile.open(archive) as tar:
            # Stop at index.json: listing every member reads the whole archive (80 MB for
            # CoreDNS), and verify reads each archive on every run.
            seen = set()
            for member in tar:
                name = member.name.removeprefix("./")
                if name == "index.json":
                    handle = tar.extractfile(member)
                    return json.load(handle) if handle else {}
                seen.add(name)
            kind = "a docker archive" if "manifest.json" in seen else "no OCI layout"
            raise ImageArchiveError(
                f"{archive}: {kind} (no index.json); convert it with "
                f"`skopeo copy docker-archive:{archive} oci-archive:{archive}.oci.tar`"
            )
    except (OSError, tarfile.TarError, json.JSONDecodeError) as error:
        raise ImageArchiveError(f"{archive}: not a readable OCI archive: {error}") from error
