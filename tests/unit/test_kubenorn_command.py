"""`kubenorn COMMAND`: one command line over every runbook; option errors exit 3 on stderr."""

from __future__ import annotations

import importlib

import pytest

from kubenorn.monitoring import could_not_run_line
from runbooks.__main__ import COMMANDS, main

# The lab runbook is test equipment: parsing its options is harmless, but leave it alone.
RUNBOOKS = [command for command in COMMANDS if command != "lab"]
# Standard output of a runbook that cannot run: nothing, but verify's monitoring verdict.
OUT_WHEN_IT_CANNOT_RUN = {"verify": could_not_run_line() + "\n"}


def test_without_a_command_it_lists_every_runbook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubenorn COMMAND")
    for command in COMMANDS:
        assert f"\n  {command} " in out
    assert "\x1b[" not in out


def test_every_command_is_a_runbook_with_main() -> None:
    for module in COMMANDS.values():
        assert callable(importlib.import_module(f"runbooks.{module}").main)


def test_an_unknown_command_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deply"]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == "error: deply: no such command"


@pytest.mark.parametrize("command", RUNBOOKS)
def test_an_unknown_option_exits_3_with_one_error_line_on_stderr(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--no-such-option"])
    assert stop.value.code == 3
    captured = capsys.readouterr()
    assert captured.out == OUT_WHEN_IT_CANNOT_RUN.get(command, "")
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: kubenorn {command}: "), captured.err


@pytest.mark.parametrize("command", RUNBOOKS)
def test_help_names_the_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: kubenorn {command} ")


def test_a_module_name_works_as_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["etcd_backup", "--help"])
    assert capsys.readouterr().out.startswith("usage: kubenorn etcd-backup ")


TYPO_ARGV = {
    "facts": [],
    "deploy": ["--dry-run"],
    "verify": [],
    "run": ["--", "true"],
    "pki": ["check"],
    "etcd-backup": [],
    "drill": ["etcd-leader"],
    "inventory": ["show", "kube.node01"],
}


@pytest.mark.parametrize("command", TYPO_ARGV)
def test_a_typo_in_the_inventory_is_exit_3_and_an_error_on_stderr(
    command: str,
    tmp_path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    import yaml
    from pki_support import inventory_copy

    inventory = inventory_copy("good", tmp_path)
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    hosts["kube.node01"]["data"]["adress"] = "10.99.0.21"
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    argv = [command, *TYPO_ARGV[command]]
    split = argv.index("--") if "--" in argv else len(argv)
    assert main([*argv[:split], "-i", str(inventory), *argv[split:]]) == 3
    captured = capsys.readouterr()
    assert captured.out == OUT_WHEN_IT_CANNOT_RUN.get(command, "")
    assert captured.err.startswith("error: "), captured.err
    assert "hosts.yaml: kube.node01: data.adress: unknown key" in captured.err
