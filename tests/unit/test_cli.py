"""kubenorn.cli: --limit by host, group or glob; bad input is exit 3 with a message."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nornir.core import Nornir

from kubenorn import cli
from kubenorn.nornir_setup import InventoryError


@pytest.mark.parametrize(
    ("patterns", "hosts"),
    [
        (["h1"], ["h1"]),
        (["etcd"], ["h1", "h2"]),  # a group
        (["nodes"], ["deployer"]),
        (["h*"], ["h1", "h2"]),  # a glob
        (["dep?oyer"], ["deployer"]),
        (["h2", "nodes"], ["h2", "deployer"]),
        (["etcd", "h1"], ["h1", "h2"]),  # overlaps count once
    ],
)
def test_limit_keeps_named_hosts_groups_and_globs(
    nr: Nornir, patterns: list[str], hosts: list[str]
) -> None:
    assert list(cli.limit(nr, patterns).inventory.hosts) == hosts


@pytest.mark.parametrize(
    ("patterns", "unknown"),
    [(["nope"], "nope"), (["h1", "H1"], "H1"), (["etcd", "x*"], "x*")],
)
def test_limit_refuses_a_pattern_that_matches_nothing_naming_it(
    nr: Nornir, patterns: list[str], unknown: str
) -> None:
    with pytest.raises(cli.UsageError) as error:
        cli.limit(nr, patterns)
    assert str(error.value) == (
        f"--limit {unknown}: no host or group of that name in the inventory"
    )


def test_load_applies_the_options(inventory_dir: Path) -> None:
    argv = ["-i", str(inventory_dir), "--limit", "etcd", "--workers", "2", "--dry-run"]
    args = cli.parser("x", dry_run=True).parse_args(argv)
    nr = cli.load(cli.Options.parsed(args, argv))
    assert list(nr.inventory.hosts) == ["h1", "h2"]
    assert nr.data.dry_run is True
    assert nr.runner.num_workers == 2  # type: ignore[attr-defined]


def test_only_runbooks_that_can_dry_run_take_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.parser("x", dry_run=True).parse_args(["--dry-run"]).dry_run is True
    with pytest.raises(SystemExit):
        cli.parser("x").parse_args(["--dry-run"])
    assert "unrecognized arguments: --dry-run" in capsys.readouterr().err


def raising(error: BaseException) -> Callable[[list[str]], int]:
    def body(argv: list[str]) -> int:
        raise error

    return body


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InventoryError("/inv/hosts.yaml: inventory file is missing"), 3),
        (cli.UsageError("--limit nope: no host or group of that name in the inventory"), 3),
        (KeyboardInterrupt(), 130),
    ],
)
def test_main_wrapper_turns_bad_input_into_an_exit_code_and_a_message(
    capsys: pytest.CaptureFixture[str], error: BaseException, code: int
) -> None:
    assert cli.main_wrapper(raising(error), []) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    expected = f"error: {error}\n" if code == 3 else "interrupted\n"
    assert captured.err == expected


def test_main_wrapper_passes_the_arguments_and_the_exit_code_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def body(argv: list[str]) -> int:
        seen.append(argv)
        return 1

    assert cli.main_wrapper(body, ["--limit", "h1"]) == 1
    monkeypatch.setattr(sys, "argv", ["runbook", "-q"])
    assert cli.main_wrapper(body, None) == 1
    assert seen == [["--limit", "h1"], ["-q"]]


def test_an_unexpected_error_is_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        cli.main_wrapper(raising(ZeroDivisionError()), [])


def run_verify(argv: list[str]) -> int:
    from runbooks import verify

    return verify.main(argv)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "-2"], "--workers"),
        (["--json", "/nonexistent/dir/out.json"], "--json"),
        (["--junit", "/nonexistent/dir/out.xml"], "--junit"),
        (["--json", "/"], "--json"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_everyday_option_mistakes_exit_3_with_one_message_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        run_verify(argv)
    assert stop.value.code == 3
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert error.count("error:") == 1


def test_inventory_option_pointing_at_a_file_says_so(
    capsys: pytest.CaptureFixture[str], inventory_dir: Path
) -> None:
    with pytest.raises(SystemExit) as stop:
        run_verify(["-i", str(inventory_dir / "hosts.yaml")])
    assert stop.value.code == 3
    assert "is a file; give the inventory directory" in capsys.readouterr().err


def test_an_unwritable_report_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # /proc takes no new files, not even from root (for whom a 0500 directory is writable).
    with pytest.raises(SystemExit) as stop:
        run_verify(["--json", "/proc/kubenorn-report.json"])
    assert stop.value.code == 3
    assert "/proc/kubenorn-report.json: not writable" in capsys.readouterr().err


def test_a_writable_report_path_is_left_as_it_was(tmp_path: Path) -> None:
    from kubenorn.cli import output_file

    assert output_file(str(tmp_path / "new.json")) == tmp_path / "new.json"
    assert not (tmp_path / "new.json").exists()  # checked by trying, then removed


def test_drill_refuses_an_unknown_host_before_touching_any(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from runbooks import drill

    good = Path(__file__).resolve().parents[1] / "data" / "inventories" / "good"
    code = drill.main(["-i", str(good), "apiserver", "--host", "kube.nosuch"])
    assert code == 3
    assert "--host kube.nosuch: not a controller" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["under a file", "/proc"])
def test_an_unwritable_backup_destination_exits_3_before_any_run(
    tmp_path: Path,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pki_support import inventory_copy

    from kubenorn import cli
    from runbooks import etcd_backup

    if where == "/proc":  # /proc takes no new directories, not even from root
        dest = Path("/proc/kubenorn-backups")
    else:
        (tmp_path / "file").write_text("")
        dest = tmp_path / "file" / "backups"
    started: list[str] = []
    monkeypatch.setattr(cli, "new_run", lambda options, runbook, **shown: started.append(runbook))
    argv = ["-i", str(inventory_copy("good", tmp_path)), "--dest", str(dest), "--quiet"]
    assert etcd_backup.main(argv) == 3
    error = capsys.readouterr().err
    assert error.startswith(f"error: --dest {dest}: not writable (") and error.count("\n") == 1
    assert started == [], "no run (and so no host) was started"


def test_a_backup_destination_is_created_private(tmp_path: Path) -> None:
    from kubenorn.cli import output_dir

    dest = output_dir(tmp_path / "a" / "backups", "--dest")
    assert (dest.is_dir(), dest.stat().st_mode & 0o777, list(dest.iterdir())) == (True, 0o700, [])
