"""Toy cell functions for the sweep engine tests (importable by worker processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnforensics.experiments import CellResult


def toy_cell(config: dict[str, Any], cell: dict[str, Any]) -> list[dict[str, Any]]:
    """Two rows per cell: ``y = k * x^2 + rep``.

    Sleeps ``config['sleep']`` seconds; raises for an ``x`` listed in the file
    ``config['fail_file']`` (if it exists); appends ``x`` to ``config['log']`` each time
    it runs, so tests can count how often each cell was computed.
    """
    time.sleep(config.get("sleep", 0.0))
    fail_file = config.get("fail_file")
    if fail_file and Path(fail_file).exists() and str(cell["x"]) in Path(fail_file).read_text().split():
        raise ValueError(f"x={cell['x']} is not allowed")
    if config.get("log"):
        with open(config["log"], "a") as handle:
            handle.write(f"{cell['x']}\n")
            handle.flush()
            os.fsync(handle.fileno())
    return [{"x": cell["x"], "rep": r, "y": config["k"] * cell["x"] ** 2 + r, "t_cell_s": time.perf_counter()}
            for r in range(2)]


def toy_cell_with_extras(config: dict[str, Any], cell: dict[str, Any]) -> CellResult:
    """One row, an extra table ``parts`` (three rows) and one array."""
    x = cell["x"]
    return CellResult(rows=[{"x": x, "y": x * config["k"]}],
                      tables={"parts": [{"x": x, "part": p} for p in range(3)]},
                      arrays={"grid": np.full((2, 2), float(x))})
