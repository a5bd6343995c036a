"""Resumable experiment sweeps (robustness, later watermark and fragility sweeps).

A sweep is a JSON configuration, a list of cells (parameter dicts) and a module-level
function ``fn(config, cell) -> rows``; :func:`run_sweep` runs the unfinished cells
(in-process, in a process pool, or on Ray), saves each cell's rows as soon as it
finishes and consolidates them into ``results.parquet``.
"""

from .sweep import (
    CellResult,
    ResultsDir,
    SweepFailedError,
    SweepSummary,
    consolidate,
    load_results,
    make_cell_id,
    run_sweep,
)

__all__ = [
    "CellResult",
    "ResultsDir",
    "SweepFailedError",
    "SweepSummary",
    "consolidate",
    "load_results",
    "make_cell_id",
    "run_sweep",
]
