"""`nnf robustness` end to end on a small MLP trained on the real digits data (64 -> 64 -> 32 -> 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import product

import numpy as np
import pandas as pd
import pytest

import nnforensics
from nnforensics.experiments.robustness import DEFAULT_LEVELS, ROW_COLUMNS, robustness_cells, robustness_config

HIDDEN = (64, 32)  # the hidden units of the shared ``trained_digits_model``


def test_defaults_follow_the_paper(trained_digits_model):
    assert DEFAULT_LEVELS["noise"] == list(range(11))
    assert DEFAULT_LEVELS["finetune"] == [2, 4, 6, 8, 10]
    assert DEFAULT_LEVELS["quantize"] == list(range(16, 1, -1))
    assert DEFAULT_LEVELS["prune"] == [0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
    config = robustness_config(trained_digits_model, "digits", "prune")
    assert config["seeds"] == list(range(10)) and config["methods"] == ["lap", "argmax", "weight-matching", "rank"]
    assert len(robustness_cells(config)) == 100  # (level, seed); the methods share a cell


def test_sweep_through_the_cli(trained_digits_model, tmp_path, run_cli):
    from nnforensics.data import load_dataset
    from nnforensics.models import load_model
    from nnforensics.training import evaluate

    out = tmp_path / "noise"
    args = ["robustness", trained_digits_model, "--data", "digits", "--attack", "noise", "--levels", "0,2",
            "--seeds", "2", "--methods", "lap,argmax", "-o", out, "--no-report"]
    result = run_cli(*args, "--json")
    assert result.code == 0, result.err
    assert result.json()["ran"] == 4

    rows = pd.read_parquet(out / "results.parquet")
    assert list(rows.columns[:len(ROW_COLUMNS)]) == list(ROW_COLUMNS)
    assert len(rows) == 8 and rows["cell_id"].is_unique
    assert set(zip(rows["level"], rows["seed"], rows["method"])) == set(product([0.0, 2.0], [0, 1], ["lap", "argmax"]))
    loaded = load_model(trained_digits_model)
    base = evaluate(loaded.model, load_dataset("digits", "test"), normalization=loaded.meta.normalization)["error"]
    assert np.allclose(rows["base_error"], base)
    clean = rows[rows["level"] == 0]
    assert (clean["psi"] == 100).all() and np.allclose(clean["error"], base)  # a permutation alone changes nothing
    assert (rows["max_output_diff"] < 1e-4).all()
    n_groups = len(nnforensics.find_groups(loaded.model, nnforensics.example_inputs_for(loaded.meta)).names())
    assert (rows["n_groups"] == n_groups).all() and (rows["n_neurons"] == sum(HIDDEN)).all()
    assert rows["psi"].between(0, 100).all() and (rows["t_total_s"] >= rows["t_resync_s"]).all()
    # the permutation and the perturbation are shared by the methods of a (level, seed)
    assert (rows.groupby(["level", "seed"])["error"].nunique() == 1).all()

    groups = pd.read_parquet(out / "groups.parquet")
    assert {"cell_id", "group", "size", "psi"} <= set(groups.columns) and "method" not in groups.columns
    assert set(groups["cell_id"]) == set(rows["cell_id"])
    heat = np.load(out / "heatmaps.npz")
    assert heat["original"].shape == heat["permuted"].shape == heat["perturbed"].shape == (HIDDEN[1],) * 2
    assert np.allclose(np.diag(heat["original"]), 1, atol=1e-5) and float(heat["level"]) == 2.0

    again = run_cli(*args, "--json")  # the same command again: nothing left to do
    assert again.code == 0 and again.json()["ran"] == 0 and again.json()["skipped"] == 4
    table = run_cli(*args)
    assert table.code == 0 and "argmax" in table.out and "4 already done" in table.out


def test_target_layer_only(trained_digits_model, tmp_path, run_cli):
    out = tmp_path / "prune"
    result = run_cli("robustness", trained_digits_model, "--data", "digits", "--attack", "prune", "--levels",
                     "0.5,0.95", "--seeds", "1", "--methods", "lap", "--target", "penultimate", "-o", out,
                     "--no-report", "-q")
    assert result.code == 0, result.err
    rows = pd.read_parquet(out / "results.parquet")
    assert (rows["n_groups"] == 1).all() and (rows["n_neurons"] == HIDDEN[1]).all()
    assert (rows["target"] == "penultimate").all() and (rows["target_layer"] == "layers.3").all()
    heat = np.load(out / "heatmaps.npz")
    perm, permuted, n = heat["perm"], heat["permuted"], HIDDEN[1]
    # perms[u] is the original unit now at position u; only this group moved, so that unit is an exact copy
    assert np.allclose(permuted[perm, np.arange(n)], 1, atol=1e-5)


def test_quantization_acts_on_the_whole_model_even_with_a_target(trained_digits_model, tmp_path, run_cli):
    # REFERENCE.md: "fake-quantization of every Conv/Linear weight" (the paper's error reaches 88 % at 2 bits)
    from nnforensics.data import load_dataset
    from nnforensics.models import load_model
    from nnforensics.training import evaluate

    out = tmp_path / "quantize"
    result = run_cli("robustness", trained_digits_model, "--data", "digits", "--attack", "quantize", "--levels", "2",
                     "--seeds", "1", "--methods", "lap", "--target", "penultimate", "-o", out, "--no-report", "-q")
    assert result.code == 0, result.err
    rows = pd.read_parquet(out / "results.parquet")
    loaded = load_model(trained_digits_model)
    everything = nnforensics.perturb(loaded, "quantize", 2).model
    target_only = nnforensics.perturb(loaded, "quantize", 2, layers=["layers.3"]).model
    test = load_dataset("digits", "test")
    error = {name: evaluate(m, test, normalization=loaded.meta.normalization)["error"]
             for name, m in [("all", everything), ("target", target_only)]}
    assert error["all"] != error["target"]  # the check below can tell the two apart
    assert rows["error"].iloc[0] == pytest.approx(error["all"])


@pytest.mark.parametrize("target, companions", [("penultimate", ["layer4.0.conv2", "layer4.0.downsample.0"]),
                                                ("layer4.1.conv1", [])])
def test_a_target_sharing_the_residual_stream_is_flagged(tmp_path, run_cli, target, companions):
    model = tmp_path / "resnet.safetensors"
    assert run_cli("init", "--arch", "resnet18", "--arch-arg", "width=0.0625", "--data", "digits", "-o", model).code == 0
    result = run_cli("robustness", model, "--data", "digits", "--attack", "noise", "--levels", "1", "--seeds", "1",
                     "--methods", "lap", "--target", target, "--limit-eval", "20", "--no-report", "-o",
                     tmp_path / "sweep", "--json")
    assert result.code == 0, result.err
    notes = result.json()["notes"]
    if companions:
        assert len(notes) == 1 and all(name in notes[0] for name in companions)
    else:
        assert notes == []


def test_finetune_sweep(trained_digits_model, tmp_path, run_cli):
    out = tmp_path / "finetune"
    result = run_cli("robustness", trained_digits_model, "--data", "digits", "--attack", "finetune", "--levels", "10",
                     "--seeds", "1", "--methods", "lap", "-o", out, "--no-report", "-q")
    assert result.code == 0, result.err
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 1 and rows["psi"].iloc[0] == 100 and rows["t_perturb_s"].iloc[0] > 0


# Fine-tuning makes cells slow enough (100-300 % of the 5 original epochs) to kill the sweep between them.
KILL_ARGS = ["--attack", "finetune", "--levels", "100,200,300", "--seeds", "2", "--methods", "lap,argmax",
             "--no-report", "-q"]
DONE_GLOB = "attack=*seed=?-*[0-9a-f].parquet"  # main cell files, not the groups tables


def test_killed_sweep_resumes(trained_digits_model, tmp_path, run_cli):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nnforensics", "robustness", str(trained_digits_model), "--data",
                             "digits", "-o", str(out), *KILL_ARGS], start_new_session=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while len(list((out / "cells").glob(DONE_GLOB))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep never saved a cell"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list((out / "cells").glob(DONE_GLOB)))
    assert 2 <= done < 6
    result = run_cli("robustness", trained_digits_model, "--data", "digits", "-o", out, *KILL_ARGS, "--json")
    assert result.code == 0, result.err
    assert result.json()["skipped"] == done and result.json()["ran"] == 6 - done
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 12 and rows["cell_id"].is_unique
    assert set(zip(rows["level"], rows["seed"], rows["method"])) == set(
        product([100.0, 200.0, 300.0], [0, 1], ["lap", "argmax"]))
    assert set(pd.read_parquet(out / "groups.parquet")["cell_id"]) == set(rows["cell_id"])


# ----------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("extra, message", [
    (["--attack", "blur"], "unknown attack 'blur'; valid attacks: finetune, noise, prune, quantize, scale"),
    (["--attack", "quantize", "--levels", "8,40"], "integer number of bits in 1..32, got 40"),
    (["--attack", "prune", "--levels", "0.5,1"], "0 <= T < 1"),
    (["--attack", "noise", "--levels", "a,b"], "comma-separated numbers"),
    (["--attack", "noise", "--methods", "lap,psychic"], "unknown method 'psychic'"),
    (["--attack", "noise", "--seeds", "0"], "positive number of seeds"),
    (["--attack", "noise", "--executor", "dask"], "unknown executor 'dask'"),
    (["--attack", "noise", "--global"], "--global applies only to the prune attack"),
    (["--attack", "noise", "--target", "nope"], "unknown layer 'nope'"),
])
def test_bad_inputs(trained_digits_model, tmp_path, run_cli, extra, message):
    result = run_cli("robustness", trained_digits_model, "--data", "digits", "-o", tmp_path / "r", "--no-report",
                     *extra)
    assert result.code == 1 and message in result.err, result.err


def test_finetune_needs_a_recipe(tiny_model_file, tmp_path, run_cli):
    result = run_cli("robustness", tiny_model_file, "--data", "mnist", "--attack", "finetune", "-o", tmp_path / "r",
                     "--no-report")
    assert result.code == 1 and "records none" in result.err
    assert not (tmp_path / "r").exists()


def test_missing_model_file(tmp_path, run_cli):
    result = run_cli("robustness", tmp_path / "nope.safetensors", "--data", "digits", "--attack", "noise",
                     "-o", tmp_path / "r")
    assert result.code == 1 and "model file not found" in result.err


def test_results_dir_of_another_config_is_refused(trained_digits_model, tmp_path, run_cli):
    def sweep(attack: str, levels: str):
        return run_cli("robustness", trained_digits_model, "--data", "digits", "--attack", attack, "--levels", levels,
                       "--seeds", "1", "--methods", "lap", "-o", tmp_path / "r", "--no-report", "-q")

    assert sweep("noise", "0,1").code == 0
    result = sweep("noise", "0,3")
    assert result.code == 1 and "different configuration" in result.err
    assert "levels (there [0.0, 1.0], here [0.0, 3.0])" in result.err
    result = sweep("prune", "0.5")
    assert result.code == 1 and 'attack (there "noise", here "prune")' in result.err
    assert len(pd.read_parquet(tmp_path / "r" / "results.parquet")) == 2  # untouched
