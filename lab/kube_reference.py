"""Reference tables of a Kubernetes release, read from its published Go modules.

    python -m lab.kube_reference 1.35.4 1.36.3 1.37.2
        writes tests/data/kubernetes/reference-v1.35.4.json, ...

For each release it downloads (`go mod download -json`, into the lab's shared module cache)
k8s.io/kubernetes vX and the staging modules v0.X.Y it needs, and extracts from their sources:

- flags: the command-line flag names each of the five components registers, by a scan of the
  pflag registration calls (fs.StringVar(&x, "name", ...), fs.Bool("name", ...), fs.Var(v,
  "name", ...), the *P variants, ...) in the source trees the component builds its flag sets
  from. A per-component superset (a tree may register flags another component never adds), so
  it says "this release has the flag", not "this component certainly takes it"; flags named by a
  constant are resolved when the constant is a plain string in the scanned trees.
- deprecated: flags marked deprecated (MarkDeprecated, a "DEPRECATED" usage text, and every
  flag the kubelet registers for a KubeletConfiguration field but its own not-deprecated list).
- config: the JSON key paths of KubeletConfiguration (kubelet.config.k8s.io/v1beta1),
  KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) and KubeSchedulerConfiguration
  (kubescheduler.config.k8s.io/v1), nested structs included (inline embeddings merged), from
  the Go struct definitions and their json tags. "a.*" is any key of map field a; "a[]" the
  elements of a list of structs.

Test equipment: the unit tests check the profile templates' rendered files against these tables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "tests" / "data" / "kubernetes"
GO_ENV = {
    "GOMODCACHE": "/var/lib/kubenorn-lab/go/mod",
    "GOTOOLCHAIN": "local",
    "GOFLAGS": "-mod=mod",
}
STAGING = (
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "component-base",
    "apiserver",
    "controller-manager",
    "cloud-provider",
    "apimachinery",
    "api",
)

# Where each component's flags are registered: (module, directory in it).
COMMON_TREES = [
    ("component-base", "logs"),
    ("component-base", "cli/globalflag"),
    ("component-base", "version/verflag"),
    ("component-base", "featuregate"),
    ("component-base", "compatibility"),
    ("component-base", "metrics"),
]
SERVER_TREES = [("apiserver", "pkg/server/options"), ("component-base", "config/options")]
FLAG_TREES = {
    "kubelet": [("kubernetes", "cmd/kubelet"), ("kubernetes", "pkg/kubelet/config")],
    "kube-proxy": [("kubernetes", "cmd/kube-proxy")],
    "kube-scheduler": [("kubernetes", "cmd/kube-scheduler"), *SERVER_TREES],
    "kube-controller-manager": [
        ("kubernetes", "cmd/kube-controller-manager"),
        ("controller-manager", "options"),
        ("controller-manager", "config"),
        ("cloud-provider", "options"),
        *SERVER_TREES,
    ],
    "kube-apiserver": [
        ("kubernetes", "cmd/kube-apiserver"),
        ("kubernetes", "pkg/controlplane/apiserver/options"),
        ("kubernetes", "pkg/kubeapiserver/options"),
        *SERVER_TREES,
    ],
}
# Configuration kinds: (module, package directory, type name, apiVersion).
CONFIG_KINDS = {
    "KubeletConfiguration": (
        "kubelet",
        "config/v1beta1",
        "KubeletConfiguration",
        "kubelet.config.k8s.io/v1beta1",
    ),
    "KubeProxyConfiguration": (
        "kube-proxy",
        "config/v1alpha1",
        "KubeProxyConfiguration",
        "kubeproxy.config.k8s.io/v1alpha1",
    ),
    "KubeSchedulerConfiguration": (
        "kube-scheduler",
        "config/v1",
        "KubeSchedulerConfiguration",
        "kubescheduler.config.k8s.io/v1",
    ),
}

# pflag's flag types: each has T(name, ...), TP, TVar(&x, name, ...) and TVarP.
_TYPES = [
    "Bool",
    "BoolSlice",
    "BytesBase64",
    "BytesHex",
    "Count",
    "Duration",
    "DurationSlice",
    "Float32",
    "Float32Slice",
    "Float64",
    "Float64Slice",
    "IP",
    "IPMask",
    "IPNet",
    "IPNetSlice",
    "IPSlice",
    "Int",
    "Int8",
    "Int16",
    "Int32",
    "Int32Slice",
    "Int64",
    "Int64Slice",
    "IntSlice",
    "String",
    "StringArray",
    "StringSlice",
    "StringToInt",
    "StringToInt64",
    "StringToString",
    "Uint",
    "Uint8",
    "Uint16",
    "Uint32",
    "Uint64",
    "UintSlice",
]
# method -> index of the argument that names the flag
FLAG_METHODS = {"Var": 1, "VarP": 1, "VarPF": 1}
for _type in _TYPES:
    FLAG_METHODS |= {_type: 0, f"{_type}P": 0, f"{_type}Var": 1, f"{_type}VarP": 1}
CALL = re.compile(r"\.(" + "|".join(sorted(FLAG_METHODS, key=len, reverse=True)) + r")\(")
DEPRECATE = re.compile(r"\.MarkDeprecated\(\s*\"([a-z0-9][a-z0-9-]*)\"")
CONSTANT = re.compile(r"\b(\w+)\s*(?:string\s*)?=\s*\"([a-z0-9][a-z0-9-]*)\"")
FLAG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def go_mod_download(module: str, version: str) -> Path:
    """The directory of `module`@`version` in the shared module cache, downloaded if need be."""
    env = {**os.environ, **GO_ENV}
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise SystemExit(
            f"go mod download {module}@{version}: {info.get('Error') or result.stderr}"
        )
    return Path(info["Dir"])


def strip_comments(text: str) -> str:
    """Go source without its comments; string and rune literals kept intact."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif c in "\"'`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if c != "`" and text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_arguments(text: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose '(' is just before `start`, and its end."""
    args, depth, i, begin = [], 0, start, start
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if c != "`" and text[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(text[begin:i].strip())
                return args, i
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[begin:i].strip())
            begin = i + 1
        i += 1
    return args, i


def go_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*.go")
        if not p.name.endswith("_test.go") and "testing" not in p.relative_to(directory).parts
    )


@dataclass
class FlagScan:
    flags: set[str] = field(default_factory=set)
    deprecated: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)


def flag_name(argument: str, constants: dict[str, str]) -> str | None:
    if argument.startswith('"') and argument.endswith('"'):
        name = argument[1:-1]
        return name if FLAG_NAME.match(name) else None
    return constants.get(argument.rsplit(".", 1)[-1])


def function_body(text: str, name: str) -> str:
    """The text of top-level function `name` (from its header to the closing brace)."""
    start = text.find(f"func {name}(")
    if start < 0:
        return ""
    end = text.find("\n}\n", start)
    return text[start : end if end > 0 else len(text)]


def kubelet_config_deprecations(text: str, constants: dict[str, str]) -> set[str]:
    """Every flag AddKubeletConfigFlags registers is deprecated but those it lists as not."""
    body = function_body(text, "AddKubeletConfigFlags")
    if not body:
        return set()
    listed = re.search(r"notDeprecated\s*:=\s*map\[string\]bool\{(.*?)\}", body, re.DOTALL)
    kept = set(re.findall(r"\"([a-z0-9-]+)\"\s*:", listed.group(1))) if listed else set()
    return scan_calls(body, constants).flags - kept


def scan_calls(text: str, constants: dict[str, str]) -> FlagScan:
    scan = FlagScan()
    for match in CALL.finditer(text):
        args, _ = call_arguments(text, match.end())
        index = FLAG_METHODS[match.group(1)]
        if len(args) <= index + 1:  # a flag registration has a usage text after the name
            continue
        name = flag_name(args[index], constants)
        if name is None:
            if args[index].startswith('"') or re.match(r"^[\w.]+$", args[index]):
                scan.unresolved.add(args[index])
            continue
        scan.flags.add(name)
        if any("DEPRECATED" in arg for arg in args[index + 1 :]):
            scan.deprecated.add(name)
    scan.deprecated |= set(DEPRECATE.findall(text))
    return scan


def component_flags(trees: list[Path]) -> FlagScan:
    texts = [strip_comments(p.read_text()) for tree in trees for p in go_files(tree)]
    constants: dict[str, str] = {}
    for text in texts:
        constants.update(CONSTANT.findall(text))
    total = FlagScan()
    for text in texts:
        scan = scan_calls(text, constants)
        total.flags |= scan.flags
        total.deprecated |= scan.deprecated | kubelet_config_deprecations(text, constants)
        total.unresolved |= scan.unresolved
    total.deprecated &= total.flags
    return total


# --- configuration types ------------------------------------------------------------------

STRUCT = re.compile(r"\btype\s+(\w+)\s+struct\s*\{")
IMPORT_BLOCK = re.compile(r"\bimport\s*\((.*?)\)", re.DOTALL)
IMPORT_LINE = re.compile(r"^\s*(?:(\w+)\s+)?\"([^\"]+)\"", re.MULTILINE)
SINGLE_IMPORT = re.compile(r"^import\s+(?:(\w+)\s+)?\"([^\"]+)\"", re.MULTILINE)
JSON_TAG = re.compile(r"json:\"([^\"]*)\"")


@dataclass(frozen=True)
class GoField:
    name: str  # Go field name ("" when embedded)
    type: str
    json: str | None  # the json tag's name part; None without a json tag


@dataclass
class GoPackage:
    structs: dict[str, list[GoField]]
    imports: dict[str, str]  # alias -> import path


def matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def parse_fields(body: str) -> list[GoField]:
    """The fields of a struct body, one per line: `Name Type `tag`` or an embedded `Type`."""
    fields = []
    for raw in body.splitlines():
        line = raw.strip()
        tag = re.search(r"`([^`]*)`", line)
        json_tag = JSON_TAG.search(tag.group(1)) if tag else None
        parts = (line[: tag.start()] if tag else line).split()
        if not parts:
            continue
        name, go_type = ("", parts[0]) if len(parts) == 1 else (parts[0], " ".join(parts[1:]))
        if json_tag is None:
            json_name = "" if not name else None  # embedded without a tag: inline
        else:
            json_name = json_tag.group(1).split(",")[0]
            if not json_name and name and ",inline" not in json_tag.group(1):
                json_name = name  # `json:",omitempty"` keeps the Go name
        fields.append(GoField(name, go_type, json_name))
    return fields


def parse_package(directory: Path) -> GoPackage:
    package = GoPackage({}, {})
    for path in go_files(directory) if directory.is_dir() else []:
        if path.parent != directory:
            continue
        text = strip_comments(path.read_text())
        blocks = IMPORT_BLOCK.findall(text) or []
        for block in blocks:
            for alias, import_path in IMPORT_LINE.findall(block):
                package.imports[alias or import_path.rsplit("/", 1)[-1]] = import_path
        for alias, import_path in SINGLE_IMPORT.findall(text):
            package.imports[alias or import_path.rsplit("/", 1)[-1]] = import_path
        for match in STRUCT.finditer(text):
            end = matching_brace(text, match.end() - 1)
            package.structs[match.group(1)] = parse_fields(text[match.end() : end])
    return package


class TypeResolver:
    """Struct definitions by import path, read from the downloaded modules."""

    def __init__(self, modules: dict[str, Path]) -> None:
        self.modules = modules  # module path -> directory
        self.packages: dict[str, GoPackage] = {}

    def package(self, import_path: str) -> GoPackage | None:
        if import_path not in self.packages:
            owners = [
                m for m in self.modules if import_path == m or import_path.startswith(m + "/")
            ]
            if not owners:
                return None
            module = max(owners, key=len)
            directory = self.modules[module] / import_path[len(module) :].lstrip("/")
            self.packages[import_path] = parse_package(directory)
        return self.packages[import_path]

    def paths(
        self, import_path: str, type_name: str, prefix: str, seen: tuple[str, ...]
    ) -> set[str]:
        """Every JSON key path under struct `type_name` of package `import_path`."""
        package = self.package(import_path)
        key = f"{import_path}.{type_name}"
        if package is None or type_name not in package.structs or key in seen:
            return set()
        found: set[str] = set()
        for go_field in package.structs[type_name]:
            if go_field.json is None and go_field.name:
                continue  # no json tag: not a configuration key
            if go_field.json == "-":
                continue
            base, element_path = self.element(import_path, package, go_field.type)
            if go_field.json == "":  # embedded without a key: its fields inline
                if base:
                    found |= self.paths(base[0], base[1], prefix, (*seen, key))
                continue
            path = f"{prefix}{go_field.json}"
            found.add(path)
            nested_prefix = f"{path}{element_path}"
            if base or "*" in element_path:  # "a.*" for a map, "a[]" for a list of structs
                found.add(nested_prefix)
            if base:
                found |= self.paths(base[0], base[1], nested_prefix + ".", (*seen, key))
        return found

    def element(
        self, import_path: str, package: GoPackage, go_type: str
    ) -> tuple[tuple[str, str] | None, str]:
        """The struct a field's type leads to (import path, name), and the path between
        ("" for a struct, "[]" for a list of them, ".*" for a map of them)."""
        between = ""
        text = go_type.strip()
        while True:
            if text.startswith("*"):
                text = text[1:]
            elif text.startswith("[]"):
                between += "[]"
                text = text[2:]
            elif text.startswith("map["):
                close = text.index("]")
                between += ".*"
                text = text[close + 1 :]
            else:
                break
        if "." in text:
            alias, name = text.split(".", 1)
            target = package.imports.get(alias)
        else:
            name, target = text, import_path
        if target is None:
            return None, between
        target_package = self.package(target)
        if target_package is None or name not in target_package.structs:
            return None, between
        has_json = any(f.json is not None for f in target_package.structs[name])
        return ((target, name) if has_json else None), between


def config_paths(resolver: TypeResolver, modules: dict[str, Path], kind: str) -> dict[str, object]:
    module, directory, type_name, api_version = CONFIG_KINDS[kind]
    import_path = f"k8s.io/{module}/{directory}"
    paths = resolver.paths(import_path, type_name, "", ())
    if not {"apiVersion", "kind"} <= paths:
        raise SystemExit(f"{kind}: apiVersion/kind not found (TypeMeta unresolved)")
    return {
        "apiVersion": api_version,
        "type": f"{import_path}.{type_name}",
        "fields": sorted(paths),
    }


def reference(version: str) -> dict[str, object]:
    major, minor, patch = version.split(".")
    staging = f"v0.{minor}.{patch}"
    modules = {"k8s.io/kubernetes": go_mod_download("k8s.io/kubernetes", f"v{version}")}
    for name in STAGING:
        modules[f"k8s.io/{name}"] = go_mod_download(f"k8s.io/{name}", staging)
    short = {m.removeprefix("k8s.io/"): d for m, d in modules.items()}
    flags, deprecated, unresolved = {}, {}, {}
    for component, trees in FLAG_TREES.items():
        scan = component_flags([short[m] / sub for m, sub in [*trees, *COMMON_TREES]])
        flags[component] = sorted(scan.flags)
        deprecated[component] = sorted(scan.deprecated)
        unresolved[component] = sorted(scan.unresolved)
    resolver = TypeResolver(modules)
    return {
        "release": f"v{version}",
        "generated_by": "python -m lab.kube_reference " + version,
        "modules": {m: d.name.split("@", 1)[1] for m, d in modules.items()},
        "flags": flags,
        "deprecated_flags": deprecated,
        "unresolved_flag_names": unresolved,
        "config": {kind: config_paths(resolver, modules, kind) for kind in CONFIG_KINDS},
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for version in argv:
        table = reference(version.removeprefix("v"))
        path = OUTPUT_DIR / f"reference-v{version.removeprefix('v')}.json"
        path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        counts = ", ".join(f"{c} {len(f)}" for c, f in table["flags"].items())  # type: ignore[attr-defined]
        print(f"{path.relative_to(REPO_ROOT)}: flags {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
