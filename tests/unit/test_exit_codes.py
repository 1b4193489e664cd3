"""One exit-code table for every runbook (kubenorn/exit_codes.py): the README shows exactly it,
and what a runbook's docstring or --help says about its exit codes agrees with it."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

from kubenorn.exit_codes import CODES, MEANINGS, markdown_table
from kubenorn.findings import EXIT_CODES
from runbooks.__main__ import COMMANDS

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- exit-codes:begin -->\n(.*?)<!-- exit-codes:end -->", re.DOTALL)
# "exit 0 OK, 1 WARNING, ...", "Exit codes: 0 OK, ...", "exits 0 only when", "(exit 1 if ...)"
STATEMENT = re.compile(r"\bexit(?:s| codes:)? (\d+\b[^.;]*)", re.IGNORECASE)
ITEM = re.compile(r"(?:^|,\s*)(\d+)\s+(\w+)")


def test_the_readme_shows_the_table_in_code() -> None:
    block = BLOCK.search(README.read_text())
    assert block, "README.md lost its exit-codes markers"
    assert block.group(1) == markdown_table(), "paste kubenorn.exit_codes.markdown_table() there"


def test_every_command_has_a_row_and_only_known_codes() -> None:
    assert list(MEANINGS) == list(COMMANDS)
    for command, meanings in MEANINGS.items():
        assert set(meanings) <= set(CODES), command
        assert {0, 3} <= set(meanings), f"{command}: every runbook succeeds or cannot run"


def stated_codes(text: str) -> list[tuple[int, str]]:
    """(code, the word after it) for every code a text states, parentheses left out."""
    flat = re.sub(r"\([^()]*\)", "", " ".join(text.split()))
    return [
        (int(code), word)
        for statement in STATEMENT.findall(flat)
        for code, word in ITEM.findall(statement)
    ]


def help_text(command: str) -> str:
    runbook = importlib.import_module(f"runbooks.{COMMANDS[command]}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        runbook.main(["--help"])
    assert stop.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_what_a_runbook_says_of_its_exit_codes_agrees_with_the_table(command: str) -> None:
    runbook = importlib.import_module(f"runbooks.{COMMANDS[command]}")
    stated = stated_codes(runbook.__doc__ or "") + stated_codes(help_text(command))
    for code, word in stated:
        assert code in MEANINGS[command], f"{command} says exit {code}; the table has none"
        if word.upper() in EXIT_CODES:  # a monitoring status: the table says the same
            assert EXIT_CODES[word.upper()] == code, f"{command}: {code} {word}"  # type: ignore[index]
            assert word.upper() in MEANINGS[command][code], f"{command}: {code} {word}"


def test_the_statements_are_read() -> None:
    """The parser above finds what the docstrings say (else the test would pass on nothing)."""
    verify = importlib.import_module("runbooks.verify")
    assert [code for code, _ in stated_codes(verify.__doc__ or "")] == [0, 1, 2, 3, 130]
    assert stated_codes("Exit 0 done, 3 the host is unknown.") == [(0, "done"), (3, "the")]
