"""Every runbook's --help matches the README: each option (and subcommand) a runbook's parser
accepts is mentioned in the README's section for it (or, for the options every runbook that
acts on hosts shares, in "Running a runbook"'s table), and each option the README shows with a
runbook (`python -m runbooks.X ... --opt`, `kubenorn X ... --opt`, its section's option and
command tables) exists. The parser is the one the runbook builds, caught as it parses."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.__main__ import ALIASES, COMMANDS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

# command -> the headings of its README sections (each with its subsections).
SECTIONS = {
    "inventory": ["## The inventory: one model"],
    "preflight": ["### Preflight:"],
    "pki": ["### Certificates:"],
    "facts": ["## Running a runbook"],
    "deploy": ["## Deploy"],
    "verify": ["## Verify", "## Workloads"],
    "run": ["### Ad-hoc commands:"],
    "drill": ["## Drills"],
    "etcd-backup": ["## etcd backup and restore"],
    "etcd-restore": ["## etcd backup and restore"],
    "history": ["## History, cron and the notebook"],
    "cron": ["## History, cron and the notebook"],
    "lab": ["## The lab"],
    "reset": ["### Reset: `python -m runbooks.reset"],
    "node": [
        "### Adding a node: `python -m runbooks.node",
        "### Node removal: `python -m runbooks.node",
    ],
    "upgrade": ["## Day two: upgrading one minor release"],
}
COMMON_TABLE = "## Running a runbook"
OPTION = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][\w-]*)")
INVOCATION = re.compile(r"(?:runbooks\.(\w+)|\bkubenorn ([a-z][a-z-]*))")


class Caught(Exception):
    """Raised in place of parsing: the runbook's parser, as built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def catch(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
    raise Caught(parser)


def parser_of(command: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    runbook = importlib.import_module(f"runbooks.{COMMANDS[command]}")
    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", catch)
        with pytest.raises(Caught) as caught:
            runbook.main(["--help"])
    return caught.value.parser


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and its subcommands' parsers, all the way down."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def own(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Each option of `parser` itself as its spellings (`-i`, `--inventory`), --help left out,
    and those hidden from --help (a common option a runbook refuses with a usage error)."""
    return [
        tuple(action.option_strings)
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and action.help != argparse.SUPPRESS
    ]


def accepted(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Each option of `parser` and of its subcommands."""
    return [option for each in parsers(parser) for option in own(each)]


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    """The names of its subcommands and the choices of its positional arguments."""
    return {
        str(choice)
        for each in parsers(parser)
        for action in each._actions
        if not action.option_strings and action.choices
        for choice in action.choices
    }


def section(heading: str) -> str:
    """The README from `heading` to the next heading of its level or above."""
    level = heading.split(" ")[0]
    start = README.index(f"\n{heading}") + 1
    ends = [
        match.start() + 1
        for match in re.finditer(r"\n(#{2,4}) ", README[start + 1 :])
        if len(match.group(1)) <= len(level)
    ]
    return README[start : start + 1 + ends[0]] if ends else README[start:]


def text_of(command: str) -> str:
    return "\n".join(section(heading) for heading in SECTIONS[command])


def mentions(text: str, spelling: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", text) is not None


def common_options() -> set[str]:
    """The options of "Running a runbook"'s table: `-i/--inventory DIR` -> -i, --inventory."""
    rows = re.findall(r"^\| `([^`]+)` \|", section(COMMON_TABLE), re.MULTILINE)
    return {
        option for row in rows for option in OPTION.findall(row.split(" ")[0].replace("/", " "))
    }


def code_spans(text: str) -> Iterator[str]:
    """Each line of a fenced block (its comment left out) and each inline code span."""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            yield line.split(" #", 1)[0]
        else:
            yield from re.findall(r"`([^`]+)`", line)


def shown_with(command: str) -> set[str]:
    """The options the README writes after an invocation of `command`, and in its section's
    tables whose first cell is an option or one of its subcommands."""
    names = {command, COMMANDS[command], ALIASES.get(COMMANDS[command], command)}
    shown: set[str] = set()
    for span in code_spans(README):
        match = INVOCATION.search(span)
        if match and (match.group(1) or match.group(2)) in names:
            arguments = span[match.end() :].split(" -- ", 1)[0]  # after --: the remote command
            shown |= set(OPTION.findall(arguments))
    return shown | table_options(command)


def table_options(command: str) -> set[str]:
    options: set[str] = set()
    for heading in SECTIONS[command]:
        if heading == COMMON_TABLE:
            continue
        for cell in re.findall(r"^\| `([^`]+)` \|", section(heading), re.MULTILINE):
            options |= set(OPTION.findall(cell))
    return options


def help_of(parser: argparse.ArgumentParser) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return out.getvalue()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_a_runbook_accepts_is_in_its_readme_section(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = parser_of(command, monkeypatch)
    for each in parsers(parser):  # what --help shows is what the parser accepts
        shown = help_of(each)
        assert all(mentions(shown, spelling) for option in own(each) for spelling in option)
    options = accepted(parser)
    spellings = {spelling for option in options for spelling in option}
    common = common_options() if common_options() - {"--dry-run"} <= spellings else set()
    text = text_of(command)
    missing = [
        "/".join(option)
        for option in options
        if not any(mentions(text, spelling) or spelling in common for spelling in option)
    ]
    assert not missing, f"{command}: README section {SECTIONS[command]} never mentions {missing}"
    unnamed = sorted(name for name in subcommands(parser) if not mentions(text, name))
    assert not unnamed, f"{command}: README section {SECTIONS[command]} never names {unnamed}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_the_readme_shows_for_a_runbook_exists(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spellings = {s for option in accepted(parser_of(command, monkeypatch)) for s in option}
    unknown = sorted(shown_with(command) - spellings - {"-h", "--help"})
    assert not unknown, f"the README shows {command} with {unknown}, which it does not accept"


def test_the_readme_is_read() -> None:
    """The readers above find what the README shows (else the tests would pass on nothing)."""
    assert {"--quiet", "--verbose", "-i"} <= shown_with("verify")
    assert {"--new-keys", "--key-algorithm", "--warn-days", "--remote"} <= shown_with("pki")
    assert {"-i", "--inventory", "-l", "--limit", "--workers", "--retry-failed"} <= (
        common_options()
    )
