"""The Secrets encryption key: its state on the control machine, the apiservers' configuration
for each phase, and the rotation's order, checked against three fake apiservers."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kubenorn.pki import encryption
from kubenorn.pki.encryption import (
    IDENTITY,
    EncryptionKey,
    EncryptionState,
    RotationSteps,
    config_text,
    load_state,
    rotate_key,
)
from kubenorn.pki.store import PkiError, Store

OLD = EncryptionKey("kubenorn-old", "aescbc", "A" * 43 + "=")
NEW = EncryptionKey("kubenorn-new", "aescbc", "B" * 43 + "=")


def short(state: EncryptionState) -> str:
    """The keys of a phase, shortly: old+new."""
    return "+".join(k.name.removeprefix("kubenorn-") for k in state.key_order())


def providers(state: EncryptionState) -> list[str]:
    document = yaml.safe_load(config_text(state))
    entries = document["resources"][0]["providers"]
    names = []
    for entry in entries:
        ((provider, settings),) = entry.items()
        names.append(provider if provider == "identity" else settings["keys"][0]["name"])
    return names


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("stable", ["kubenorn-old", "identity"]),
        ("added", ["kubenorn-old", "kubenorn-new", "identity"]),
        ("promoted", ["kubenorn-new", "kubenorn-old", "identity"]),
        ("rewritten", ["kubenorn-new", "kubenorn-old", "identity"]),
        ("retiring", ["kubenorn-new", "identity"]),
    ],
)
def test_each_phase_orders_the_keys_the_writing_one_first(phase: str, expected: list[str]) -> None:
    state = EncryptionState(OLD, None if phase == "stable" else NEW, phase)  # type: ignore[arg-type]
    assert providers(state) == expected


def test_the_configuration_is_an_encryption_configuration_for_secrets() -> None:
    document = yaml.safe_load(config_text(EncryptionState(OLD)))
    assert document["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert document["kind"] == "EncryptionConfiguration"
    assert document["resources"][0]["resources"] == ["secrets"]
    first = document["resources"][0]["providers"][0]
    assert first == {"aescbc": {"keys": [{"name": OLD.name, "secret": OLD.secret}]}}
    # kube-bench's 1.2.28 reads the line after `providers:`: the first provider's name.
    lines = config_text(EncryptionState(OLD)).splitlines()
    assert lines[lines.index("  providers:") + 1].strip() == "- aescbc:"


def test_a_keys_secret_is_never_in_its_repr() -> None:
    assert OLD.secret not in repr(EncryptionState(OLD, NEW, "added"))
    assert OLD.prefix == "k8s:enc:aescbc:v1:kubenorn-old:"


def test_the_phases_advance_in_order_and_end_with_only_the_new_key() -> None:
    state = EncryptionState(OLD).begin(NEW)
    seen = [state.phase]
    while state.phase != "stable":
        state = state.advance()
        seen.append(state.phase)
    assert seen == ["added", "promoted", "rewritten", "retiring", "stable"]
    assert state == EncryptionState(NEW)
    with pytest.raises(PkiError, match="no key rotation is under way"):
        state.advance()
    with pytest.raises(PkiError, match="already under way"):
        EncryptionState(OLD).begin(NEW).begin(NEW)


def test_init_makes_one_key_kept_private_and_never_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path / "pki")
    store.create()
    state, created = encryption.ensure_state(store, "secretbox")
    # On its way in from identity: the first deploy teaches every apiserver the key first.
    assert created and (state.current, state.phase) == (IDENTITY, "added")
    assert state.incoming is not None and state.incoming.provider == "secretbox"
    assert state.introducing
    assert providers(state) == ["identity", state.incoming.name]
    path = encryption.state_path(store)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created = encryption.ensure_state(store, "aescbc")
    assert (again, created) == (state, False)
    assert load_state(store) == state


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "not a usable encryption key state"),
        (json.dumps({"phase": "sideways", "current": None}), "unknown phase 'sideways'"),
        (
            json.dumps(
                {
                    "phase": "stable",
                    "current": {"name": "k", "provider": "aescbc", "secret": "c2hvcnQ="},
                }
            ),
            "not 32 bytes",
        ),
    ],
)
def test_an_unusable_state_names_its_file(tmp_path: Path, content: str, problem: str) -> None:
    store = Store(tmp_path)
    encryption.state_path(store).write_text(content)
    with pytest.raises(PkiError, match=problem) as raised:
        load_state(store)
    assert str(encryption.state_path(store)) in str(raised.value)


def test_turning_encryption_on_is_a_rotation_from_identity() -> None:
    """A cluster running unencrypted: every apiserver learns the key before any writes with it,
    then every Secret is rewritten encrypted; identity stays last, for reading only."""
    before = EncryptionState(IDENTITY)
    fake = FakeCluster(before)
    introducing = EncryptionState(IDENTITY, NEW, "added")
    fake.saved.append(introducing)  # by pki init
    done = rotate_key(introducing, lambda: OLD, fake.steps())
    assert done[0] == "resuming at phase added"
    assert fake.events[:3] == [
        "restart c1 identity+new",
        "restart c2 identity+new",
        "restart c3 identity+new",
    ]
    assert fake.saved[-1] == EncryptionState(NEW)
    assert set(fake.secrets.values()) == {NEW.name}
    assert providers(EncryptionState(NEW)) == ["kubenorn-new", "identity"]
    assert not EncryptionState(NEW).introducing


class FakeCluster:
    """Three apiservers sharing one etcd: each knows the keys it last restarted with; every
    apiserver writes a Secret after each restart, and every Secret must stay readable by all."""

    def __init__(self, state: EncryptionState, *, fail_on: tuple[str, int] | None = None) -> None:
        self.known = {name: state.key_order() for name in ("c1", "c2", "c3")}
        self.secrets: dict[str, str] = {"s0": state.key_order()[0].name}
        self.events: list[str] = []
        self.saved: list[EncryptionState] = []
        self.fail_on = fail_on  # (phase, apiserver index): that restart fails

    def steps(self) -> RotationSteps:
        return RotationSteps(apply=self.apply, rewrite=self.rewrite, save=self.save)

    def save(self, state: EncryptionState) -> None:
        self.saved.append(state)
        self.events.append(f"save {state.phase}")

    def apply(self, state: EncryptionState) -> None:
        assert self.saved and self.saved[-1] == state, "applied before it was saved"
        for index, name in enumerate(self.known):
            if self.fail_on == (state.phase, index):
                raise RuntimeError(f"{name} did not come back")
            self.known[name] = state.key_order()
            self.events.append(f"restart {name} {short(state)}")
            self.write(name)
            self.assert_readable()

    def write(self, apiserver: str) -> None:
        self.secrets[f"s{len(self.secrets)}"] = self.known[apiserver][0].name

    def rewrite(self) -> None:
        self.events.append("rewrite")
        writer = self.known["c1"][0].name
        self.secrets = dict.fromkeys(self.secrets, writer)
        self.assert_readable()

    def assert_readable(self) -> None:
        for apiserver, keys in self.known.items():
            names = {k.name for k in keys}
            unreadable = [s for s, key in self.secrets.items() if key not in names]
            assert not unreadable, f"{apiserver} cannot read {unreadable}"


def test_a_rotation_adds_promotes_rewrites_then_retires_one_apiserver_at_a_time() -> None:
    fake = FakeCluster(EncryptionState(OLD))
    done = rotate_key(EncryptionState(OLD), lambda: NEW, fake.steps())
    assert fake.events == [
        "save added",
        "restart c1 old+new",
        "restart c2 old+new",
        "restart c3 old+new",
        "save promoted",
        "restart c1 new+old",
        "restart c2 new+old",
        "restart c3 new+old",
        "rewrite",
        "save rewritten",
        "save retiring",
        "restart c1 new",
        "restart c2 new",
        "restart c3 new",
        "save stable",
    ]
    assert fake.saved[-1] == EncryptionState(NEW)
    assert set(fake.secrets.values()) == {NEW.name}
    assert done[0] == "added kubenorn-new as a read-only key"
    assert done[-2:] == ["applied retiring: kubenorn-new", "reached stable"]


@pytest.mark.parametrize(("phase", "index"), [("added", 1), ("promoted", 2), ("retiring", 0)])
def test_an_interrupted_rotation_stops_and_resumes_where_it_stopped(phase: str, index: int) -> None:
    fake = FakeCluster(EncryptionState(OLD), fail_on=(phase, index))
    with pytest.raises(RuntimeError, match="did not come back"):
        rotate_key(EncryptionState(OLD), lambda: NEW, fake.steps())
    stopped = fake.saved[-1]
    assert stopped.phase == phase
    fake.fail_on = None
    fake.events.clear()

    def no_new_key() -> EncryptionKey:
        raise AssertionError("a resumed rotation makes no new key")

    done = rotate_key(stopped, no_new_key, fake.steps())
    assert done[0] == f"resuming at phase {phase}"
    # The saved phase is applied again on every apiserver first, then the rest follows.
    assert fake.events[0] == f"restart c1 {short(stopped)}"
    assert fake.saved[-1] == EncryptionState(NEW)
    assert set(fake.secrets.values()) == {NEW.name}


def test_a_new_key_is_named_after_the_moment_it_was_made() -> None:
    key = encryption.new_key("aescbc", datetime(2026, 11, 29, 15, 4, 5, tzinfo=UTC))
    assert key.name == "kubenorn-20261129150405"
    assert key.prefix == "k8s:enc:aescbc:v1:kubenorn-20261129150405:"
    assert len(__import__("base64").b64decode(key.secret)) == 32
