"""The remote primitives against the fake connection: commands built, results, diffs, puts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fake_ssh
import pytest
from fake_ssh import FakeFile, FakeHost
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
from nornir.core import Nornir

from runbooks import facts as facts_runbook
from tasks.facts import gather_facts
from tasks.files import ensure_directory, ensure_file, read_file
from tasks.ssh import SUDO_PASSWORD_ENV, command_line, run_command

ONE = "h1"


def only(nr: Nornir, name: str = ONE) -> Nornir:
    return nr.filter(name=name)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["echo", "a b"], "echo 'a b'"),
        (["sh", "-c", "x; y"], "sh -c 'x; y'"),
        (["echo", "$(id)"], "echo '$(id)'"),
        (["printf", "it's"], "printf 'it'\"'\"'s'"),
    ],
)
def test_arguments_are_quoted_once(argv: list[str], line: str) -> None:
    assert command_line(argv) == line


def test_sudo_only_for_other_users_and_non_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SUDO_PASSWORD_ENV, raising=False)
    assert command_line(["id"], sudo=True, user="root") == "id"
    assert command_line(["id"], sudo=True, user="deploy") == "sudo -n -- id"
    monkeypatch.setenv(SUDO_PASSWORD_ENV, "s3cret")
    assert command_line(["id"], sudo=True, user="deploy") == "sudo -S -p '' -- id"


def test_the_sudo_password_goes_to_stdin_never_the_command_line(
    nr: Nornir, fake_hosts: dict[str, FakeHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUDO_PASSWORD_ENV, "s3cret")
    fake_hosts["deployer"].script["sudo -S -p '' -- id"] = (0, "uid=0\n", "")
    result = only(nr, "deployer").run(task=run_command, argv=["id"], sudo=True)
    assert not result.failed
    [(line, stdin)] = fake_hosts["deployer"].commands
    assert "s3cret" not in line and stdin == b"s3cret\n"


def test_stdout_stderr_and_status_come_back_separately(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    fake_hosts[ONE].script["check"] = (3, "some output\n", "some error\n")
    result = only(nr).run(task=run_command, argv=["check"], ok_codes=(0, 3))[ONE][0]
    assert (result.rc, result.stdout, result.stderr) == (3, "some output\n", "some error\n")
    assert fake_hosts[ONE].nodelay, "TCP_NODELAY was not set on the transport's socket"


def test_an_unaccepted_status_fails_the_host_naming_command_and_stderr(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    fake_hosts[ONE].script["apt-get install x"] = (100, "", "E: Unable to locate package x\n")
    fake_hosts["h2"].script["apt-get install x"] = (0, "", "")
    results = nr.filter(filter_func=lambda h: h.name in (ONE, "h2")).run(
        task=run_command, argv=["apt-get", "install", "x"]
    )
    assert list(results.failed_hosts) == [ONE]
    message = str(results[ONE][0].exception)
    assert message == "h1: `apt-get install x` exited 100: E: Unable to locate package x"


def test_a_hung_command_times_out_with_a_clear_message(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    fake_hosts[ONE].hang.add("sleep 1000")
    result = only(nr).run(task=run_command, argv=["sleep", "1000"], timeout=0.2)
    assert "h1: `sleep 1000` did not finish within the timeout" in str(result[ONE][0].exception)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            NetmikoTimeoutException("TCP connection to device failed.\n\nCommon causes"),
            "h1 (192.0.2.1:22): cannot connect: TCP connection to device failed.",
        ),
        (
            NetmikoAuthenticationException("Authentication to device failed.\n\nbad key"),
            "h1 (192.0.2.1): authentication failed: bad key",
        ),
    ],
)
def test_connection_failures_name_the_host(
    nr: Nornir, fake_hosts: dict[str, FakeHost], error: Exception, expected: str
) -> None:
    fake_ssh.CONNECT_ERRORS["192.0.2.1"] = error
    result = only(nr).run(task=run_command, argv=["true"])
    assert str(result[ONE][0].exception) == expected


def test_a_new_file_is_put_atomically_then_left_alone(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    host = fake_hosts[ONE]
    first = only(nr).run(
        task=ensure_file, path="/etc/x.conf", content="a=1\n", mode="0640", owner="etcd"
    )[ONE][0]
    assert first.changed and "--- /dev/null" in first.diff and "+a=1" in first.diff
    writes = [entry for entry in host.sftp_log if entry[0] != "open" or "w" in entry[2]]
    assert writes == [
        ("open", "/etc/.x.conf.kubenorn-tmp", "wb"),
        ("chmod", "/etc/.x.conf.kubenorn-tmp", "0o640"),
        ("chown", "/etc/.x.conf.kubenorn-tmp", "110:115"),
        ("rename", "/etc/.x.conf.kubenorn-tmp", "/etc/x.conf"),
    ]
    entry = host.files["/etc/x.conf"]
    assert (entry.data, entry.mode, entry.uid, entry.gid) == (b"a=1\n", 0o640, 110, 115)
    host.sftp_log.clear()
    second = only(nr).run(
        task=ensure_file, path="/etc/x.conf", content="a=1\n", mode="0640", owner="etcd"
    )[ONE][0]
    assert not second.changed and second.diff == ""
    assert all(entry[0] in ("open",) and entry[2] == "rb" for entry in host.sftp_log)


def test_a_content_change_gives_a_unified_diff(nr: Nornir, fake_hosts: dict[str, FakeHost]) -> None:
    fake_hosts[ONE].files["/etc/x.conf"] = FakeFile(b"a=1\nb=2\n")
    result = only(nr).run(task=ensure_file, path="/etc/x.conf", content="a=1\nb=3\n")[ONE][0]
    assert result.changed
    assert "-b=2\n+b=3\n" in result.diff
    assert fake_hosts[ONE].files["/etc/x.conf"].data == b"a=1\nb=3\n"


def test_a_mode_or_owner_change_does_not_rewrite_the_content(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    fake_hosts[ONE].files["/etc/x.conf"] = FakeFile(b"same\n", mode=0o600)
    result = only(nr).run(
        task=ensure_file, path="/etc/x.conf", content="same\n", mode="0644", owner="etcd"
    )[ONE][0]
    assert result.changed
    assert result.diff == "/etc/x.conf: mode 0600 -> 0644, owner root -> etcd, group root -> etcd\n"
    assert ("open", "/etc/.x.conf.kubenorn-tmp", "wb") not in fake_hosts[ONE].sftp_log


def test_dry_run_computes_the_diff_and_writes_nothing(
    fake_hosts: dict[str, FakeHost], inventory_dir: Path
) -> None:
    from kubenorn.nornir_setup import init_nornir

    fake_hosts[ONE].files["/etc/x.conf"] = FakeFile(b"old\n")
    dry = init_nornir(inventory_dir, dry_run=True)
    result = only(dry).run(task=ensure_file, path="/etc/x.conf", content="new\n")[ONE][0]
    assert result.changed and "-old\n+new\n" in result.diff
    assert fake_hosts[ONE].files["/etc/x.conf"].data == b"old\n"
    assert not any("w" in entry[2] for entry in fake_hosts[ONE].sftp_log if entry[0] == "open")


def test_secrets_never_show_in_the_diff(nr: Nornir, fake_hosts: dict[str, FakeHost]) -> None:
    fake_hosts[ONE].files["/etc/k.key"] = FakeFile(b"OLD-PRIVATE-KEY\n", mode=0o600)
    result = only(nr).run(
        task=ensure_file, path="/etc/k.key", content="NEW-PRIVATE-KEY\n", mode="0600", secret=True
    )[ONE][0]
    assert result.changed
    assert "PRIVATE-KEY" not in result.diff and "secret content changed" in result.diff


def test_an_unknown_owner_fails_naming_the_user(nr: Nornir) -> None:
    result = only(nr).run(task=ensure_file, path="/etc/x", content="x", owner="nobody-here")
    assert "h1: no user named 'nobody-here'" in str(result[ONE][0].exception)


def test_a_user_created_mid_run_is_found(nr: Nornir, fake_hosts: dict[str, FakeHost]) -> None:
    only(nr).run(task=ensure_file, path="/etc/a", content="a")  # accounts read and cached
    fake_hosts[ONE].script["getent passwd"] = (0, fake_ssh.PASSWD + "kube:x:200:200::/:/x\n", "")
    fake_hosts[ONE].script["getent group"] = (0, fake_ssh.GROUPS + "kube:x:200:\n", "")
    result = only(nr).run(task=ensure_file, path="/etc/b", content="b", owner="kube")
    assert not result.failed
    assert fake_hosts[ONE].files["/etc/b"].uid == 200


def test_a_write_failing_midway_leaves_the_target_untouched(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    host = fake_hosts[ONE]
    host.files["/etc/x.conf"] = FakeFile(b"old content\n")
    host.fail_write_after = 4
    result = only(nr).run(task=ensure_file, path="/etc/x.conf", content="new content\n")
    assert result.failed and "cannot write /etc/x.conf" in str(result[ONE][0].exception)
    assert host.files["/etc/x.conf"].data == b"old content\n"
    host.fail_write_after = None
    nr.data.reset_failed_hosts()  # else Nornir silently skips the host that failed
    assert not only(nr).run(task=ensure_file, path="/etc/x.conf", content="new content\n").failed
    assert host.files["/etc/x.conf"].data == b"new content\n"
    assert "/etc/.x.conf.kubenorn-tmp" not in host.files


def test_a_non_root_user_stages_and_installs_with_sudo(
    nr: Nornir, fake_hosts: dict[str, FakeHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SUDO_PASSWORD_ENV, raising=False)
    host = fake_hosts["deployer"]
    host.script[re.compile(r"sudo -n -- (install|mv|rm) .*")] = (0, "", "")
    host.script[re.compile(r"rm -f -- /tmp/\.kubenorn-.*")] = (0, "", "")
    result = only(nr, "deployer").run(task=ensure_file, path="/etc/y", content="y\n")
    assert not result.failed
    lines = [line for line, _ in host.commands if line.startswith("sudo")]
    assert lines[0].startswith("sudo -n -- install -m 0644 -o root -g root -- /tmp/.kubenorn-")
    assert lines[0].endswith(" /etc/.y.kubenorn-tmp")
    assert lines[1] == "sudo -n -- mv -f -T -- /etc/.y.kubenorn-tmp /etc/y"


def test_read_file_returns_none_for_a_missing_file(nr: Nornir) -> None:
    assert only(nr).run(task=lambda task: read_file(task, "/nope"))[ONE][0].result is None


def test_ensure_directory_creates_then_leaves_alone(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    host = fake_hosts[ONE]
    host.script["install -d -m 0750 -o root -g etcd -- /etc/etcd/ssl"] = (0, "", "")
    created = only(nr).run(task=ensure_directory, path="/etc/etcd/ssl", mode="0750", group="etcd")[
        ONE
    ][0]
    assert created.changed and created.diff == "/etc/etcd/ssl/: created\n"
    host.files["/etc/etcd/ssl"] = FakeFile(b"", 0o750, 0, 115, directory=True)
    again = only(nr).run(task=ensure_directory, path="/etc/etcd/ssl", mode="0750", group="etcd")
    assert not again[ONE][0].changed
    host.files["/etc/file"] = FakeFile(b"x")
    clash = only(nr).run(task=ensure_directory, path="/etc/file")
    assert "h1: /etc/file exists and is not a directory" in str(clash[ONE][0].exception)


DEBIAN = """== os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
ID=debian
VERSION_ID="12"
== kernel
6.1.0-18-amd64
== hostname
kube.node01
== init
systemd
== managers
/usr/bin/apt-get
== addresses
2: host0    inet 10.240.0.21/24 brd 10.240.0.255 scope global host0\\       valid_lft forever
"""


def test_facts_are_gathered_once_per_run_and_refreshed_on_request(
    nr: Nornir, fake_hosts: dict[str, FakeHost]
) -> None:
    host = fake_hosts[ONE]
    host.script[re.compile(r"sh -c .*os-release.*", re.S)] = (0, DEBIAN, "")
    facts = only(nr).run(task=gather_facts)[ONE][0].result
    assert (facts.os_id, facts.os_version, facts.package_manager) == ("debian", "12", "apt")
    assert (facts.hostname, facts.addresses, facts.init_system) == (
        "kube.node01",
        ("10.240.0.21",),
        "systemd",
    )
    only(nr).run(task=gather_facts)
    assert len(host.commands) == 1
    only(nr).run(task=gather_facts, refresh=True)
    assert len(host.commands) == 2


def test_the_facts_runbook_reports_every_host_and_a_failure(
    fake_hosts: dict[str, FakeHost],
    inventory_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, host in fake_hosts.items():
        answer = (1, "", "sh: cannot run\n") if name == "h2" else (0, DEBIAN, "")
        host.script[re.compile(r"sh -c .*os-release.*", re.S)] = answer
    report = tmp_path / "facts.json"
    code = facts_runbook.main(["-i", str(inventory_dir), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED h2 facts:" in out and "sh: cannot run" in out and "Traceback" not in out
    document = json.loads(report.read_text())
    statuses = {r["host"]: r["status"] for r in document["records"]}
    assert statuses == {"h1": "ok", "h2": "failed", "deployer": "ok"}
    assert document["run"]["runbook"] == "facts" and document["run"]["exit_code"] == 1
