"""Typed fields of inventory data, and the problems found reading them.

A field is looked up through layers (host data, then its groups' data, then defaults data, as
Nornir's SimpleInventory does); a wrong or missing value becomes a Problem naming the file,
the host (or group, or `defaults`) and the field, and reading goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

from kubenorn.findings import Finding, Status

_MISSING: Any = object()
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$", re.IGNORECASE)
_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?$")


def valid_dns_name(name: str) -> bool:
    return bool(_DNS_NAME.match(name))


def is_ip(text: str) -> bool:
    """Whether `text` is an IP address literal rather than a name."""
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


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


@dataclass(frozen=True)
class Layer:
    file: str
    where: str
    prefix: str
    data: dict[str, Any]


@dataclass
class Section:
    """Typed fields of one mapping, or of a host through its inheritance layers."""

    layers: list[Layer]
    problems: list[Problem]

    def _find(self, key: str) -> tuple[Any, Layer]:
        for layer in self.layers:
            if key in layer.data:
                return layer.data[key], layer
        return _MISSING, self.layers[0]

    def problem(self, key: str, message: str) -> None:
        """An error about `key` (or, for "-", the entry itself) of the most specific layer."""
        layer = self.layers[0]
        name = f"{layer.prefix}{key}" if key != "-" else "-"
        self.problems.append(Problem(layer.file, layer.where, name, message))

    def problem_at(self, key: str, message: str) -> None:
        """An error about the value of `key`, named where that value is set (host, group or
        defaults data), for rules that look at more than the one field."""
        _, layer = self._find(key)
        self.problems.append(Problem(layer.file, layer.where, f"{layer.prefix}{key}", message))

    def _get(self, key: str, default: Any, check: Callable[[Any], Any], expected: str) -> Any:
        value, layer = self._find(key)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.problem(key, f"missing (expected {expected})")
            return None if default is _MISSING else default
        try:
            return check(value)
        except (ValueError, TypeError) as error:
            at = Problem(layer.file, layer.where, f"{layer.prefix}{key}", f"{error}")
            self.problems.append(at)
            return None

    def section(self, key: str, *, required: bool = True) -> Section:
        value, layer = self._find(key)
        if not isinstance(value, dict):
            if required or value is not _MISSING:
                self.problem(key, "missing or not a mapping")
            value = {}
        return Section(
            [Layer(layer.file, layer.where, f"{layer.prefix}{key}.", value)], self.problems
        )

    def optional_section(self, key: str) -> Section | None:
        """The mapping at `key`, or None when it is absent or null (an opt-in feature)."""
        value, _ = self._find(key)
        if value is _MISSING or value is None:
            return None
        return self.section(key)

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default, _text, "a string")

    def version(self, key: str) -> str:
        return self._get(key, _MISSING, _version, 'a quoted version such as "1.30.0"') or ""

    def port(self, key: str) -> int:
        return self._get(key, _MISSING, lambda v: _integer(v, 1, 65535), "a port number") or 0

    def positive(self, key: str, default: int) -> int:
        return self._get(key, default, lambda v: _integer(v, 1, 100_000), "a number") or 0

    def count(self, key: str) -> int | None:
        """An optional whole number, 0 included (None when absent)."""
        return self._get(key, None, lambda v: _integer(v, 0, 2**31 - 1), "a whole number")

    def address(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default, lambda v: ip_address(_text(v)), "an IP address")

    def network(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(
            key, default, lambda v: ip_network(_text(v)), "a CIDR such as 10.32.0.0/24"
        )

    def resources(self, key: str) -> tuple[tuple[str, str], ...]:
        """Resource reservations: `cpu=100m,memory=128Mi` or a mapping; () when absent."""
        return self._get(key, (), _resources, "resource=quantity pairs") or ()

    def dns_name(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default, _dns_name, "a DNS name")

    def abs_path(self, key: str) -> str:
        return self._get(key, _MISSING, _abs_path, "an absolute path") or ""

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        return self._get(key, default, lambda v: _choice(v, choices), " | ".join(choices)) or ""

    def parsed(self, key: str, check: Callable[[Any], Any], expected: str, default: Any) -> Any:
        """A field with its own parser (ValueError or TypeError for a wrong value)."""
        return self._get(key, default, check, expected)

    def initial_cluster(self, key: str) -> tuple[tuple[str, str], ...] | None:
        return self._get(key, None, _initial_cluster, "name=URL entries")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"must be a non-empty string, not {value!r}")
    return value


def _version(value: Any) -> str:
    if isinstance(value, int | float):
        raise TypeError(f"must be a quoted string: YAML reads {value!r} as a number")
    if not _VERSION.match(_text(value)):
        raise ValueError(f"{value!r} is not a version such as 1.30.0")
    return value.removeprefix("v")


def _integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"must be a whole number from {low} to {high}, not {value!r}")
    return value


def _dns_name(value: Any) -> str:
    if not valid_dns_name(_text(value)):
        raise ValueError(f"{value!r} is not a valid DNS name")
    return value


def _abs_path(value: Any) -> str:
    if not _text(value).startswith("/"):
        raise ValueError(f"must be an absolute path on the hosts, not {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
    return value


# What the kubelet reserves for (kubeReserved, systemReserved), and Kubernetes quantities.
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pid")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _resources(value: Any) -> tuple[tuple[str, str], ...]:
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
