"""The base root filesystem every lab host overlays: debootstrapped once, then cached."""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.processes import sh
from lab.settings import LabSettings, debian_mirror


def base_dir(settings: LabSettings) -> Path:
    return settings.state_dir / f"rootfs-{settings.suite}"


def ensure_base(settings: LabSettings) -> Path:
    """The cached base; built (about a minute) only when absent."""
    base = base_dir(settings)
    if (base / "etc" / "os-release").exists():
        return base
    building = base.with_name(base.name + ".building")
    shutil.rmtree(building, ignore_errors=True)  # a killed build starts over
    building.parent.mkdir(parents=True, exist_ok=True)
    sh(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(settings.include)}",
            settings.suite,
            str(building),
            debian_mirror(settings.suite),
        ],
        timeout=1800,
    )
    prepare(building)
    # Renamed only when complete: a half-built tree never looks like a base.
    building.rename(base)
    return base


def prepare(root: Path) -> None:
    """Make the tree a template: no shared host keys, no package lists, no apt sources."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    (root / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)
    (root / "etc" / "apt" / "sources.list").write_text("")
    for extra in (root / "etc" / "apt" / "sources.list.d").glob("*"):
        extra.unlink()
    # The machine id is generated per host on first boot.
    (root / "etc" / "machine-id").write_text("")
