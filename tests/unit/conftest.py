"""Fixtures the unit tests of the provisioning modules share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``FARGATE_LABS_CACHE`` pointed at a fresh directory."""
    monkeypatch.setenv("FARGATE_LABS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
