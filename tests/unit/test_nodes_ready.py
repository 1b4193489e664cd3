"""deploy's last step: every node it deployed is Ready as the apiserver sees it, or it names
the ones that are not (NotReady, not registered) and why the list itself failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from time import sleep as real_sleep
from typing import Any

import pytest
from fakes import run_on
from nornir.core import Nornir

from tasks import kube_verify
from tasks.kube_verify import wait_nodes_ready

NODES = ["n1", "n2"]


def node(name: str, ready: bool, kubelet: str = "v1.37.2") -> dict[str, Any]:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    status = {"conditions": [condition], "nodeInfo": {"kubeletVersion": kubelet}}
    return {"metadata": {"name": name}, "status": status}


Answer = tuple[dict[str, Any] | None, str]
CASES: dict[str, tuple[list[Answer], str | None]] = {
    "Ready at once": ([({"items": [node("n1", True), node("n2", True)]}, "")], None),
    "one Ready after a poll": (
        [
            ({"items": [node("n1", True), node("n2", False)]}, ""),
            ({"items": [node("n1", True), node("n2", True)]}, ""),
        ],
        None,
    ),
    "one never registers": (
        [({"items": [node("n1", False)]}, "")],
        "n1 NotReady, n2 not registered",
    ),
    "the apiserver never lists": (
        [(None, "connection refused")],
        "n1 not registered, n2 not registered (nodes not listed: connection refused)",
    ),
}


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Answer]]:
    """The node lists the apiserver gives, one per poll (the last repeats); polls 20 ms apart."""
    given: list[Answer] = []
    polls = iter(range(1000))

    def api_reads(task: Any, cluster: Any, paths: list[str]) -> tuple[float, list[Answer]]:
        assert paths == ["/api/v1/nodes"]
        return 0.0, [given[min(next(polls), len(given) - 1)]]

    monkeypatch.setattr(kube_verify, "api_reads", api_reads)
    monkeypatch.setattr(kube_verify.time, "sleep", lambda seconds: real_sleep(0.02))
    yield given


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_nodes_deployed_are_waited_for_until_ready_or_named(
    make_nr: Callable[..., Nornir], answers: list[Answer], case: tuple[list[Answer], str | None]
) -> None:
    given, error = case
    answers.extend(given)
    result = run_on(make_nr(), "h1", wait_nodes_ready, cluster=None, nodes=NODES, timeout=0.3)
    assert result.failed is (error is not None)
    if error is None:
        assert result[0].changed is False and result[0].result == "Ready: n1, n2"
    else:
        assert f"after 0s: {error}" in str(result[0].exception)


def test_a_dry_run_asks_nothing(make_nr: Callable[..., Nornir], answers: list[Answer]) -> None:
    result = run_on(make_nr(dry_run=True), "h1", wait_nodes_ready, cluster=None, nodes=NODES)
    assert not result.failed and result[0].changed is False


# After an upgrade: Ready only counts once a kubelet of the new version reported it.
UPGRADED: dict[str, tuple[list[Answer], str | None]] = {
    "the old kubelet's Ready, then the new one's": (
        [
            ({"items": [node("n1", True, "v1.36.3"), node("n2", True)]}, ""),
            ({"items": [node("n1", True), node("n2", True)]}, ""),
        ],
        None,
    ),
    "the new kubelet never reports": (
        [({"items": [node("n1", True, "v1.36.3"), node("n2", True)]}, "")],
        "n1 Ready as kubelet v1.36.3, not v1.37.2 yet",
    ),
}


@pytest.mark.parametrize("case", UPGRADED.values(), ids=UPGRADED.keys())
def test_an_upgraded_node_is_ready_once_its_new_kubelet_says_so(
    make_nr: Callable[..., Nornir], answers: list[Answer], case: tuple[list[Answer], str | None]
) -> None:
    given, error = case
    answers.extend(given)
    result = run_on(
        make_nr(),
        "h1",
        wait_nodes_ready,
        cluster=None,
        nodes=NODES,
        kubelet_version="1.37.2",
        timeout=0.3,
    )
    assert result.failed is (error is not None)
    if error is not None:
        assert str(result[0].exception).endswith(f"after 0s: {error}")
