"""Shared fixtures. Tests never touch the real ~/.cache/gas, ~/.pm2 or ~/.bittensor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop any GAS_* variables of the developer's shell and point state at a temp dir."""
    for key in list(os.environ):
        if key.startswith("GAS_"):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("GAS_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("PM2_HOME", str(home / "pm2"))
