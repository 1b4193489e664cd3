"""The inventory plugin kubenorn gives Nornir: it reads the three YAML files once, validates
every entry against the inventory models, and builds Nornir's inventory from the same data.

Every problem names the file, the host (or group, or `defaults`) and the field, so a person can
go straight to the line. Duplicate keys are reported, not silently dropped as YAML would;
binary and non-UTF-8 files are one problem each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from nornir.core.inventory import Defaults, Group, Groups, Host, Hosts, Inventory, ParentGroups
from nornir.plugins.inventory.simple import _get_defaults, _get_inventory_element

from kubenorn.inventory_model import FILES, HostEntry, Problem, validate_entry
from kubenorn.inventory_model import Defaults as DefaultsModel

PLUGIN = "KubenornInventory"


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


class CheckedInventory(Inventory):
    """Nornir's inventory, with what reading it found: the problems (file, host, field), the
    validated entries, and whether the files had a shape Nornir could build from."""

    def __init__(
        self,
        *args: Any,
        directory: Path,
        problems: list[Problem],
        loaded: bool,
        entries: dict[str, HostEntry] | None = None,
        defaults_model: DefaultsModel | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.directory = directory
        self.problems = problems
        self.loaded = loaded
        self.entries = entries or {}  # host names and `group NAME` -> validated entry
        self.defaults_model = defaults_model
        self.cluster: Any = None  # (cluster model, problems), built once (kubenorn.cluster)


class KubenornInventory:
    """A Nornir inventory plugin: SimpleInventory's files and layout, read once and checked."""

    def __init__(
        self,
        host_file: str = "hosts.yaml",
        group_file: str = "groups.yaml",
        defaults_file: str = "defaults.yaml",
    ) -> None:
        self.paths = [Path(p).expanduser() for p in (host_file, group_file, defaults_file)]

    def load(self) -> CheckedInventory:
        directory = self.paths[0].parent.resolve()
        checked = _checked(tuple(self.paths), tuple(_stamp(path) for path in self.paths))
        if checked.documents is None:
            return _empty(directory, list(checked.problems))
        # A copy for each Nornir object: tasks cache facts in host data.
        hosts, groups, defaults = copy.deepcopy(checked.documents)
        nornir_defaults = _get_defaults({**defaults, "data": defaults.get("data") or {}})
        built_groups = Groups(
            {n: _element(Group, n, e, nornir_defaults) for n, e in groups.items()}
        )
        built_hosts = Hosts({n: _element(Host, n, e, nornir_defaults) for n, e in hosts.items()})
        for item in [*built_groups.values(), *built_hosts.values()]:
            names: list[Any] = list(item.groups)  # still the names from the file
            item.groups = ParentGroups([built_groups[str(g)] for g in names])
        return CheckedInventory(
            hosts=built_hosts,
            groups=built_groups,
            defaults=nornir_defaults,
            directory=directory,
            problems=list(checked.problems),
            loaded=True,
            entries=dict(checked.entries),
            defaults_model=checked.defaults_model,
        )


Documents = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class _Checked:
    """The three files read and validated: None for the documents when Nornir cannot be built
    from them (a file missing or unreadable, an entry of the wrong shape)."""

    documents: Documents | None
    problems: tuple[Problem, ...]
    entries: dict[str, HostEntry] = field(default_factory=dict)
    defaults_model: DefaultsModel | None = None


def _stamp(path: Path) -> tuple[int, ...] | None:
    """What changes when a file does (content, mode, owner: ctime), None for no file."""
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@lru_cache(maxsize=16)
def _checked(paths: tuple[Path, ...], stamps: tuple[tuple[int, ...] | None, ...]) -> _Checked:
    """Read and validate the files once for each version of them (`stamps`), however many
    Nornir objects and cluster models a process builds from them."""
    problems: list[Problem] = []
    documents = [_read(path, problems) for path in paths]
    if any(d is None for d in documents):
        return _Checked(None, tuple(problems))
    hosts, groups, defaults = ({} if d is None else d for d in documents)
    hosts = {name: {} if entry is None else entry for name, entry in hosts.items()}
    groups = {name: {} if entry is None else entry for name, entry in groups.items()}
    shaped = True
    entries: dict[str, HostEntry] = {}
    labelled = [("hosts.yaml", n, e) for n, e in hosts.items()]
    labelled += [("groups.yaml", f"group {n}", e) for n, e in groups.items()]
    for file, where, entry in labelled:
        if not _shaped(groups, problems, file, where, entry):
            shaped = False
            continue
        model, found = validate_entry(file, where, entry)
        problems += found
        if model is not None:
            entries[where] = model
    defaults_model, found = validate_entry("defaults.yaml", "defaults", defaults)
    problems += found
    if not shaped or not isinstance(defaults.get("data") or {}, dict):
        return _Checked(None, tuple(problems))
    return _Checked((hosts, groups, defaults), tuple(problems), entries, defaults_model)


def _element(kind: type[Any], name: str, entry: dict[str, Any], defaults: Defaults) -> Any:
    entry = {**entry, "groups": entry.get("groups") or [], "data": entry.get("data") or {}}
    return _get_inventory_element(kind, entry, name, defaults)


def _empty(directory: Path, problems: list[Problem]) -> CheckedInventory:
    return CheckedInventory(
        hosts=Hosts(),
        groups=Groups(),
        defaults=Defaults(),
        directory=directory,
        problems=problems,
        loaded=False,
    )


def read_inventory(directory: Path) -> CheckedInventory:
    """The inventory in `directory` as the plugin gives it to Nornir, with its problems."""
    return KubenornInventory(*(str(directory / name) for name in FILES)).load()


def _shaped(
    known: dict[str, Any], problems: list[Problem], file: str, where: str, entry: Any
) -> bool:
    """Whether an entry has the shape Nornir needs: a mapping, groups that exist, data a
    mapping; each deviation a problem."""

    def report(fld: str, message: str) -> bool:
        problems.append(Problem(file, where, fld, message))
        return False

    if not isinstance(entry, dict):
        return report("-", "must be a mapping")
    groups, data, fine = entry.get("groups") or [], entry.get("data") or {}, True
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        fine = report("groups", "must be a list of group names")
    elif unknown := [g for g in groups if g not in known]:
        fine = report("groups", f"no such group in groups.yaml: {', '.join(unknown)}")
    if not isinstance(data, dict):
        fine = report("data", "must be a mapping")
    return fine
