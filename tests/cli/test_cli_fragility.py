"""``nnf fragility``: a sweep over models x scopes x filters, its tables, report and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

TRAIN = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--optimizer", "adam",
         "--lr", "0.003", "--batch-size", "64", "--device", "cpu", "--epochs", "2", "--save-every", "1"]
FAST = ["--data", "digits", "--thresholds", "3", "--limit-eval", "150", "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two training runs (seeds 0 and 1) of an MLP on digits, with model files at epochs 0, 1, 2."""
    from nnforensics.cli import main

    folder = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        assert main([*TRAIN, "--seed", str(seed), "-o", str(folder / f"mlp-s{seed}.safetensors"), "--quiet"]) == 0
    return folder


def _models(runs: Path) -> list[str]:
    return [str(runs / f"mlp-s{s}.epoch{e}.safetensors") for s in (0, 1) for e in (1, 2)]


def _inits(runs: Path) -> list[str]:
    return [a for s in (0, 1) for _ in (1, 2) for a in ("--init", str(runs / f"mlp-s{s}.epoch0.safetensors"))]


def test_layer_by_epoch_sweep_with_every_filter(run_cli, runs, tmp_path):
    out = tmp_path / "frag"
    result = run_cli("fragility", *_models(runs), *_inits(runs), *FAST, "--filters", "all", "--scope", "both",
                     "-o", out, "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    curves = pd.read_parquet(out / "results.parquet")
    assert set(curves["filter"]) == {"high-pass", "low-pass", "pulse", "reset"}
    assert set(curves["scope"]) == {"local", "global"}
    assert sorted(curves["epoch"].unique()) == [1, 2] and sorted(curves["init"].unique()) == [0, 1]
    assert set(curves["run"]) == {"mlp-s0", "mlp-s1"}
    n_layers = curves[curves["scope"] == "local"]["layer"].nunique()
    assert len(curves) == 4 * 4 * 3 * (n_layers + 1)  # models x filters x thresholds x (layers + global)
    assert (curves["adversarial"] == "fixed").all() and (curves["attack"] == "fgsm").all()
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores["verdict"]) <= {"fragile", "robust", "antifragile"}
    verdicts = pd.read_parquet(out / "verdicts.parquet")
    assert len(verdicts) == 4 * (n_layers + 1) and set(verdicts["reset"]) <= {"ambient", "critical"}
    assert len(payload["verdicts"]) == len(verdicts) and payload["failed"] == {}
    page = (out / "report.html").read_text()
    assert "Fragile (" in page and "How verdicts are decided" in page and "epoch 2" in page
    assert (out / "scores-by-epoch-local.png").exists() and list(out.glob("curves-*-local-pulse.png"))
    assert len(list(out.glob("curves-*-global.png"))) == 1

    again = run_cli("fragility", *_models(runs), *_inits(runs), *FAST, "--filters", "all", "--scope", "both",
                    "-o", out, "--json", "--no-report")
    assert again.code == 0 and json.loads(again.out)["ran"] == 0  # resumed: nothing left to do


def test_terminal_table_and_one_model(run_cli, runs, tmp_path):
    result = run_cli("fragility", _models(runs)[-1], *FAST, "--filters", "pulse", "--attack", "pgd", "--steps", "2",
                     "--eps", "0.05", "-o", tmp_path / "one", "--no-report")
    assert result.code == 0, result.err
    assert "verdict per layer" in result.out and "layers.1" in result.out
    assert not (tmp_path / "one" / "report.html").exists()
    assert run_cli("report", tmp_path / "one", "--quiet").code == 0  # nnf report knows a fragility sweep
    assert (tmp_path / "one" / "report.html").exists()
    rows = pd.read_parquet(tmp_path / "one" / "results.parquet")
    assert (rows["attack"] == "pgd").all() and rows["adv_accuracy"].notna().all()


@pytest.mark.parametrize("args, match", [
    (["--filters", "band-pass"], "unknown filter 'band-pass'"),
    (["--scope", "diagonal"], "unknown scope 'diagonal'"),
    (["--thresholds", "1"], "at least two points"),
    (["--eps", "1.5"], r"--eps must be a number in \[0, 1\]"),
    (["--eps", "-0.1"], r"--eps must be a number in \[0, 1\]"),
    (["--filters", "reset"], "needs the weights at initialisation"),
    (["--attack", "cw"], "unknown attack 'cw'"),
    (["--adversarial", "sometimes"], "unknown adversarial mode"),
    (["--attack", "fgsm", "--steps", "3"], "steps"),
])
def test_bad_options_are_one_line(expect_error, runs, tmp_path, args, match):
    expect_error("fragility", _models(runs)[0], *FAST, *args, "-o", tmp_path / "x", match=match)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_reset_with_another_architecture_is_refused(expect_error, runs, tmp_path, make_model_file):
    other = make_model_file(tmp_path / "other.safetensors", "mlp", {"width": 0.5, "in_channels": 1, "image_size": 8,
                                                                    "num_classes": 10})
    expect_error("fragility", _models(runs)[0], *FAST, "--filters", "reset", "--init", other, "-o", tmp_path / "x",
                 match="not the same architecture")


def test_a_model_without_weight_layers_is_refused():
    import torch

    from nnforensics.errors import ConfigError
    from nnforensics.fragility import filter_targets

    with pytest.raises(ConfigError, match="no Conv/Linear layer"):
        filter_targets(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.ReLU()), "global")
