"""The security check group: the running components judged against the CIS Benchmark table.

A host is surveyed in one command (tasks/security.py): per unit its main PID, the arguments
of the running process, etcd's ETCD_* environment, the file its --config flag names, the first
provider of its encryption configuration, its unit files and EnvironmentFiles; then the mode
and owner of every path involved. Everything here is pure: parse that text, judge it against
templates/security/<benchmark>.yaml, return findings naming host, component and check id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kubenorn.findings import Finding, Status

TABLES_DIR = Path(__file__).resolve().parent.parent / "templates" / "security"
OPS = ("eq", "noteq", "has", "nothave", "gte", "valid_elements", "present", "absent")
# Unit files a package installs (reset by its upgrades, holding no setting of kubenorn's; Debian's
# systemd adds /usr/lib/systemd/system/service.d/10-timeout-abort.conf to every service), and
# those systemd makes itself (generators, transient units): not judged.
SYSTEM_UNIT_DIRS = (
    "/lib/systemd/",
    "/usr/lib/systemd/",
    "/run/systemd/generator",
    "/run/systemd/transient/",
)


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    id: str
    component: str
    severity: Status
    flag: str | None = None
    config: str | None = None
    encryption_provider: str | None = None
    files: tuple[str, ...] = ()
    op: str = "present"
    value: str = ""
    when_absent: str = "fail"
    mode: str | None = None
    owner: str | None = None
    waived: str | None = None

    @property
    def what(self) -> str:
        """What the check reads, as a reader of a finding would look for it."""
        if self.files:
            return ", ".join(self.files)
        if self.encryption_provider:
            return "encryption provider"
        parts = [f"--{self.flag}"] if self.flag else []
        return " / ".join(parts + ([self.config] if self.config else []))


def parse_table(document: dict[str, Any]) -> tuple[Check, ...]:
    """The checks of a table document; ValueError naming the row for anything malformed."""
    checks = []
    for row in document["checks"]:
        files = row.get("file", ())
        check = Check(
            id=str(row["id"]),
            component=str(row["component"]),
            severity=row["severity"],
            flag=row.get("flag"),
            config=row.get("config"),
            encryption_provider=row.get("encryption_provider"),
            files=(files,) if isinstance(files, str) else tuple(files),
            op=row.get("op", "present"),
            value=str(row.get("value", "")),
            when_absent=row.get("when_absent", "fail"),
            mode=row.get("mode"),
            owner=row.get("owner"),
            waived=row.get("waived"),
        )
        if check.op not in OPS or check.severity not in ("CRITICAL", "WARNING"):
            raise ValueError(f"check {check.id}: op {check.op!r}, severity {check.severity!r}")
        subjects = [check.flag or check.config, check.encryption_provider, check.files]
        if sum(bool(s) for s in subjects) != 1:
            raise ValueError(f"check {check.id}: exactly one of flag/config, provider, file")
        checks.append(check)
    return tuple(checks)


@cache
def load_table(name: str) -> tuple[Check, ...]:
    """templates/security/NAME.yaml, parsed."""
    return parse_table(yaml.safe_load((TABLES_DIR / f"{name}.yaml").read_text()))


@dataclass
class UnitSurvey:
    """What the survey saw of one unit."""

    pid: int = 0
    args: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # etcd's ETCD_* variables
    unit_files: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    config_path: str | None = None
    config_lines: list[str] = field(default_factory=list)
    provider: str | None = None

    @property
    def flags(self) -> dict[str, str]:
        """The effective flags: etcd's environment, then the arguments (the last one wins, as
        Go's flag packages do; a bare boolean flag is true)."""
        found = {
            name.removeprefix("ETCD_").lower().replace("_", "-"): value
            for name, value in self.environment.items()
        }
        words = self.args[1:]
        for index, word in enumerate(words):
            if not word.startswith("-"):
                continue
            name, equals, value = word.lstrip("-").partition("=")
            if not equals:
                following = words[index + 1] if index + 1 < len(words) else ""
                value = following if following and not following.startswith("-") else "true"
            found[name] = value
        return found

    @property
    def running(self) -> bool:
        """Whether a process runs with a configuration it can read: a component crash-looping
        on a corrupted file is the control-plane check's finding, not a security one."""
        if self.pid == 0 or not self.args:
            return False
        try:
            yaml.safe_load("\n".join(self.config_lines))
        except yaml.YAMLError:
            return False
        return True

    @property
    def config(self) -> dict[str, Any]:
        """The file --config names, as YAML; {} when there is none or it does not parse."""
        try:
            document = yaml.safe_load("\n".join(self.config_lines))
        except yaml.YAMLError:
            return {}
        return document if isinstance(document, dict) else {}


@dataclass(frozen=True)
class FileStat:
    mode: str  # octal, as stat %a prints it
    owner: str  # user:group


@dataclass
class Survey:
    units: dict[str, UnitSurvey] = field(default_factory=dict)
    stats: dict[str, FileStat] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)


def parse_survey(text: str) -> Survey:
    """The survey command's output (tasks/security.py) as data."""
    survey = Survey()
    unit: UnitSurvey | None = None
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "@unit":
            unit = survey.units.setdefault(rest, UnitSurvey())
        elif tag == "@stat":
            mode, owner, group, path = rest.split(" ", 3)
            survey.stats[path] = FileStat(mode, f"{owner}:{group}")
        elif tag == "@missing":
            survey.missing.add(rest)
        elif unit is not None:
            _unit_line(unit, tag, rest)
    return survey


def _unit_line(unit: UnitSurvey, tag: str, rest: str) -> None:
    if tag == "@pid":
        unit.pid = int(rest or 0) if rest.strip().isdigit() else 0
    elif tag == "@arg":
        unit.args.append(rest)
    elif tag == "@env":
        name, _, value = rest.partition("=")
        unit.environment[name] = value
    elif tag == "@unitfile":
        unit.unit_files.append(rest)
    elif tag == "@envfile":
        unit.env_files.append(rest)
    elif tag == "@configfile":
        unit.config_path = rest
    elif tag == "@config":
        unit.config_lines.append(rest)
    elif tag == "@provider":
        unit.provider = rest or None


def config_field(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a configuration document; None when any part is absent."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def as_text(value: Any) -> str | None:
    """A flag's or field's value as the flag would spell it; None for absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def compare(op: str, actual: str, expected: str) -> bool:
    """Whether `actual` passes `op` against `expected` (kube-bench's meanings)."""
    if op == "eq":
        return actual.lower() == expected.lower()
    if op == "noteq":
        return actual.lower() != expected.lower()
    if op == "has":
        return expected in actual
    if op == "nothave":
        return expected not in actual
    if op == "gte":
        try:
            return int(actual) >= int(expected)
        except ValueError:
            return False
    if op == "valid_elements":
        allowed = set(expected.split(","))
        return all(element.strip() in allowed for element in actual.split(","))
    return op == "present"


@dataclass(frozen=True)
class HostPaths:
    """What the table's path templates and pki: kinds mean on one host (from the inventory)."""

    names: dict[str, str]  # config_dir, cert_dir, cni_config, etcd_user, ...
    certs: tuple[str, ...] = ()  # certificates in the Kubernetes certificate directory
    keys: tuple[str, ...] = ()  # keys there
    cert_dir: str | None = None


def resolve(spec: str, unit: UnitSurvey, paths: HostPaths) -> list[str]:
    """The paths one `file:` entry names on this host."""
    kind, _, argument = spec.partition(":")
    if kind == "unit":
        return [p for p in unit.unit_files if not p.startswith(SYSTEM_UNIT_DIRS)]
    if kind == "env":
        return list(unit.env_files)
    if kind == "flag":
        value = unit.flags.get(argument)
        return [value] if value and value.startswith("/") else []
    if kind == "config":
        value = as_text(config_field(unit.config, argument))
        return [value] if value and value.startswith("/") else []
    if kind == "path":
        return [argument.format(**paths.names)]
    if kind == "pki":
        chosen = {"certs": paths.certs, "keys": paths.keys}.get(argument)
        if chosen is not None:
            return list(chosen)
        return [*([paths.cert_dir] if paths.cert_dir else []), *paths.certs, *paths.keys]
    raise ValueError(f"unknown file kind {spec!r}")


def judge_files(check: Check, unit: UnitSurvey, survey: Survey, paths: HostPaths) -> list[str]:
    """What is wrong with the files a check names (empty when all is well)."""
    problems = []
    wanted = list(dict.fromkeys(p for spec in check.files for p in resolve(spec, unit, paths)))
    for path in wanted:
        stat = survey.stats.get(path)
        if stat is None:
            # Not surveyed at all: the process that named it exited meanwhile (crash loop).
            if path in survey.missing:
                problems.append(f"{path} missing")
            continue
        if check.mode is not None and int(stat.mode, 8) & ~int(check.mode, 8):
            problems.append(f"{path} mode {stat.mode}, at most {check.mode} expected")
        owner = check.owner.format(**paths.names) if check.owner else None
        if owner is not None and stat.owner != owner:
            problems.append(f"{path} owned by {stat.owner}, {owner} expected")
    return problems


def judge_setting(check: Check, unit: UnitSurvey) -> str | None:
    """What is wrong with the setting a check reads; None when it passes."""
    if check.encryption_provider:
        actual = unit.provider
    else:
        flags = unit.flags
        actual = flags.get(check.flag) if check.flag else None
        if actual is None and check.config:
            actual = as_text(config_field(unit.config, check.config))
    if actual is None:
        if check.op == "absent" or check.when_absent == "pass":
            return None
        return f"{check.what} not set"
    if check.op == "absent":
        return f"{check.what} is set ({actual}); it must not be"
    if compare(check.op, actual, check.value):
        return None
    expectation = f"{check.op} {check.value}" if check.value else check.op
    return f"{check.what} is {actual!r}, expected {expectation}"


def judge_host(
    host: str,
    components: Iterable[str],
    survey: Survey,
    checks: Iterable[Check],
    paths: HostPaths,
    *,
    benchmark: str,
) -> list[Finding]:
    """Findings for one host: one per failed check (`security.<id>`, naming the component),
    one OK summary of the rest, and one for a component not running (its flags unjudged)."""
    wanted = set(components)
    findings: list[Finding] = []
    passed = waived = 0
    stopped: set[str] = set()
    for check in checks:
        if check.component not in wanted:
            continue
        if check.waived:
            waived += 1
            continue
        unit = survey.units.get(f"{check.component}.service", UnitSurvey())
        if not unit.running and not check.files:
            stopped.add(check.component)
            continue
        if check.files:
            problems = judge_files(check, unit, survey, paths)
        else:
            problem = judge_setting(check, unit)
            problems = [problem] if problem else []
        if problems:
            detail = f"{check.component}: {'; '.join(problems)} ({benchmark} {check.id})"
            findings.append(Finding(f"security.{check.id}", host, check.severity, detail))
        else:
            passed += 1
    summary = f"{benchmark}: {passed} checks pass, {waived} waived (README)"
    if stopped:
        summary += f"; not running, flags not judged: {', '.join(sorted(stopped))}"
    return [*findings, Finding("security", host, "OK", summary)]
