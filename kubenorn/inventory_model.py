"""The inventory's one definition: typed pydantic models of hosts.yaml, groups.yaml and
defaults.yaml, their JSON Schema, and their errors as problems naming file, host and field.

Every key an inventory may hold is declared here, once; an unknown key (a typo) or a value of
the wrong type is refused. Host-level fields (`HostData`) may be set in host, group or defaults
data and resolve as Nornir resolves them; the cluster-wide sections (`DefaultsData`) live in
defaults.yaml only. To add a field, add one line to its section below.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails, PydanticCustomError

from kubenorn.findings import Finding, Status
from kubenorn.security_settings import AuditSettings, SecuritySettings, name_list

FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")
# Read from defaults.yaml only: a host or group copy would disagree with the cluster model.
CLUSTER_SECTIONS = ("cluster", "pki", "etcd", "kubernetes")
KEY_ALGORITHMS = ("ecdsa-p256", "rsa-2048", "rsa-4096")
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pid")  # what the kubelet may reserve

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True)
class Problem:
    """Something wrong in an inventory file: `where` is a host, `group NAME` or `defaults`."""

    file: str
    where: str
    field: str
    message: str
    status: Status = "CRITICAL"

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self._what}"

    @property
    def _what(self) -> str:
        return self.message if self.field == "-" else f"{self.field}: {self.message}"

    def finding(self) -> Finding:
        """As a finding: the host (or group) in its own column, file and field in the detail."""
        return Finding("inventory", self.where, self.status, f"{self.file}: {self._what}")


# --- value types: each a checker (its messages are the problems people read) and a schema ---

_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
# Go's time.Duration, as the Kubernetes components parse it: 15s, 1m30s, 500ms.
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_RESOURCE = r"\s*[a-z-]+\s*=\s*[0-9.]+[a-zA-Z]*\s*"
_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?$")
_SECRET = re.compile(r"password|passphrase|secret|token", re.IGNORECASE)
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def valid_dns_name(name: str) -> bool:
    return bool(_DNS_NAME.match(name))


def is_ip(text: str) -> bool:
    """Whether `text` is an IP address literal rather than a name."""
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"must be a non-empty string, not {value!r}")
    return value


def _version(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise TypeError(f"must be a quoted string: YAML reads {value!r} as a number")
    if not _VERSION.match(_text(value)):
        raise ValueError(f"{value!r} is not a version such as 1.30.0")
    return str(value).removeprefix("v")


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not {value!r}")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{value!r}: not a number of seconds above 0")
    return float(value)


def _duration(value: Any) -> str:
    if not _DURATION.match(_text(value)):
        raise ValueError(f"{value!r} is not a duration such as 15s or 1m30s")
    return str(value)


def _digest(value: Any) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ValueError(f"must be sha256:<64 hex>, not {value!r}")
    return value


def _dns_name(value: Any) -> str:
    if not valid_dns_name(_text(value)):
        raise ValueError(f"{value!r} is not a valid DNS name")
    return str(value)


def _abs_path(value: Any) -> str:
    if not _text(value).startswith("/"):
        raise ValueError(f"must be an absolute path on the hosts, not {value!r}")
    return str(value)


def _address(value: Any) -> IPAddress:
    return ip_address(_text(value))


def _network(value: Any) -> IPNetwork:
    return ip_network(_text(value))


def _resources(value: Any) -> tuple[tuple[str, str], ...]:
    """Resource reservations: `cpu=100m,memory=128Mi` or a mapping."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for entry in _text(value).split(","):
            name, sep, quantity = entry.strip().partition("=")
            if not sep:
                raise ValueError(f"entry {entry.strip()!r} is not resource=quantity")
            pairs.append((name.strip(), quantity.strip()))
    for name, quantity in pairs:
        if name not in RESOURCES:
            raise ValueError(f"{name!r} cannot be reserved (only {', '.join(RESOURCES)})")
        if not _QUANTITY.match(quantity):
            raise ValueError(f"{name}={quantity!r}: not a quantity such as 100m or 128Mi")
    if len({name for name, _ in pairs}) != len(pairs):
        raise ValueError("a resource is named twice")
    return tuple(pairs)


def _initial_cluster(value: Any) -> tuple[tuple[str, str], ...]:
    entries = _text(value).split(",") if isinstance(value, str) else value
    if not isinstance(entries, list):
        raise TypeError("must be a list of name=URL entries (or one comma-separated string)")
    pairs = []
    for entry in entries:
        name, sep, peer_url = _text(entry).strip().partition("=")
        if not sep or not name or not peer_url:
            raise ValueError(f"entry {entry!r} is not name=URL")
        pairs.append((name, peer_url))
    return tuple(pairs)


def _kind(check: Callable[[Any], Any], expected: str, schema: dict[str, Any]) -> Any:
    """A value type: `check` turns YAML data into the value or raises with the message people
    read; `expected` says what a missing value should have been; `schema` is its JSON Schema."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except (TypeError, ValueError) as error:
            raise PydanticCustomError("kubenorn", "{message}", {"message": str(error)}) from None

    return (PlainValidator(validate), WithJsonSchema({**schema, "description": expected}))


_STRING = {"type": "string", "minLength": 1}
Text = Annotated[str, *_kind(_text, "a string", _STRING)]
Version = Annotated[
    str,
    *_kind(
        _version,
        'a quoted version such as "1.30.0"',
        {**_STRING, "pattern": r"^v?\d+\.\d+(\.\d+)?$"},
    ),
]
Port = Annotated[
    int,
    *_kind(
        _integer(1, 65535), "a port number", {"type": "integer", "minimum": 1, "maximum": 65535}
    ),
]
Positive = Annotated[
    int,
    *_kind(_integer(1, 100_000), "a number", {"type": "integer", "minimum": 1, "maximum": 100000}),
]
Percent = Annotated[
    int, *_kind(_integer(1, 99), "a percentage", {"type": "integer", "minimum": 1, "maximum": 99})
]
Count = Annotated[
    int, *_kind(_integer(0, 2**31 - 1), "a whole number", {"type": "integer", "minimum": 0})
]
Seconds = Annotated[
    float, *_kind(_seconds, "a number of seconds", {"type": "number", "exclusiveMinimum": 0})
]
Address = Annotated[
    IPAddress,
    *_kind(
        _address, "an IP address", {**_STRING, "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
    ),
]
Network = Annotated[IPNetwork, *_kind(_network, "a CIDR such as 10.32.0.0/24", _STRING)]
DnsName = Annotated[str, *_kind(_dns_name, "a DNS name", {**_STRING, "pattern": _DNS_NAME.pattern})]
AbsPath = Annotated[str, *_kind(_abs_path, "an absolute path", {**_STRING, "pattern": "^/"})]
Resources = Annotated[
    tuple[tuple[str, str], ...],
    *_kind(
        _resources,
        "resource=quantity pairs",
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": rf"^{_RESOURCE}(,{_RESOURCE})*$",
                },
                {"type": "object", "propertyNames": {"enum": list(RESOURCES)}},
            ]
        },
    ),
]
InitialCluster = Annotated[
    tuple[tuple[str, str], ...],
    *_kind(
        _initial_cluster,
        "name=URL entries",
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    ),
]
Duration = Annotated[
    str, *_kind(_duration, "a duration such as 15s", {**_STRING, "pattern": _DURATION.pattern})
]


Names = Annotated[
    tuple[str, ...],
    *_kind(
        name_list,
        "a list of names",
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[^ ,]+$"},
                    "minItems": 1,
                },
                {"type": "string", "minLength": 1},
            ]
        },
    ),
]
Digest = Annotated[
    str,
    *_kind(_digest, "sha256:<64 hex digits>", {"type": "string", "pattern": _DIGEST.pattern}),
]


class Section(BaseModel):
    """A mapping of the inventory: unknown keys are refused, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- host-level data: host, group or defaults data, resolved as Nornir resolves it ---


class Ssh(Section):
    known_hosts: Text = "known_hosts"  # relative to the inventory directory
    key_file: Text | None = None  # relative to the inventory directory, or ~/...
    verify_host_keys: bool = True
    connect_timeout: Seconds = 10
    command_timeout: Seconds = 60


class DockerTcp(Section):
    port: Port
    cert_dir: AbsPath


class Containerd(Section):
    config_file: AbsPath | None = None
    socket: AbsPath | None = None
    restrict_oom_score_adj: bool = False


class Docker(Section):
    config_file: AbsPath | None = None
    socket: AbsPath | None = None
    daemon: dict[str, Any] | None = None  # daemon.json, as data
    exec_start: Text | None = None
    tcp: DockerTcp | None = None  # docker's API on TCP: mutual TLS only


class RuntimePackages(Section):
    containerd: list[str] = []
    docker: list[str] = []


class Runtime(Section):
    kind: Literal["containerd", "docker"] | None = None
    packages: RuntimePackages | None = None
    containerd: Containerd | None = None
    docker: Docker | None = None


class LoadBalancer(Section):
    packages: list[str] = []
    config_file: AbsPath | None = None
    on_controllers: bool = False
    health_check: Text | None = None
    # haproxy asks each apiserver every check_interval_ms; check_fall failed answers
    # take it out, check_rise good ones put it back. An apiserver restart waits for the fall.
    check_interval_ms: Positive | None = None
    check_fall: Positive | None = None
    check_rise: Positive | None = None


class HostData(Section):
    """What a host, a group or the defaults may set under `data`."""

    address: Address | None = None  # the address peers use (required for every host)
    fqdn: DnsName | None = None
    etcd_name: Text | None = None
    pod_cidr: Network | None = None
    role: Text | None = None
    os_family: Text | None = None
    package_manager: Literal["apt", "yum", "dnf"] | None = None
    ssh: Ssh | None = None
    runtime: Runtime | None = None
    load_balancer: LoadBalancer | None = None


# --- cluster-wide sections: defaults.yaml only ---


class Apiserver(Section):
    name: Text
    port: Port
    address: Address | None = None  # what `name` resolves to on hosts


class ClusterSection(Section):
    name: Text
    kubernetes_version: Version
    domain: DnsName
    service_cidr: Network
    cluster_cidr: Network | None = None
    dns_service_ip: Address | None = None
    apiserver: Apiserver


class Pki(Section):
    dir: Text = ".pki"  # relative to the inventory directory
    key_algorithm: Literal["ecdsa-p256", "rsa-2048", "rsa-4096"] = "ecdsa-p256"
    ca_validity_days: Positive = 3650
    cert_validity_days: Positive = 365
    warn_days: Positive = 30


class Etcd(Section):
    version: Version
    packages: list[str] = []
    client_port: Port
    peer_port: Port
    user: Text
    cert_dir: AbsPath
    config_file: AbsPath | None = None
    # ETCD_INITIAL_* on their own: read only on a member's first start, so a change (a member
    # joining) is written without restarting the others
    initial_file: AbsPath | None = None
    data_dir: AbsPath | None = None
    heartbeat_interval_ms: Positive | None = None
    election_timeout_ms: Positive | None = None
    log_level: Text | None = None
    snapshot_dir: AbsPath | None = None
    # verify warns when the data directory's filesystem has less free space than this
    disk_warn_free_percent: Percent = 20
    initial_cluster: InitialCluster | None = None  # only for an imported legacy config


class KubernetesPackages(Section):
    controller: list[str] = []
    node: list[str] = []


class LeaderElection(Section):
    lease_duration: Duration
    renew_deadline: Duration
    retry_period: Duration


class Image(Section):
    """An image the nodes load from an archive on the control machine (never pulled)."""

    name: Text  # as pods and containerd's sandbox_image name it
    archive: Text  # an OCI archive, relative to the inventory directory
    digest: Digest | None = None  # pins the archive's manifest digest


class Dns(Section):
    """The cluster DNS add-on (CoreDNS) at cluster.dns_service_ip."""

    image: Text
    replicas: Positive = 2
    upstream: list[Address] = []  # resolvers for other names; none: answer only the cluster


class SmokeTest(Section):
    """verify's workload test: a pod on every node, a Service, cluster DNS."""

    image: Text
    timeout: Positive = 120  # seconds


_AUDIT, _SECURITY = AuditSettings(), SecuritySettings()


class Audit(Section):
    """kube-apiserver's audit log (CIS 1.2.16-1.2.19)."""

    log_path: AbsPath = _AUDIT.log_path
    max_age_days: Positive = _AUDIT.max_age_days
    max_backups: Positive = _AUDIT.max_backups
    max_size_mb: Positive = _AUDIT.max_size_mb
    level: Literal["Metadata", "Request", "RequestResponse"] = "Metadata"


class Security(Section):
    """kubernetes.security: the CIS Benchmark settings (defaults: kubenorn.security_settings)."""

    profiling: bool = _SECURITY.profiling
    audit: Audit = Audit()
    encryption_provider: Literal["aescbc", "secretbox"] = "aescbc"
    service_account_extend_token_expiration: bool = (
        _SECURITY.service_account_extend_token_expiration
    )
    admission_plugins: Names = _SECURITY.admission_plugins
    tls_cipher_suites: Names = _SECURITY.tls_cipher_suites
    terminated_pod_gc_threshold: Positive = _SECURITY.terminated_pod_gc_threshold
    pod_pids_limit: Positive = _SECURITY.pod_pids_limit
    seccomp_default: bool = _SECURITY.seccomp_default


class Kubernetes(Section):
    packages: KubernetesPackages | None = None
    config_dir: AbsPath
    cert_dir: AbsPath
    bin_dir: AbsPath | None = None
    user: Text = "root"
    leader_election: LeaderElection | None = None
    node_status_update_frequency: Duration | None = None
    log_level: Count | None = None
    kube_reserved: Resources = ()
    pause_image: Text | None = None
    insecure_port: Port | None = None  # 1.6 only, bound to 127.0.0.1
    conntrack_max_per_core: Count | None = None
    images: list[Image] = []  # loaded on every node from archives, never pulled
    dns: Dns | None = None
    smoke_test: SmokeTest | None = None
    security: Security | None = None


class DefaultsData(HostData):
    """defaults.yaml's `data`: host-level defaults, and the cluster-wide sections."""

    cluster: ClusterSection | None = None
    pki: Pki = Pki()
    etcd: Etcd | None = None
    kubernetes: Kubernetes | None = None


# --- the three files' entries (Nornir's own keys, then `data`) ---


class _Entry(Section):
    hostname: Text | None = None
    username: Text | None = None
    port: Port | None = None
    platform: Text | None = None
    connection_options: dict[str, Any] | None = None


class HostEntry(_Entry):
    """A host of hosts.yaml (or a group of groups.yaml): its roles are its groups."""

    groups: list[str] = []
    data: HostData = HostData()


class Defaults(_Entry):
    """defaults.yaml."""

    data: DefaultsData = DefaultsData()


class Inventory(BaseModel):
    """All three files: the schema's root describes whichever file it is pointed at."""

    model_config = ConfigDict(extra="forbid", strict=True)

    hosts: dict[str, HostEntry]
    groups: dict[str, HostEntry]
    defaults: Defaults


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an inventory file: hosts.yaml and groups.yaml are mappings of names
    to entries; defaults.yaml is one entry with the cluster-wide sections."""
    schema = Inventory.model_json_schema()
    definitions = schema.pop("$defs")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kubenorn inventory (hosts.yaml, groups.yaml or defaults.yaml)",
        "$defs": definitions,
        "anyOf": [
            {"$ref": "#/$defs/Defaults"},
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/HostEntry"}},
        ],
    }


# --- validation: errors as problems ---


def validate_entry(file: str, where: str, entry: Any) -> tuple[Any, list[Problem]]:
    """One host, group (`where` is `group NAME`) or the defaults, validated: the model (None on
    errors) and a problem for every unknown key, missing field and wrong value."""
    model: type[Section] = Defaults if file == "defaults.yaml" else HostEntry
    found = []
    if file != "defaults.yaml" and isinstance(entry, dict) and isinstance(entry.get("data"), dict):
        for key in CLUSTER_SECTIONS:
            if key in entry["data"]:
                message = "a cluster-wide setting: set it in defaults.yaml only"
                found.append(Problem(file, where, f"data.{key}", message))
        entry = {
            **entry,
            "data": {k: v for k, v in entry["data"].items() if k not in CLUSTER_SECTIONS},
        }
    try:
        return model.model_validate(entry), found
    except ValidationError as error:
        found += [Problem(file, where, _field(e), _message(model, e)) for e in error.errors()]
        return None, found


def _field(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "-"


def _message(model: type[BaseModel], error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "kubenorn":
        return str((error.get("ctx") or {}).get("message", error["msg"]))
    if kind == "missing":
        return f"missing (expected {_expected(model, error['loc'])})"
    if kind == "extra_forbidden" and _SECRET.search(str(error["loc"][-1])):
        return (
            "a secret never lives in the inventory: a sudo password comes from "
            "KUBENORN_SUDO_PASSWORD, a key passphrase from KUBENORN_SSH_KEY_PASSPHRASE"
        )
    if kind == "extra_forbidden":
        known = _keys(model, error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"unknown key ({hint})"
    if kind in ("model_type", "dict_type"):
        return f"{value!r} is not a mapping"
    if kind == "list_type":
        return f"{value!r} is not a list"
    if kind == "string_type":
        return f"{value!r} is not a string"
    if kind == "bool_type":
        return f"must be true or false (unquoted), not {value!r}"
    if kind == "literal_error":
        choices = _schema_at(model, error["loc"]).get("enum") or []
        return f"must be one of {', '.join(map(str, choices))}, not {value!r}"
    return f"{error['msg']}, not {value!r}"


def _schema_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The JSON Schema of the value at `loc` in `model` ({} when the path leaves it)."""
    schema = _schema(model)
    node: dict[str, Any] = schema
    for part in loc:
        node = _resolve(schema, node)
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part) or node.get("additionalProperties") or {}
    return _resolve(schema, node)


def _resolve(schema: dict[str, Any], node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    if "$ref" in node:
        return _resolve(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[-1]])
    for option in node.get("anyOf", []):
        if option.get("type") != "null" and ("$ref" in option or "properties" in option):
            return _resolve(schema, option)
    return node


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _expected(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    node = _schema_at(model, loc)
    if "description" in node and "properties" not in node:
        return str(node["description"])
    return "a mapping" if node.get("type") == "object" else "a value"


def _keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    return list(_schema_at(model, loc).get("properties", {}))
