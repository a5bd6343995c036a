"""Fixtures of the watermark tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run shared by every xdist worker (workers' temp folders are siblings)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "watermark-cases"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def case(shared_dir: Path):
    """``case("lenet")`` -> the watermarked LeNet of :mod:`.cases` (built once per run)."""
    from .cases import get_case

    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = get_case(arch, shared_dir)
        return cache[arch]

    return get
