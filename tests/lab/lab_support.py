"""Helpers shared by the lab tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml


def inventory_with(source: Path, destination: Path, section: str, **settings: object) -> Path:
    """A copy of the inventory (sharing its PKI and keys), one data section's settings changed."""
    for name in ("hosts.yaml", "groups.yaml"):
        shutil.copy2(source / name, destination / name)
    defaults = yaml.safe_load((source / "defaults.yaml").read_text())
    defaults["data"][section].update(settings)
    # Paths relative to the inventory directory point back at the source's files.
    data = defaults["data"]
    data["pki"]["dir"] = str((source / data["pki"]["dir"]).resolve())
    for key in ("known_hosts", "key_file"):
        data["ssh"][key] = str((source / data["ssh"][key]).resolve())
    (destination / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return destination
