"""Settings every test shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenorn.history import HISTORY_ENV


@pytest.fixture(scope="session", autouse=True)
def session_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs made by tests (session fixtures included) never reach the user's history."""
    path = tmp_path_factory.mktemp("session-history") / "history.sqlite"
    previous = os.environ.get(HISTORY_ENV)
    os.environ[HISTORY_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(HISTORY_ENV, None)
    else:
        os.environ[HISTORY_ENV] = previous


@pytest.fixture(autouse=True)
def private_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's own runs go to a history of its own."""
    path = tmp_path_factory.mktemp("history") / "history.sqlite"
    monkeypatch.setenv(HISTORY_ENV, str(path))
    return path
