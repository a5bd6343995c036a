"""The Ray executor on a local Ray instance gives the same rows as the local one."""

from __future__ import annotations

import pandas as pd
import pytest

from nnforensics.experiments import load_results, make_cell_id, run_sweep

import sweep_toycells

ray = pytest.importorskip("ray")


def test_ray_matches_local_and_records_failures(tmp_path, toy_env):
    fail_file = tmp_path / "fail.txt"
    fail_file.write_text("3")
    config = {"k": 7, "fail_file": str(fail_file)}
    cells = [{"x": x} for x in range(5)]
    local = run_sweep(tmp_path / "local", config, cells, sweep_toycells.toy_cell, quiet=True)
    on_ray = run_sweep(tmp_path / "ray", config, cells, sweep_toycells.toy_cell, executor="ray", workers=2,
                       quiet=True)
    assert not ray.is_initialized()  # the instance started for the sweep was shut down
    assert on_ray.ran == local.ran == 4
    assert on_ray.failed == local.failed == {make_cell_id({"x": 3}): "ValueError: x=3 is not allowed"}
    a, b = (load_results(tmp_path / d).drop(columns="t_cell_s") for d in ("local", "ray"))
    pd.testing.assert_frame_equal(a, b)
