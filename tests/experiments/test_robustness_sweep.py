"""`nnf robustness` end to end on a tiny MLP trained on the real digits data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnforensics.experiments.robustness import DEFAULT_LEVELS, ROW_COLUMNS, robustness_cells, robustness_config


def nnf(args: list, capsys) -> tuple[int, str, str]:
    from nnforensics.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_defaults_follow_the_paper(digits_mlp):
    assert DEFAULT_LEVELS["noise"] == list(range(11))
    assert DEFAULT_LEVELS["finetune"] == [2, 4, 6, 8, 10]
    assert DEFAULT_LEVELS["quantize"] == list(range(16, 1, -1))
    assert DEFAULT_LEVELS["prune"] == [0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
    config = robustness_config(digits_mlp, "digits", "prune")
    assert config["seeds"] == list(range(10)) and config["methods"] == ["lap", "argmax", "weight-matching", "rank"]
    assert len(robustness_cells(config)) == 100  # (level, seed); methods share a cell


def test_sweep_through_the_cli(core, digits_mlp, tmp_path, capsys):
    from nnforensics.io import load_model
    from nnforensics.data import load_dataset
    from nnforensics.training import evaluate

    out = tmp_path / "noise"
    args = ["robustness", digits_mlp, "--data", "digits", "--attack", "noise", "--levels", "0,2", "--seeds", "2",
            "--methods", "lap,argmax", "-o", out, "--no-report"]
    code, stdout, err = nnf([*args, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["ran"] == 4

    rows = pd.read_parquet(out / "results.parquet")
    assert list(rows.columns[:len(ROW_COLUMNS)]) == list(ROW_COLUMNS)
    assert len(rows) == 8 and rows["cell_id"].is_unique
    assert set(zip(rows["level"], rows["seed"], rows["method"])) == set(product([0.0, 2.0], [0, 1], ["lap", "argmax"]))
    loaded = load_model(digits_mlp)
    base = evaluate(loaded.model, load_dataset("digits", "test"), normalization=loaded.meta.normalization)["error"]
    assert np.allclose(rows["base_error"], base)
    clean = rows[rows["level"] == 0]
    assert (clean["psi"] == 100).all() and np.allclose(clean["error"], base)  # a permutation alone changes nothing
    assert (rows["max_output_diff"] < 1e-4).all()
    n_groups = len(core.find_groups(loaded.model, core.example_inputs_for(loaded.meta)).names())
    assert (rows["n_groups"] == n_groups).all() and (rows["n_neurons"] == 48).all()  # 32 + 16 hidden units
    assert rows["psi"].between(0, 100).all() and (rows["t_total_s"] >= rows["t_resync_s"]).all()
    # permutation and perturbation are shared by the methods of a (level, seed)
    assert (rows.groupby(["level", "seed"])["error"].nunique() == 1).all()

    groups = pd.read_parquet(out / "groups.parquet")
    assert {"cell_id", "group", "size", "psi"} <= set(groups.columns)
    assert set(groups["cell_id"]) == set(rows["cell_id"]) and "method" not in groups.columns
    heat = np.load(out / "heatmaps.npz")
    assert heat["original"].shape == heat["permuted"].shape == heat["perturbed"].shape == (16, 16)
    assert np.allclose(np.diag(heat["original"]), 1, atol=1e-5) and float(heat["level"]) == 2.0

    code, stdout, _ = nnf([*args, "--json"], capsys)  # the same command again: nothing left to do
    assert code == 0 and json.loads(stdout)["ran"] == 0 and json.loads(stdout)["skipped"] == 4
    code, stdout, _ = nnf(args, capsys)
    assert code == 0 and "argmax" in stdout and "4 already done" in stdout


def test_target_layer_only(core, digits_mlp, tmp_path, capsys):
    out = tmp_path / "prune"
    code, _, err = nnf(["robustness", digits_mlp, "--data", "digits", "--attack", "prune", "--levels", "0.5,0.95",
                        "--seeds", "1", "--methods", "lap", "--target", "penultimate", "-o", out, "--no-report", "-q"],
                       capsys)
    assert code == 0, err
    rows = pd.read_parquet(out / "results.parquet")
    assert (rows["n_groups"] == 1).all() and (rows["n_neurons"] == 16).all()
    assert (rows["target"] == "penultimate").all() and (rows["target_layer"] == "layers.3").all()
    heat = np.load(out / "heatmaps.npz")
    perm, permuted = heat["perm"], heat["permuted"]
    # only this group is permuted, so each permuted neuron is an exact copy of an original one
    hits = np.isclose(permuted[perm, np.arange(16)], 1, atol=1e-5) | np.isclose(permuted[np.arange(16), perm], 1, atol=1e-5)
    assert hits.all()


def test_finetune_sweep(core, digits_mlp, tmp_path, capsys):
    out = tmp_path / "finetune"
    code, _, err = nnf(["robustness", digits_mlp, "--data", "digits", "--attack", "finetune", "--levels", "10",
                        "--seeds", "1", "--methods", "lap", "-o", out, "--no-report", "-q"], capsys)
    assert code == 0, err
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 1 and rows["psi"].iloc[0] == 100 and rows["t_perturb_s"].iloc[0] > 0


KILL_ARGS = ["--attack", "finetune", "--levels", "25,50,75", "--seeds", "3", "--methods", "lap,argmax",
             "--no-report", "-q"]


def test_killed_sweep_resumes(core, digits_mlp, tmp_path, capsys):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nnforensics", "robustness", str(digits_mlp), "--data", "digits",
                             "-o", str(out), *KILL_ARGS], start_new_session=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while len(list((out / "cells").glob("attack=*seed=?-*[0-9a-f].parquet"))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep never saved a cell"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list((out / "cells").glob("attack=*seed=?-*[0-9a-f].parquet")))
    assert 2 <= done < 9
    code, stdout, err = nnf(["robustness", digits_mlp, "--data", "digits", "-o", out, *KILL_ARGS, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["skipped"] == done and json.loads(stdout)["ran"] == 9 - done
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 18 and rows["cell_id"].is_unique
    assert set(zip(rows["level"], rows["seed"], rows["method"])) == set(
        product([25.0, 50.0, 75.0], [0, 1, 2], ["lap", "argmax"]))
    assert len(pd.read_parquet(out / "groups.parquet")["cell_id"].unique()) == 18


# ----------------------------------------------------------------- bad inputs (no core needed)

@pytest.fixture(scope="module")
def no_recipe_model(tmp_path_factory) -> Path:
    from nnforensics.io import save_model
    from nnforensics.models.factory import create_model
    from nnforensics.data import dataset_info

    loaded = create_model("mlp", {"hidden": [8]}, data=dataset_info("digits"))
    path = tmp_path_factory.mktemp("norecipe") / "untrained.safetensors"
    save_model(loaded.model, path, loaded.meta)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--attack", "blur"], "unknown attack 'blur'; valid attacks: finetune, noise, prune, quantize, scale"),
    (["--attack", "quantize", "--levels", "8,40"], "integer number of bits in 1..32, got 40"),
    (["--attack", "prune", "--levels", "0.5,1"], "0 <= T < 1"),
    (["--attack", "noise", "--levels", "a,b"], "comma-separated numbers"),
    (["--attack", "noise", "--methods", "lap,psychic"], "unknown method 'psychic'"),
    (["--attack", "noise", "--seeds", "0"], "positive number of seeds"),
    (["--attack", "noise", "--executor", "dask"], "unknown executor 'dask'"),
    (["--attack", "noise", "--global"], "--global applies only to the prune attack"),
])
def test_bad_inputs(digits_mlp, tmp_path, capsys, extra, message):
    code, _, err = nnf(["robustness", digits_mlp, "--data", "digits", "-o", tmp_path / "r", "--no-report", *extra],
                       capsys)
    assert code == 1 and message in err, err


def test_finetune_needs_a_recipe(no_recipe_model, tmp_path, capsys):
    code, _, err = nnf(["robustness", no_recipe_model, "--data", "digits", "--attack", "finetune", "-o",
                        tmp_path / "r", "--no-report"], capsys)
    assert code == 1 and "records none" in err
    assert not (tmp_path / "r").exists()


def test_missing_model_file(tmp_path, capsys):
    code, _, err = nnf(["robustness", tmp_path / "nope.safetensors", "--data", "digits", "--attack", "noise",
                        "-o", tmp_path / "r"], capsys)
    assert code == 1 and "model file not found" in err


def test_results_dir_of_another_config_is_refused(core, digits_mlp, tmp_path, capsys):
    base = ["robustness", digits_mlp, "--data", "digits", "--attack", "noise", "--seeds", "1", "--methods", "lap",
            "-o", tmp_path / "r", "--no-report", "-q"]
    assert nnf([*base, "--levels", "0,1"], capsys)[0] == 0
    code, _, err = nnf([*base, "--levels", "0,3"], capsys)
    assert code == 1 and "different configuration" in err and "levels (there [0.0, 1.0], here [0.0, 3.0])" in err
    code, _, err = nnf([*base[:5], "prune", *base[6:], "--levels", "0.5"], capsys)
    assert code == 1 and "attack (there \"noise\", here \"prune\")" in err
    assert len(pd.read_parquet(tmp_path / "r" / "results.parquet")) == 2  # untouched
