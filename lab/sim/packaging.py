"""Build the simulator packages: `python -m lab.sim.packaging [DEST]` (default lab/build/debs).

kubenorn-sim-common holds the kubesim package and the flag tables; for each of the five
binaries, one package per Kubernetes version the lab offers installs /usr/bin/BINARY. Built with
dpkg-deb, rebuilt only when their sources change.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent
DEFAULT_DEST = SIM_DIR.parent / "build" / "debs"
VERSIONS = ("1.6.0",)
COMMON = "kubenorn-sim-common"
COMMON_VERSION = "1.0.0"
LIBRARY = "/usr/lib/kubenorn-sim"
DESCRIPTION = (
    "SIMULATOR of {what} for testing kubenorn in its lab\n"
    " Test equipment: this is not Kubernetes. See lab/SIMULATORS.md in kubenorn."
)
LAUNCHER = """#!/usr/bin/python3
# {binary} SIMULATOR (kubenorn lab test equipment), Kubernetes v{version}: not Kubernetes.
import sys

sys.path.insert(0, "{library}")
from kubesim.{module} import main

sys.exit(main({leading}"{version}", sys.argv[1:]))
"""
# binary -> (kubesim module, whether main takes the binary's name first)
BINARIES = {
    "kube-apiserver": ("apiserver", False),
    "kube-scheduler": ("controlplane", True),
    "kube-controller-manager": ("controlplane", True),
    "kubelet": ("kubelet", False),
    "kube-proxy": ("proxy", False),
}


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SIM_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json"):
            digest.update(path.relative_to(SIM_DIR).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def control(package: str, version: str, depends: str, what: str) -> str:
    return (
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: kubenorn <kubenorn@localhost>\nDepends: {depends}\nSection: admin\n"
        f"Priority: optional\nDescription: {DESCRIPTION.format(what=what)}\n"
    )


def build(root: Path, dest: Path, name: str) -> Path:
    """dpkg-deb the tree at `root` into dest/name.deb."""
    output = dest / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(output)],
        check=True,
        capture_output=True,
    )
    return output


def common_package(work: Path, dest: Path, build_id: str) -> Path:
    root = work / COMMON
    library = root / LIBRARY.lstrip("/")
    shutil.copytree(
        SIM_DIR / "kubesim", library / "kubesim", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(SIM_DIR / "flags.json", library / "flags.json")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        control(
            COMMON, f"{COMMON_VERSION}+{build_id}", "python3", "Kubernetes binaries (shared code)"
        )
    )
    return build(root, dest, f"{COMMON}_{COMMON_VERSION}+{build_id}_all")


def binary_package(work: Path, dest: Path, binary: str, version: str, build_id: str) -> Path:
    """/usr/bin/BINARY for one Kubernetes version: a launcher into kubesim."""
    module, named = BINARIES[binary]
    root = work / f"{binary}-{version}"
    launcher = root / "usr" / "bin" / binary
    launcher.parent.mkdir(parents=True)
    launcher.write_text(
        LAUNCHER.format(
            binary=binary,
            version=version,
            library=LIBRARY,
            module=module,
            leading=f'"{binary}", ' if named else "",
        )
    )
    launcher.chmod(0o755)
    (root / "DEBIAN").mkdir()
    # The build id (a digest of the sources) makes every rebuild an upgrade apt will take.
    depends = f"python3, {COMMON} (= {COMMON_VERSION}+{build_id})"
    package_version = f"{version}-0kubenorn1+{build_id}"
    (root / "DEBIAN" / "control").write_text(
        control(binary, package_version, depends, f"{binary} v{version}")
    )
    return build(root, dest, f"{binary}_{package_version}_all")


def build_all(dest: Path = DEFAULT_DEST) -> list[Path]:
    """Every simulator package in `dest`, built again only when the sources changed."""
    dest.mkdir(parents=True, exist_ok=True)
    stamp = dest / ".sources"
    digest = sources_digest()
    existing = sorted(dest.glob("*.deb"))
    if existing and stamp.exists() and stamp.read_text() == digest:
        return existing
    for old in existing:
        old.unlink()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        build_id = digest[:8]
        built = [common_package(work, dest, build_id)]
        built += [
            binary_package(work, dest, binary, version, build_id)
            for binary in BINARIES
            for version in VERSIONS
        ]
    stamp.write_text(digest)
    return built


if __name__ == "__main__":
    for deb in build_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST):
        print(deb)
