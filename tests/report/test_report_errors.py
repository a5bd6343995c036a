"""Bad inputs give one clear NNFError (DataError / ConfigError), never a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnforensics.errors import ConfigError, CorruptFileError, DataError
from nnforensics.report import build_report, load_sweeps


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_sweeps(tmp_path / "nope")


def test_directory_without_results(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no results in"):
        load_sweeps(tmp_path / "empty")
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "config.json").write_text("{}")
    with pytest.raises(DataError, match="config.json"):
        load_sweeps(tmp_path / "started")


def test_file_instead_of_directory(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    with pytest.raises(DataError, match="is a file"):
        load_sweeps(path / "results.parquet")


def test_corrupt_parquet(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    (path / "results.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot read .*results.parquet") as info:
        load_sweeps(path)
    assert isinstance(info.value, CorruptFileError)


def test_corrupt_csv(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False, layout="csv")
    (path / "results.csv").write_bytes(b"\x00\xff\xfe garbage \x00 \"unterminated\n")
    with pytest.raises(DataError):
        load_sweeps(path)


def test_corrupt_cell_file(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, layout="cells")
    (path / "cells" / "c0001.parquet").write_bytes(b"truncated")
    with pytest.raises(DataError, match="c0001.parquet"):
        load_sweeps(path)


def test_missing_columns(sweep_dir):
    path, rows = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    rows.drop(columns=["psi", "method"]).to_parquet(path / "results.parquet", index=False)
    with pytest.raises(DataError, match="lack column.*method, psi"):
        load_sweeps(path)


def test_empty_results(sweep_dir):
    path, rows = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    rows.iloc[:0].to_parquet(path / "results.parquet", index=False)
    with pytest.raises(DataError, match="no result rows"):
        load_sweeps(path)


def test_non_numeric_and_out_of_range_values(sweep_dir):
    path, rows = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    bad = rows.assign(psi=rows["psi"].astype(str))
    bad.loc[0, "psi"] = "lots"
    bad.to_parquet(path / "results.parquet", index=False)
    with pytest.raises(DataError, match="'psi'.*numeric.*'lots'"):
        load_sweeps(path)
    rows.assign(psi=rows["psi"] / 100 * 150).to_parquet(path / "results.parquet", index=False)
    with pytest.raises(DataError, match="percentage"):
        load_sweeps(path)


def test_corrupt_config(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json"):
        load_sweeps(path)
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_sweeps(path)


def test_bad_heatmaps(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    np.savez(path / "heatmaps.npz", original=np.eye(3), permuted=np.eye(3), perturbed=np.ones((3, 4)))
    with pytest.raises(DataError, match="square"):
        load_sweeps(path)
    (path / "heatmaps.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="heatmaps.npz"):
        load_sweeps(path)
    # an object array would need pickle: refused, not executed
    np.savez(path / "heatmaps.npz", original=np.array([object()], dtype=object), permuted=np.eye(2), perturbed=np.eye(2))
    with pytest.raises(DataError, match="heatmaps.npz"):
        load_sweeps(path)


def test_groups_missing_columns(sweep_dir):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    pd.DataFrame({"cell_id": ["x"], "size": [3]}).to_parquet(path / "groups.parquet", index=False)
    with pytest.raises(DataError, match="per-group.*group, psi"):
        load_sweeps(path)


def test_output_folder_is_a_file(sweep_dir, tmp_path):
    path, _ = sweep_dir(levels=[0, 1], seeds=2, heatmaps=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        build_report(path, out_dir=tmp_path / "file", quiet=True)
