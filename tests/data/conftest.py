"""Fixtures for the data tests: every test starts with an empty parse cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the datafmt helper module, whatever the import mode

from nnforensics.data import clear_cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()
