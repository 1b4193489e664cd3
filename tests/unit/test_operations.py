"""Operations without a host: cron file, the verify lock, --limit errors, retry arguments."""

from __future__ import annotations

import multiprocessing
import shlex
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from kubenorn.cli import without_options
from kubenorn.lock import AlreadyRunning, exclusive
from runbooks import cron, facts


def test_cron_install_writes_a_bare_quiet_verify_and_is_idempotent(tmp_path: Path) -> None:
    cron_file = tmp_path / "kubenorn-verify"
    args = [
        "install",
        "-i",
        "lab/inventory",
        "--schedule",
        "*/5 * * * *",
        "--cron-file",
        str(cron_file),
    ]
    assert cron.main(args) == 0
    text = cron_file.read_text()
    assert "PATH=/usr/bin:/bin" in text
    line = text.strip().splitlines()[-1]
    assert line.startswith("*/5 * * * * root cd / && /")
    assert line.endswith(
        f"/.venv/bin/python -m runbooks.verify -i {Path('lab/inventory').resolve()} --quiet"
    )
    mtime = cron_file.stat().st_mtime_ns
    assert cron.main(args) == 0
    assert cron_file.stat().st_mtime_ns == mtime
    assert cron.main(["remove", "--cron-file", str(cron_file)]) == 0
    assert not cron_file.exists()


def hold_lock(inventory: str, ready: Event, done: Event) -> None:
    with exclusive("verify", Path(inventory)):
        ready.set()
        done.wait(10)


def test_a_second_run_on_the_same_inventory_is_refused(tmp_path: Path) -> None:
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=hold_lock, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"),
            exclusive("verify", tmp_path),
        ):
            pass
    finally:
        done.set()
        holder.join(10)
    with exclusive("verify", tmp_path):  # released when its holder ended
        pass


def test_an_unknown_limit_is_exit_3_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert facts.main(["-i", "lab/inventory", "--limit", "no.such.host"]) == 3
    assert "no.such.host" in capsys.readouterr().err


def test_retry_keeps_the_options_but_limit_and_retry() -> None:
    argv = ["-i", "inv", "--limit", "a", "b", "--json", "x.json", "--retry-failed", "r1"]
    assert without_options(argv, ("--limit", "--retry-failed")) == ["-i", "inv", "--json", "x.json"]


def cron_install(tmp_path: Path, *extra: str) -> int:
    return cron.main(["install", "--cron-file", str(tmp_path / "kubenorn-verify"), *extra])


def test_cron_install_quotes_the_command_line(tmp_path: Path) -> None:
    inventory = tmp_path / "my inventory; rm -rf ~ 100%"
    inventory.mkdir()
    (inventory / "hosts.yaml").write_text("{}\n")
    assert cron_install(tmp_path, "-i", str(inventory), "--schedule", "@hourly") == 0
    line = (tmp_path / "kubenorn-verify").read_text().strip().splitlines()[-1]
    schedule, user, command = line.split(" ", 2)
    assert (schedule, user) == ("@hourly", "root")
    assert "'" + str(inventory).replace("%", "\\%") + "'" in command
    # What cron hands the shell (% unescaped): the inventory is one word.
    words = shlex.split(command.replace("\\%", "%").split(" && ", 1)[1])
    assert words[-3:] == ["-i", str(inventory), "--quiet"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--schedule", "banana"], "--schedule 'banana'"),
        (["--schedule", "*/5 * * *"], "--schedule"),
        (["--schedule", "61x * * * *"], "--schedule"),
        (["--schedule", "* * * * *\n* * * * * root rm -rf /"], "--schedule"),
        (["--user", "no-such-user-kubenorn"], "--user no-such-user-kubenorn"),
        (["--user", "root\n* * * * * root id"], "--user"),
        (["-i", "/nonexistent/inventory"], "-i /nonexistent/inventory"),
        (["-i", "lab/inventory\n* * * * * root id"], "-i"),
    ],
)
def test_cron_install_refuses_a_bad_field_naming_it_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    args = ["-i", "lab/inventory", *extra] if "-i" not in extra else extra
    assert cron_install(tmp_path, *args) == 3
    error = capsys.readouterr().err
    assert error.startswith(f"error: {named}") and error.count("\n") == 1
    assert not (tmp_path / "kubenorn-verify").exists()
