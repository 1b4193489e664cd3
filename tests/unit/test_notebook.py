"""The notebook runs top to bottom on the API, and its plots render (image outputs exist).

Here the lab inventory's hosts all sit on a closed loopback port: verify runs, finds every
check UNKNOWN (could not connect), appends the run to the history, and the notebook plots it.
The lab test runs the same notebook on the deployed lab.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import nbformat
import yaml

from kubenorn.nornir_setup import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "explore.ipynb"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_inventory(tmp_path: Path) -> Path:
    """The lab's inventory (without its state) on loopback: nothing to touch there."""
    inventory = tmp_path / "inventory"
    ignored = shutil.ignore_patterns(".pki", "known_hosts", "id_ed25519*")
    shutil.copytree(REPO_ROOT / "lab" / "inventory", inventory, ignore=ignored)
    hosts = inventory / "hosts.yaml"
    text = re.sub(r"hostname: \S+", "hostname: 127.0.0.1", hosts.read_text())
    hosts.write_text(text)
    defaults = inventory / "defaults.yaml"
    data = yaml.safe_load(defaults.read_text().replace("port: 22", f"port: {closed_port()}"))
    data["data"]["kubernetes"].pop("images", None)  # archives the lab builds: not needed here
    defaults.write_text(yaml.safe_dump(data))
    return inventory


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(cell.get("outputs", []) == [] for cell in notebook.cells if cell.cell_type == "code")
    source = "\n".join(cell.source for cell in notebook.cells)
    assert 'matplotlib.use("Agg")' not in source  # it would suppress the plots


def test_the_notebook_verifies_and_plots(tmp_path: Path, run_notebook) -> None:  # noqa: ANN001
    outputs = run_notebook(unreachable_inventory(tmp_path))
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # status over time per check, durations per host and step
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "verify" in html and "UNKNOWN" in html and "kube.node01" in html
