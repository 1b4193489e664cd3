"""The security tasks on fake hosts: the Secrets rewrite (retried on a conflict, never printing
a Secret) and the security check's one survey command, judged on the control machine."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import Fleet, run_on
from nornir.core.task import MultiResult, Result
from test_cni import NODE, cni_inventory

from kubenorn.cluster import load_cluster
from kubenorn.nornir_setup import init_nornir
from kubenorn.pki import encryption
from kubenorn.pki.store import Store
from runbooks import pki
from tasks.encryption import rewrite_secrets
from tasks.security import check_security

CONTROLLER = "h1"
REWRITE = re.compile(
    r"sh -c .*kubectl --kubeconfig .* replace -f -.* sh /etc/kubernetes/admin\.kubeconfig", re.S
)


def run_task(inventory: Path, host: str, task: Callable[..., Result]) -> MultiResult:
    """`task` on one fake host of `inventory`, given the cluster; connections closed after."""
    nr = init_nornir(inventory)
    try:
        return run_on(nr, host, task, cluster=load_cluster(inventory))
    finally:
        nr.close_connections(on_good=True, on_failed=True)


def replies(*answers: tuple[int, str, str]):  # noqa: ANN201 - a fake's handler
    queue = list(answers)
    return lambda line, stdin: queue.pop(0)


@pytest.mark.parametrize(
    ("answers", "result", "changed", "attempts"),
    [
        ([(0, "secret/a replaced\nsecret/b replaced\n", "")], "rewrote 2 Secrets", True, 1),
        ([(1, "", "error: no objects passed to replace\n")], "no Secrets to rewrite", False, 1),
        (
            [
                (
                    1,
                    "secret/a replaced\n",
                    'Operation cannot be fulfilled on secrets "b": the object has been modified',
                ),
                (0, "secret/a replaced\nsecret/b replaced\n", ""),
            ],
            "rewrote 2 Secrets",
            True,
            2,
        ),
    ],
    ids=["rewritten", "none", "a conflict, retried"],
)
def test_every_secret_is_rewritten_through_the_apiserver(
    fleet: Fleet,
    tmp_path: Path,
    answers: list,
    result: str,
    changed: bool,
    attempts: int,  # type: ignore[type-arg]
) -> None:
    inventory = cni_inventory(tmp_path / "cluster", "1.37.2")
    host = fleet[CONTROLLER]
    host.script[REWRITE] = replies(*answers)
    outcome = run_task(inventory, CONTROLLER, rewrite_secrets)
    assert not outcome.failed, outcome[0].exception
    assert (outcome[0].result, outcome[0].changed) == (result, changed)
    assert len(host.lines()) == attempts
    # The list travels from get to replace inside the host's shell, never through kubenorn.
    argv = shlex.split(host.lines()[0])
    assert argv[:2] == ["sh", "-c"] and "$1" in argv[2] and argv[-1].endswith("admin.kubeconfig")


def test_a_rewrite_that_keeps_failing_fails_the_host_with_the_apiservers_words(
    fleet: Fleet, tmp_path: Path
) -> None:
    inventory = cni_inventory(tmp_path / "cluster", "1.37.2")
    fleet[CONTROLLER].script[REWRITE] = (
        1,
        "",
        "error: the server has asked for the client to provide credentials\n",
    )
    outcome = run_task(inventory, CONTROLLER, rewrite_secrets)
    assert outcome.failed
    assert "rewriting Secrets failed: error: the server has asked" in str(outcome[0].exception)


SURVEY = re.compile(r"sh -c .*@unit.* sh kubelet\.service kube-proxy\.service -- .*", re.S)


def test_the_security_check_runs_one_command_per_host_and_names_host_and_check(
    fleet: Fleet, tmp_path: Path
) -> None:
    inventory = cni_inventory(tmp_path / "cluster", "1.37.2")
    output = "\n".join(
        [
            "@unit kubelet.service",
            "@pid 7",
            "@unitfile /etc/systemd/system/kubelet.service",
            "@arg /usr/bin/kubelet",
            "@arg --config=/etc/kubernetes/kubelet-config.yaml",
            "@configfile /etc/kubernetes/kubelet-config.yaml",
            "@config authentication:",
            "@config   anonymous:",
            "@config     enabled: true",
            "@unit kube-proxy.service",
            "@pid 0",
            "@stat 644 root root /etc/systemd/system/kubelet.service",
        ]
    )
    fleet[NODE].script[SURVEY] = (0, output, "")
    outcome = run_task(inventory, NODE, check_security)
    assert not outcome.failed, outcome[0].exception
    assert len(fleet[NODE].lines()) == 1
    bad = {f.check: f for f in outcome[0].result if not f.ok}
    assert bad["security.4.2.1"].host == NODE
    assert bad["security.4.2.1"].detail.startswith("kubelet: --anonymous-auth")
    assert "mode 644, at most 600" in bad["security.4.1.1"].detail
    assert outcome[0].result[-1].check == "security"
    assert "not running, flags not judged: kube-proxy" in outcome[0].result[-1].detail


def test_the_reference_profile_is_noted_not_surveyed(fleet: Fleet, tmp_path: Path) -> None:
    inventory = cni_inventory(tmp_path / "cluster", "1.6.0")
    outcome = run_task(inventory, NODE, check_security)
    assert fleet[NODE].lines() == []
    [finding] = outcome[0].result
    assert (finding.check, finding.status) == ("security", "OK")
    assert "profile 1.6 has no CIS table" in finding.detail


def test_rotating_the_encryption_key_alone(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    inventory = cni_inventory(tmp_path / "cluster", "1.37.2")
    args = ["-i", str(inventory), "rotate", "--encryption-key"]
    assert pki.main([*args, "kube.node01"]) == 3
    assert "--encryption-key rotates that key alone" in capsys.readouterr().err
    assert pki.main(args) == 3  # no state yet
    assert "encryption.json is missing: run `python -m runbooks.pki init` first" in (
        capsys.readouterr().err
    )


def test_the_reference_profile_has_no_key_to_rotate(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    inventory = cni_inventory(tmp_path / "cluster", "1.6.0")
    assert pki.main(["-i", str(inventory), "rotate", "--encryption-key"]) == 3
    assert "profile 1.6 does not encrypt Secrets at rest" in capsys.readouterr().err


class NoRun:
    """A run that must not be asked to do anything: which hosts it has, which failed."""

    def __init__(self, hosts: list[str], failed: set[str] | None = None) -> None:
        self.hosts, self.failed = hosts, failed or set()

    def step(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no step expected")


@pytest.mark.parametrize(
    ("dry_run", "hosts", "failed", "said"),
    [
        (True, [CONTROLLER, NODE], set(), ["would turn Secrets encryption on (phase added)"]),
        (False, [NODE], set(), ["did not turn Secrets encryption on: not every controller"]),
        (False, [CONTROLLER, NODE], {CONTROLLER}, ["did not turn Secrets encryption on"]),
    ],
)
def test_a_deploy_turns_encryption_on_only_with_every_controller(
    tmp_path: Path, dry_run: bool, hosts: list[str], failed: set[str], said: list[str]
) -> None:
    cluster = load_cluster(cni_inventory(tmp_path / "cluster", "1.37.2"))
    store = Store(cluster.pki.dir)
    store.create()
    encryption.ensure_state(store, "aescbc")
    lines = pki.finish_encryption(NoRun(hosts, failed), cluster, print, dry_run=dry_run)  # type: ignore[arg-type]
    assert len(lines) == 1 and lines[0].startswith(said[0]), lines
    assert encryption.required_state(store).phase == "added"  # nothing moved


def test_a_deploy_of_a_stable_key_does_nothing(tmp_path: Path) -> None:
    cluster = load_cluster(cni_inventory(tmp_path / "cluster", "1.37.2"))
    store = Store(cluster.pki.dir)
    store.create()
    encryption.save_state(store, encryption.EncryptionState(encryption.new_key("aescbc")))
    assert pki.finish_encryption(NoRun([CONTROLLER]), cluster, print, dry_run=False) == []  # type: ignore[arg-type]
