"""Files only their owner may read (history, snapshots): private before the first byte lands."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) 0700; an existing directory is left as it is."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def create_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists (an existing file keeps its mode)."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def fetch_private(client: Any, remote: str, destination: Path) -> None:
    """Copy `remote` over SFTP to `destination`, 0600 from creation, landing whole or not at all."""
    private_dir(destination.parent)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        descriptor = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "wb") as local, client.open(remote, "rb") as source:
            getattr(source, "prefetch", lambda: None)()  # paramiko: pipelined reads
            shutil.copyfileobj(source, local, 1 << 20)
        partial.rename(destination)
    finally:
        partial.unlink(missing_ok=True)
