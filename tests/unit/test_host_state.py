"""tasks.host_state: a host's files and units read in one survey, then answered from memory."""

from __future__ import annotations

import base64
import re

from fakes import Fleet, call
from nornir.core import Nornir

from tasks import host_state
from tasks.files import FileMeta, ensure_file, file_meta, read_file
from tasks.systemd import restart_owed, unit_state

SURVEY = re.compile(r"sh -c .*== units.*", re.DOTALL)


def survey_output(files: dict[str, bytes], units: str = "") -> str:
    lines = []
    for path, data in files.items():
        lines.append(f"H\tf\t644\troot\troot\t{len(data)}\t{path}")
        lines.append(base64.b64encode(data).decode())
    return "\n".join([*lines, "== units", units]) + "\n"


def test_the_survey_parses_files_directories_and_units() -> None:
    output = (
        "H\td\t755\troot\troot\t4096\t/etc/kubernetes\n"
        "H\tf\t600\troot\troot\t3\t/etc/kubernetes/a.key\n"
        f"{base64.b64encode(b'key').decode()}\n"
        "H\tl\t777\troot\troot\t9\t/etc/kubernetes/link\n"
        "H\tf\t644\troot\troot\t2000000\t/etc/kubernetes/big\n"
        "== units\n"
        "Id=kubelet.service\nLoadState=loaded\nUnitFileState=enabled\nActiveState=active\n\n"
        "Id=etcd.service\nLoadState=not-found\nUnitFileState=\nActiveState=inactive\n"
    )
    state = host_state.parse({"/etc/kubernetes": 2, "/etc/systemd/system": 0}, output)
    assert state.entries["/etc/kubernetes"] == host_state.Entry("d", "0755", "root", "root")
    assert state.entries["/etc/kubernetes/a.key"].content == b"key"
    assert state.entries["/etc/kubernetes/big"].content is None  # too large: read when asked
    assert state.units["kubelet.service"] == host_state.UnitState(True, True)
    assert state.units["etcd.service"] == host_state.UnitState(False, False)
    assert state.covers("/etc/kubernetes/ssl/ca.crt")
    assert not state.covers("/etc/kubernetes/ssl/deeper/x")
    assert state.covers("/etc/systemd/system") and not state.covers("/etc/systemd/system/x")


def test_reads_come_from_one_survey_and_writes_keep_it_true(nr: Nornir, fleet: Fleet) -> None:
    host = fleet["h1"]
    host.coreutils = True
    units = "Id=etcd.service\nLoadState=loaded\nUnitFileState=enabled\nActiveState=failed\n"
    host.script[SURVEY] = (0, survey_output({"/etc/hosts": b"127.0.0.1 localhost\n"}, units), "")
    host_state.enable(nr)
    assert call(nr, "h1", lambda task: read_file(task, "/etc/hosts")) == b"127.0.0.1 localhost\n"
    assert call(nr, "h1", lambda task: file_meta(task, "/etc/etcd/etcd.conf")) is None
    assert call(nr, "h1", lambda task: unit_state(task, "etcd.service")) == (True, False)
    assert call(nr, "h1", lambda task: restart_owed(task, "etcd.service")) is False
    assert len(host.lines()) == 1 and host.sftp_log == []  # the survey, nothing else
    # In place: nothing written. Changed: written, and the next read is answered from memory.
    same = call(
        nr,
        "h1",
        lambda task: ensure_file(task, path="/etc/hosts", content=b"127.0.0.1 localhost\n"),
    )
    assert not same.changed and host.writes() == []
    new = b"10.0.0.1 kube.apiserver\n"
    assert call(nr, "h1", lambda task: ensure_file(task, path="/etc/hosts", content=new)).changed
    opened, ran = len(host.sftp_log), len(host.lines())  # the write (and getent for ids)
    assert call(nr, "h1", lambda task: read_file(task, "/etc/hosts")) == new
    assert call(nr, "h1", lambda task: file_meta(task, "/etc/hosts")) == FileMeta(
        "0644", "root", "root"
    )
    assert len(host.sftp_log) == opened and len(host.lines()) == ran


def test_without_opting_in_nothing_is_surveyed(nr: Nornir, fleet: Fleet) -> None:
    fleet["h1"].coreutils = True
    assert call(nr, "h1", lambda task: read_file(task, "/etc/hosts")) is None
    assert fleet["h1"].lines() == []
