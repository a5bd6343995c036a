"""The nnf commands: help, JSON and quiet output, and file round trips."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import typer

from nnforensics.cli import app
from nnforensics.io import read_meta
from nnforensics.models import load_model
from nnforensics.models.factory import create_model
from nnforensics.utils.atomic import TMP_PREFIX

ROOT = typer.main.get_command(app)


def _leaves(command, path=()):
    """Paths of every runnable command, walking into groups such as ``watermark``."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path


COMMANDS = sorted(" ".join(p) for p in _leaves(ROOT))
DIGITS_MLP = ["--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits"]


def _options(name: str) -> set[str]:
    command = ROOT
    for word in name.split():
        command = command.commands[word]
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_json_and_quiet(run_cli, name):
    result = run_cli(*name.split(), "--help")
    assert result.code == 0 and "Usage: nnf " + name in " ".join(result.out.split())
    assert {"--json", "--quiet", "--debug"} <= _options(name)


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no-arguments"])
def test_top_level_help_lists_commands(run_cli, args):
    result = run_cli(*args)
    assert result.code == 0 and result.err == ""
    assert all(name in result.out for name in ("init", "train", "eval", "layers", "models", "datasets"))


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "nnforensics", "models", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "lenet" in proc.stdout


def test_models_and_datasets(run_cli):
    models = run_cli("models", "--json").json()
    assert {"lenet", "mlp"} <= {m["name"] for m in models}
    assert {"name", "family", "input_shape", "description"} <= set(models[0])
    datasets = run_cli("datasets", "--json").json()
    assert {"digits", "mnist"} <= {d["name"] for d in datasets}
    text = run_cli("models")
    assert text.code == 0 and "lenet" in text.out and "file.py:ClassName" in text.out
    assert "file.py:ClassName" not in run_cli("models", "--quiet").out


# ---------------------------------------------------------------- init

def test_init_json_and_bit_exact_round_trip(run_cli, tmp_path):
    out = tmp_path / "m.safetensors"
    result = run_cli("init", "--arch", "lenet", "--arch-arg", "width=0.5", "--seed", "7", "-o", out, "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["path"] == str(out) and payload["arch"] == "lenet" and payload["arch_args"] == {"width": 0.5}
    assert payload["parameters"] == sum(p.numel() for p in load_model(out).model.parameters())
    expected = create_model("lenet", {"width": 0.5}, seed=7).model
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_model(out).model(x), expected.eval()(x))


def test_init_quiet_and_text(run_cli, tmp_path):
    quiet = run_cli("init", "--arch", "mlp", "-o", tmp_path / "a.safetensors", "--quiet")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""
    text = run_cli("init", "--arch", "mlp", "-o", tmp_path / "b.safetensors")
    assert text.code == 0 and text.out.startswith("wrote ")


def test_init_from_dataset_records_shape_and_normalization(run_cli, tmp_path):
    out = tmp_path / "m.safetensors"
    assert run_cli("init", *DIGITS_MLP, "-o", out, "--quiet").code == 0
    meta = read_meta(out)
    assert meta.input_shape == [1, 8, 8] and meta.arch_args["image_size"] == 8
    assert meta.normalization == {"mean": [0.3061], "std": [0.3817]} and meta.dataset == "digits"


# ---------------------------------------------------------------- layers

def test_layers_from_arch_file_and_state_dict(run_cli, tiny_model_file, tiny_state_dict_file):
    by_arch = run_cli("layers", "--arch", "lenet", "--arch-arg", "width=0.5", "--json").json()
    assert [r["name"] for r in by_arch] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert by_arch[0] == {"name": "conv1", "type": "Conv2d", "parameters": {"weight": [3, 1, 5, 5], "bias": [3]}}
    assert run_cli("layers", tiny_model_file, "--json").json() == by_arch
    assert run_cli("layers", tiny_state_dict_file, "--arch", "lenet", "--arch-arg", "width=0.5", "--json").json() == by_arch
    text = run_cli("layers", tiny_model_file)
    assert text.code == 0 and "conv1" in text.out and "5 layers" in text.out


# ---------------------------------------------------------------- eval

def test_eval_json(run_cli, trained_digits_model):
    result = run_cli("eval", trained_digits_model, "--data", "digits", "--json", "--device", "cpu")
    assert result.code == 0, result.err
    payload = result.json()
    assert set(payload) == {"accuracy", "error", "n"} and payload["n"] == 359
    assert payload["accuracy"] + payload["error"] == pytest.approx(100.0)
    # the file reproduces the trained model: same accuracy as measured before saving
    assert payload["accuracy"] == read_meta(trained_digits_model).metrics["test_accuracy"]
    assert payload["accuracy"] > 70


def test_eval_split_limit_and_text(run_cli, trained_digits_model):
    assert run_cli("eval", trained_digits_model, "--data", "digits", "--split", "val", "--limit", "50",
                   "--json").json()["n"] == 50
    text = run_cli("eval", trained_digits_model, "--data", "digits", "--quiet")
    assert text.code == 0 and text.out.startswith("accuracy ") and "n=359" in text.out and text.err == ""


def test_eval_state_dict_with_arch(run_cli, trained_digits_model, tmp_path):
    from safetensors.torch import load_file

    pt = tmp_path / "plain.pt"
    torch.save(load_file(str(trained_digits_model)), pt)
    expected = run_cli("eval", trained_digits_model, "--data", "digits", "--json").json()
    imported = run_cli("eval", pt, "--arch", "mlp", "--arch-arg", "width=0.25", "--arch-arg", "image_size=8",
                       "--data", "digits", "--json")
    assert imported.code == 0, imported.err
    # same weights; the normalisation now comes from the dataset, as recorded in the file
    assert imported.json() == expected


# ---------------------------------------------------------------- train

def test_train_json_is_deterministic_and_round_trips(run_cli, tmp_path):
    args = ["train", *DIGITS_MLP, "--epochs", "2", "--optimizer", "adam", "--lr", "0.003", "--batch-size", "64",
            "--device", "cpu", "--quiet", "--json"]
    first = run_cli(*args, "-o", tmp_path / "a.safetensors")
    assert first.code == 0, first.err
    payload = first.json()
    assert payload["path"] == str(tmp_path / "a.safetensors") and payload["train_images"] == 1259
    assert {"test_accuracy", "test_error", "test_n", "val_accuracy"} <= set(payload)
    assert run_cli(*args, "-o", tmp_path / "b.safetensors").code == 0
    a, b = load_model(tmp_path / "a.safetensors"), load_model(tmp_path / "b.safetensors")
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    meta = a.meta
    assert meta.recipe["optimizer"] == "adam" and meta.recipe["epochs"] == 2 and meta.metrics == {
        k: v for k, v in payload.items() if k != "path"}
    evaluated = run_cli("eval", tmp_path / "a.safetensors", "--data", "digits", "--json").json()
    assert evaluated["accuracy"] == payload["test_accuracy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]  # no .ckpt, no tmp


def test_train_text_output_and_progress(run_cli, tmp_path, monkeypatch):
    result = run_cli("train", *DIGITS_MLP, "--epochs", "0.2", "--device", "cpu", "-o", tmp_path / "m.safetensors")
    assert result.code == 0 and result.out.startswith("wrote ") and "test accuracy" in result.out
    assert "train mlp" not in result.err and "━" not in result.err  # stderr is no terminal here: no bar
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal -> the bar is drawn there
    shown = run_cli("train", *DIGITS_MLP, "--epochs", "0.2", "--device", "cpu", "-o", tmp_path / "b.safetensors")
    assert "train mlp" in shown.err and "loss" in shown.err and "acc" in shown.err and shown.out.startswith("wrote ")
    monkeypatch.delenv("TTY_COMPATIBLE")
    (tmp_path / "b.safetensors").unlink()
    quiet = run_cli("train", *DIGITS_MLP, "--epochs", "0.2", "--device", "cpu", "-o", tmp_path / "q.safetensors", "-q")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
