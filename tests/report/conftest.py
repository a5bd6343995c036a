"""Fixtures of the report tests: synthetic results directories (see ``report_synth``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synth import write_sweep


@pytest.fixture
def sweep_dir(tmp_path: Path):
    """``sweep_dir(name="noise", **write_sweep kwargs) -> (path, rows)``."""

    def make(name: str = "noise", **kwargs):
        path = tmp_path / "sweeps" / name
        return path, write_sweep(path, **kwargs)

    return make
