"""The key that encrypts Secrets at rest: its state on the control machine, and its rotation.

The state (`encryption.json` in the PKI directory, 0600) holds the current key and, during a
rotation, the incoming one and the phase reached. The apiservers' EncryptionConfiguration is
derived from it, so a deploy in the middle of a rotation writes what that phase needs:

    phase      providers, in order (the first one writes; every one reads)
    stable     current, identity
    added      current, incoming, identity   the new key known everywhere before anyone writes
    promoted   incoming, current, identity   every apiserver writes with the new key
    rewritten  incoming, current, identity   every Secret rewritten: none left on the old key
    retiring   incoming, identity            the old key removed from every apiserver
    (stable)   incoming, identity            done: incoming is now current

`identity` reads last, for Secrets written before encryption was turned on (until rewritten).
Each phase is reached only once the one before it is on every apiserver, so no apiserver ever
meets a Secret written with a key it does not know. The secret bytes never appear in a repr.

Turning encryption on is the same rotation, from `identity` (no encryption) to the first key:
`pki init` saves it at phase `added` (identity writes, the key only reads), so a deploy to a
cluster already running unencrypted first teaches every apiserver the key; the deploy then
finishes the rotation (promoted, every Secret rewritten encrypted, retiring, stable).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from kubenorn.pki.store import SECRET_MODE, PkiError, Store, write_atomic

STATE_FILE = "encryption.json"
Phase = Literal["stable", "added", "promoted", "rewritten", "retiring"]
NEXT: dict[Phase, Phase] = {
    "added": "promoted",
    "promoted": "rewritten",
    "rewritten": "retiring",
    "retiring": "stable",
}
KEY_BYTES = 32  # aescbc: AES-256; secretbox: XSalsa20-Poly1305's 32-byte key


@dataclass(frozen=True)
class EncryptionKey:
    """One key: its name (in every Secret it wrote: k8s:enc:PROVIDER:v1:NAME:) and provider."""

    name: str
    provider: str
    secret: str = field(repr=False)  # base64 of KEY_BYTES random bytes

    @property
    def prefix(self) -> str:
        """How a Secret written with this key starts in etcd."""
        return f"k8s:enc:{self.provider}:v1:{self.name}:"


IDENTITY = EncryptionKey("identity", "identity", "")  # no encryption: what a cluster starts with


@dataclass(frozen=True)
class EncryptionState:
    current: EncryptionKey
    incoming: EncryptionKey | None = None
    phase: Phase = "stable"

    def key_order(self) -> tuple[EncryptionKey, ...]:
        """The apiservers' keys for this phase, the writing one first."""
        if self.incoming is None or self.phase == "stable":
            return (self.current,)
        if self.phase == "added":
            return (self.current, self.incoming)
        if self.phase == "retiring":
            return (self.incoming,)
        return (self.incoming, self.current)

    @property
    def introducing(self) -> bool:
        """Whether this is encryption being turned on (from identity), not yet finished."""
        return self.current == IDENTITY and self.phase != "stable"

    def begin(self, new_key: EncryptionKey) -> EncryptionState:
        """A rotation's first phase: `new_key` known everywhere, not yet used."""
        if self.phase != "stable":
            raise PkiError(f"a key rotation is already under way (phase {self.phase})")
        if new_key.name == self.current.name:
            raise PkiError(f"the new key has the current key's name {new_key.name}")
        return EncryptionState(self.current, new_key, "added")

    def advance(self) -> EncryptionState:
        """The next phase; after `retiring`, the incoming key becomes current, the old forgotten."""
        if self.phase == "stable" or self.incoming is None:
            raise PkiError("no key rotation is under way")
        following = NEXT[self.phase]
        if following == "stable":
            return EncryptionState(self.incoming)
        return replace(self, phase=following)


def new_key(provider: str, now: datetime | None = None) -> EncryptionKey:
    """A fresh random key named after the moment it was made (UTC, to the second)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    secret = base64.b64encode(os.urandom(KEY_BYTES)).decode()
    return EncryptionKey(f"kubenorn-{stamp}", provider, secret)


def config_text(state: EncryptionState) -> str:
    """The EncryptionConfiguration for the apiservers, as YAML (a secret: mode 0600)."""
    providers: list[dict[str, Any]] = [
        {"identity": {}}
        if key == IDENTITY
        else {key.provider: {"keys": [{"name": key.name, "secret": key.secret}]}}
        for key in state.key_order()
    ]
    if IDENTITY not in state.key_order():
        providers.append({"identity": {}})
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }
    header = "# Managed by kubenorn from its PKI state (encryption.json): Secrets at rest.\n"
    return header + yaml.safe_dump(document, sort_keys=False)


def state_path(store: Store) -> Path:
    return store.root / STATE_FILE


def _key(raw: dict[str, Any]) -> EncryptionKey:
    if raw["provider"] == "identity":
        return IDENTITY
    secret = str(raw["secret"])
    if len(base64.b64decode(secret, validate=True)) != KEY_BYTES:
        raise ValueError(f"key {raw['name']}: not {KEY_BYTES} bytes")
    return EncryptionKey(str(raw["name"]), str(raw["provider"]), secret)


def load_state(store: Store) -> EncryptionState | None:
    """The state, None when there is none yet; PkiError naming the file when it is unusable."""
    path = state_path(store)
    data = store.read(path)
    if data is None:
        return None
    try:
        raw = json.loads(data)
        incoming = raw.get("incoming")
        phase = raw.get("phase", "stable")
        if phase not in ("stable", *NEXT):
            raise ValueError(f"unknown phase {phase!r}")
        return EncryptionState(_key(raw["current"]), _key(incoming) if incoming else None, phase)
    except (ValueError, KeyError, TypeError) as error:
        raise PkiError(f"{path}: not a usable encryption key state: {error}") from None


def save_state(store: Store, state: EncryptionState, *, create: bool = False) -> None:
    """Write the state (0600); `create`: only if there is none yet (never overwrite one)."""

    def key(k: EncryptionKey | None) -> dict[str, str] | None:
        return None if k is None else {"name": k.name, "provider": k.provider, "secret": k.secret}

    document = {
        "phase": state.phase,
        "current": key(state.current),
        "incoming": key(state.incoming),
    }
    text = json.dumps(document, indent=2) + "\n"
    write_atomic(state_path(store), text.encode(), SECRET_MODE, replace=not create)


def ensure_state(store: Store, provider: str) -> tuple[EncryptionState, bool]:
    """The state, created when there is none, with a first key on its way in from identity
    (see the module's note); (state, whether created)."""
    state = load_state(store)
    if state is not None:
        return state, False
    state = EncryptionState(IDENTITY, new_key(provider), "added")
    save_state(store, state, create=True)
    return state, True


def required_state(store: Store) -> EncryptionState:
    state = load_state(store)
    if state is None:
        raise PkiError(f"{state_path(store)} is missing: run `python -m runbooks.pki init` first")
    return state


@dataclass(frozen=True)
class RotationSteps:
    """What a rotation does to the cluster, supplied by the caller (tasks, or fakes in tests).

    apply: put this phase's configuration on every apiserver, restarting each (one at a time,
    each healthy before the next); raise if any could not. rewrite: rewrite every Secret
    through the apiserver. save: persist the state before acting on it.
    """

    apply: Callable[[EncryptionState], None]
    rewrite: Callable[[], None]
    save: Callable[[EncryptionState], None]


def rotate_key(
    state: EncryptionState, make_key: Callable[[], EncryptionKey], steps: RotationSteps
) -> list[str]:
    """Rotate from `state` (or finish a rotation it shows under way); what was done, in order.

    The state is saved before each phase is applied, so an interrupted rotation resumes by
    applying the saved phase again (an apiserver already there is left alone) and going on.
    """
    done: list[str] = []
    if state.phase == "stable":
        state = state.begin(make_key())
        steps.save(state)
        done.append(f"added {_name(state.incoming)} as a read-only key")
    else:
        done.append(f"resuming at phase {state.phase}")
    steps.apply(state)
    done.append(f"applied {state.phase}: {', '.join(k.name for k in state.key_order())}")
    while state.phase != "stable":
        if state.phase == "promoted":
            steps.rewrite()
            done.append("rewrote every Secret")
        before = state.key_order()
        state = state.advance()
        steps.save(state)
        if state.key_order() != before:
            steps.apply(state)
            done.append(f"applied {state.phase}: {', '.join(k.name for k in state.key_order())}")
        else:
            done.append(f"reached {state.phase}")
    return done


def _name(key: EncryptionKey | None) -> str:
    return key.name if key is not None else "-"
