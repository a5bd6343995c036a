"""The resumable sweep engine: saving per cell, resuming, refusing mixed configs, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnforensics.errors import ConfigError
from nnforensics.experiments import ResultsDir, SweepFailedError, consolidate, load_results, make_cell_id, run_sweep

import sweep_toycells

CELLS = [{"x": x} for x in range(6)]


def logged(log: Path) -> Counter:
    return Counter(int(line) for line in log.read_text().split()) if log.exists() else Counter()


def test_cell_ids_are_stable_readable_and_distinct():
    assert make_cell_id({"seed": 1, "level": 0.5}) == make_cell_id({"level": 0.5, "seed": 1})
    assert make_cell_id({"level": 0.5, "seed": 1}).startswith("level=0.5_seed=1-")
    assert make_cell_id({"level": 1, "seed": 1}) != make_cell_id({"level": 1.0, "seed": 1})
    assert make_cell_id({"name": "a/b c"}) != make_cell_id({"name": "a_b_c"})
    assert "/" not in make_cell_id({"name": "../../etc"})


def test_run_saves_each_cell_consolidates_and_resumes(tmp_path):
    log = tmp_path / "log.txt"
    config = {"k": 3, "log": str(log)}
    summary = run_sweep(tmp_path / "r", config, CELLS, sweep_toycells.toy_cell, quiet=True)
    assert (summary.total, summary.ran, summary.skipped, summary.failed) == (6, 6, 0, {})
    rows = pd.read_parquet(tmp_path / "r" / "results.parquet")
    assert list(rows.columns[:4]) == ["cell_id", "x", "rep", "y"]
    assert rows["x"].tolist() == [x for x in range(6) for _ in range(2)]
    assert rows["y"].tolist() == [3 * x * x + r for x in range(6) for r in range(2)]
    assert set(rows["cell_id"]) == {make_cell_id(c) for c in CELLS}
    assert len(pd.read_csv(tmp_path / "r" / "results.csv")) == 12
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == config
    assert all((tmp_path / "r" / "cells" / f"{make_cell_id(c)}.parquet").exists() for c in CELLS)

    again = run_sweep(tmp_path / "r", config, CELLS, sweep_toycells.toy_cell, quiet=True)
    assert (again.ran, again.skipped) == (0, 6)
    assert logged(log) == Counter(range(6))  # nothing computed twice

    (tmp_path / "r" / "results.parquet").unlink()  # consolidation on demand rebuilds it
    assert consolidate(tmp_path / "r").drop(columns="t_cell_s").equals(rows.drop(columns="t_cell_s"))


def test_extra_tables_and_arrays(tmp_path):
    run_sweep(tmp_path, {"k": 2}, CELLS[:3], sweep_toycells.toy_cell_with_extras, quiet=True)
    parts = pd.read_parquet(tmp_path / "parts.parquet")
    assert len(parts) == 9 and set(parts["cell_id"]) == {make_cell_id(c) for c in CELLS[:3]}
    assert load_results(tmp_path)["y"].tolist() == [0, 2, 4]
    grid = ResultsDir(tmp_path).cell_arrays(make_cell_id({"x": 2}))
    np.testing.assert_array_equal(grid["grid"], np.full((2, 2), 2.0))


def test_a_different_config_is_refused_naming_the_keys(tmp_path):
    run_sweep(tmp_path, {"k": 3, "sleep": 0}, CELLS[:2], sweep_toycells.toy_cell, quiet=True)
    with pytest.raises(ConfigError, match=r"different configuration.*k \(there 3, here 4\).*sleep \(there 0, here"):
        run_sweep(tmp_path, {"k": 4}, CELLS[:2], sweep_toycells.toy_cell, quiet=True)
    assert load_results(tmp_path)["y"].tolist() == [0, 1, 3, 4]  # untouched


def test_a_failing_cell_is_recorded_the_others_saved_and_retried_later(tmp_path):
    fail_file = tmp_path / "fail.txt"
    fail_file.write_text("2 4")
    config = {"k": 1, "fail_file": str(fail_file)}
    summary = run_sweep(tmp_path / "r", config, CELLS, sweep_toycells.toy_cell, quiet=True)
    bad = {make_cell_id({"x": 2}), make_cell_id({"x": 4})}
    assert summary.ran == 4 and set(summary.failed) == bad
    assert summary.failed[make_cell_id({"x": 2})] == "ValueError: x=2 is not allowed"
    record = json.loads((tmp_path / "r" / "failures" / f"{make_cell_id({'x': 2})}.json").read_text())
    assert record["params"] == {"x": 2} and "Traceback" in record["traceback"]
    assert sorted(set(load_results(tmp_path / "r")["x"])) == [0, 1, 3, 5]
    with pytest.raises(SweepFailedError, match="2 of 6 cells failed"):
        summary.raise_for_failures()

    fail_file.write_text("")  # the cause is fixed: a re-run computes only the two failed cells
    retry = run_sweep(tmp_path / "r", config, CELLS, sweep_toycells.toy_cell, quiet=True)
    assert (retry.ran, retry.skipped, retry.failed) == (2, 4, {})
    assert not any((tmp_path / "r" / "failures").iterdir())
    assert sorted(set(load_results(tmp_path / "r")["x"])) == list(range(6))


def test_process_pool_gives_the_same_rows_as_in_process(tmp_path):
    config = {"k": 5}
    run_sweep(tmp_path / "a", config, CELLS, sweep_toycells.toy_cell, quiet=True, workers=1)
    run_sweep(tmp_path / "b", config, CELLS, sweep_toycells.toy_cell, quiet=True, workers=2)
    a, b = (load_results(tmp_path / d).drop(columns="t_cell_s") for d in "ab")
    pd.testing.assert_frame_equal(a, b)


def test_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="unknown executor 'dask'; choose one of local, ray"):
        run_sweep(tmp_path, {"k": 1}, CELLS, sweep_toycells.toy_cell, executor="dask", quiet=True)
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        run_sweep(tmp_path, {"k": 1}, CELLS, sweep_toycells.toy_cell, workers=0, quiet=True)
    with pytest.raises(ConfigError, match="module-level function"):
        run_sweep(tmp_path, {"k": 1}, CELLS, lambda config, cell: {}, workers=2, quiet=True)
    with pytest.raises(ConfigError, match="duplicate cells"):
        run_sweep(tmp_path, {"k": 1}, [{"x": 1}, {"x": 1}], sweep_toycells.toy_cell, quiet=True)
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        run_sweep(tmp_path, {"k": object()}, CELLS, sweep_toycells.toy_cell, quiet=True)


KILL_SCRIPT = """
import json, sys
import sweep_toycells
from nnforensics.experiments import run_sweep
cells = [{"x": x} for x in range(int(sys.argv[3]))]
run_sweep(sys.argv[1], json.loads(sys.argv[2]), cells, sweep_toycells.toy_cell, workers=int(sys.argv[4]), quiet=True)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_sweep_resumes_without_duplicates_or_gaps(tmp_path, toy_env, workers):
    n_cells, out, log = 16, tmp_path / "r", tmp_path / "log.txt"
    config = {"k": 2, "sleep": 0.25, "log": str(log)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out), json.dumps(config), str(n_cells),
                             str(workers)], env=toy_env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "cells").glob("x=*.parquet"))) < 3:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep never saved a cell"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and any pool workers, at once
        proc.wait()
    done_at_kill = len(list((out / "cells").glob("x=*.parquet")))
    assert 3 <= done_at_kill < n_cells
    ran_before = sum(logged(log).values())

    summary = run_sweep(out, config, [{"x": x} for x in range(n_cells)], sweep_toycells.toy_cell, quiet=True)
    assert summary.skipped == done_at_kill and summary.ran == n_cells - done_at_kill and not summary.failed
    rows = load_results(out)
    assert sorted(rows["x"].tolist()) == sorted(list(range(n_cells)) * 2)  # none missing, none twice
    assert not rows.duplicated(["cell_id", "rep"]).any()
    counts = logged(log)
    assert set(counts) == set(range(n_cells))
    lost = sum(counts.values()) - n_cells  # computed twice: only cells that were in flight at the kill
    assert 0 <= lost <= workers and ran_before - done_at_kill <= workers
    assert not list((out / "cells").glob(".nnf-tmp-*"))  # temporaries of the killed run are gone
