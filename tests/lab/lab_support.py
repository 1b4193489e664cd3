"""Helpers shared by the lab tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml


def inventory_with(source: Path, destination: Path, section: str, **settings: object) -> Path:
    """A copy of the inventory (sharing its PKI and keys), one data section's settings changed."""
    for name in ("hosts.yaml", "groups.yaml", "id_ed25519", "known_hosts"):
        shutil.copy2(source / name, destination / name)
    defaults = yaml.safe_load((source / "defaults.yaml").read_text())
    defaults["data"][section].update(settings)
    defaults["data"]["pki"]["dir"] = str(source / defaults["data"]["pki"]["dir"])
    (destination / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return destination
