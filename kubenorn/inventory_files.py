"""Read an inventory's three YAML files and check their overall shape, collecting problems.

Every problem names the file, the host (or group, or `defaults`) and the field, so a person can
go straight to the line. Duplicate keys are reported, not silently dropped as YAML would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubenorn.inventory_fields import Layer, Problem, Section

FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")
# Read from defaults.yaml only: a host or group copy would disagree with the cluster model.
CLUSTER_SECTIONS = ("cluster", "pki", "etcd", "kubernetes")


class _Loader(yaml.SafeLoader):
    """A SafeLoader that records duplicate keys (key, line, top level?) instead of dropping."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, bool]] = []
        self._root: yaml.Node | None = None

    def construct_document(self, node: yaml.Node) -> Any:
        self._root = node
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key in seen:
                self.duplicates.append((key, key_node.start_mark.line + 1, node is self._root))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    if not path.is_file():
        problems.append(Problem(path.name, "-", "-", f"file is missing from {path.parent}"))
        return None
    try:
        loader = _Loader(path.read_bytes().decode("utf-8"))
    except OSError as error:
        problems.append(Problem(path.name, "-", "-", f"cannot be read: {error.strerror or error}"))
        return None
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (byte {error.start}); a YAML file is expected"
        problems.append(Problem(path.name, "-", "-", message))
        return None
    except yaml.reader.ReaderError as error:  # NUL and other control characters
        message = f"binary, not YAML text (character #x{error.character:04x} at {error.position})"
        problems.append(Problem(path.name, "-", "-", message))
        return None
    try:
        document = loader.get_single_data() or {}
    except yaml.YAMLError as error:
        problems.append(Problem(path.name, "-", "-", f"not valid YAML: {error}"))
        return None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
    for key, line, top in loader.duplicates:
        where, field = (str(key), "-") if top else ("-", str(key))
        message = f"line {line}: duplicate key {key!r}; YAML would keep only the last one"
        problems.append(Problem(path.name, where, field, message))
    if not isinstance(document, dict):
        problems.append(Problem(path.name, "-", "-", "must be a mapping of names to entries"))
        return None
    return document


@dataclass
class Raw:
    """The three files as read, and the problems found so far."""

    directory: Path
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    loaded: bool = False

    @property
    def defaults_section(self) -> Section:
        data = self.defaults.get("data") or {}
        return Section([Layer("defaults.yaml", "defaults", "data.", data)], self.problems)

    def host_section(self, name: str) -> Section:
        """Host data, then its groups' data (parents too), then defaults data."""
        layers = [Layer("hosts.yaml", name, "data.", self.hosts[name].get("data") or {})]
        for group in self._ancestry(self.hosts[name].get("groups") or []):
            data = self.groups[group].get("data") or {}
            layers.append(Layer("groups.yaml", f"group {group}", "data.", data))
        layers.append(Layer("defaults.yaml", "defaults", "data.", self.defaults.get("data") or {}))
        return Section(layers, self.problems)

    def _ancestry(self, names: list[str], seen: set[str] | None = None) -> list[str]:
        seen = set() if seen is None else seen
        order: list[str] = []
        for name in names:
            if name in self.groups and name not in seen:
                seen.add(name)
                order += [name, *self._ancestry(self.groups[name].get("groups") or [], seen)]
        return order

    def groups_of(self, name: str) -> tuple[str, ...]:
        return tuple(self._ancestry(self.hosts[name].get("groups") or []))


def load_raw(directory: Path) -> Raw:
    """Read hosts, groups and defaults from `directory`, checking their overall shape."""
    raw = Raw(directory.resolve())
    documents = [_read(raw.directory / name, raw.problems) for name in FILES]
    if any(d is None for d in documents):
        return raw
    hosts, groups, defaults = (d or {} for d in documents)
    raw.hosts = {name: entry or {} for name, entry in hosts.items()}
    raw.groups = {name: entry or {} for name, entry in groups.items()}
    raw.defaults = defaults or {}
    raw.loaded = _check_shape(raw)
    return raw


def _check_shape(raw: Raw) -> bool:
    """Whether every entry has the shape the model needs; missing role groups do not block."""
    for role in ("etcd", "controllers", "nodes"):
        if role not in raw.groups:
            raw.problems.append(Problem("groups.yaml", f"group {role}", "-", "missing role group"))
    before = len(raw.problems)
    entries = [("hosts.yaml", n, e) for n, e in raw.hosts.items()]
    entries += [("groups.yaml", f"group {n}", e) for n, e in raw.groups.items()]
    for file, where, entry in entries:
        _check_entry(raw, file, where, entry)
    return len(raw.problems) == before


def _check_entry(raw: Raw, file: str, where: str, entry: Any) -> None:
    def report(fld: str, message: str) -> None:
        raw.problems.append(Problem(file, where, fld, message))

    if not isinstance(entry, dict):
        report("-", "must be a mapping")
        return
    groups, data = entry.get("groups") or [], entry.get("data") or {}
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        report("groups", "must be a list of group names")
    elif unknown := [g for g in groups if g not in raw.groups]:
        report("groups", f"no such group in groups.yaml: {', '.join(unknown)}")
    if not isinstance(data, dict):
        report("data", "must be a mapping")
        return
    for key in CLUSTER_SECTIONS:
        if key in data:
            report(f"data.{key}", "a cluster-wide setting: set it in defaults.yaml only")
