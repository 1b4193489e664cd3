"""Settings every test shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenorn.history import HISTORY_ENV


@pytest.fixture(autouse=True)
def private_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Runs made by tests go to a history of their own, never the user's."""
    path = tmp_path_factory.mktemp("history") / "history.sqlite"
    monkeypatch.setenv(HISTORY_ENV, str(path))
    return path
