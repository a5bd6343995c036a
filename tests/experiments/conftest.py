"""Fixtures of the sweep tests: an environment in which workers can import the toy cells."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def toy_env(monkeypatch) -> dict[str, str]:
    """Environment in which subprocesses and Ray workers can import ``sweep_toycells``."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return {**os.environ, "PYTHONPATH": path}
