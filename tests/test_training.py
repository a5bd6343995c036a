"""Training and evaluation: recipes, determinism, exact resume, clear failures."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import typer

from nnforensics.data import ArrayDataset, DatasetInfo, load_dataset
from nnforensics.data.readers import MNIST_INFO
from nnforensics.errors import ConfigError, ShapeMismatchError, UnknownNameError
from nnforensics.io import read_meta
from nnforensics.models import load_model
from nnforensics.recipes import PRESETS, choose_preset, default_recipe, resolve_recipe
from nnforensics.training import Recipe, evaluate, finetune_recipe, fit, predict, train

#: digits images with augmentation switched on, so that resuming must replay it too.
AUG_INFO = DatasetInfo("digits-aug", 10, (1, 8, 8), (0.3,), (0.4,), augment="crop+flip", crop_padding=1)


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    data = load_dataset("digits", "train", limit=320)
    return ArrayDataset(data.x, data.y, AUG_INFO, "train")


def small_net(seed: int = 0) -> nn.Module:
    """Flatten -> Linear -> ReLU -> Dropout -> Linear (dropout makes the RNG matter)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Dropout(0.3), nn.Linear(24, 10))


def recipe(**kw) -> Recipe:
    base = dict(optimizer="sgd", lr=0.05, batch_size=32, epochs=3, schedule="step", checkpoint_every=1)
    return Recipe(**{**base, **kw})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class Interrupt(Exception):
    pass


def interrupt_at(step: int):
    """An ``extra_loss`` that raises once ``step`` optimiser steps have been taken."""
    calls = {"n": 0}

    def extra(model: nn.Module) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > step:
            raise Interrupt
        return torch.zeros(())

    return extra


# ---------------------------------------------------------------- recipes

@pytest.mark.parametrize("field,value,match", [
    ("optimizer", "rmsprop", "unknown optimizer 'rmsprop'; choose one of sgd, adam"),
    ("schedule", "linear", "unknown schedule"),
    ("lr", 0.0, "learning rate must be a positive number"),
    ("lr", float("nan"), "learning rate"),
    ("epochs", 0, "epochs must be a positive number, got 0"),
    ("epochs", float("inf"), "epochs"),
    ("batch_size", 0, "batch size must be an integer >= 1"),
    ("weight_decay", -1.0, "weight decay must be >= 0"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("checkpoint_every", -1, "checkpoint interval"),
])
def test_recipe_validation(field, value, match):
    with pytest.raises(ConfigError, match=match):
        Recipe(**{field: value}).validate()


def test_schedules():
    assert recipe(schedule="none").lr_at(90, 100) == 0.05
    step = recipe(schedule="step")
    assert [step.lr_at(s, 90) for s in (0, 29, 30, 60)] == pytest.approx([0.05, 0.05, 0.005, 0.0005])
    cosine = recipe(schedule="cosine")
    assert cosine.lr_at(0, 10) == 0.05 and cosine.lr_at(10, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine.lr_at(5, 10) == pytest.approx(0.025)


def test_recipe_dict_round_trip_and_finetune():
    r = recipe(optimizer="adam", lr=1e-3, epochs=30)
    assert Recipe.from_dict({**r.to_dict(), "unknown_future_field": 1}) == r
    ft = finetune_recipe(r, 0.1)
    assert ft.epochs == pytest.approx(3.0) and ft.schedule == "none" and ft.lr == pytest.approx(1e-5)


# ---------------------------------------------------------------- determinism and resume

def test_same_seeds_same_weights_other_data_seed_differs(digits):
    runs = []
    for data_seed in (0, 0, 1):
        model = small_net()
        train(model, digits, recipe(epochs=1, data_seed=data_seed), quiet=True)
        runs.append(weights(model))
    assert_same(runs[0], runs[1])
    assert not torch.equal(runs[0]["1.weight"], runs[2]["1.weight"])


def test_training_leaves_the_global_rng_alone(digits):
    net = small_net()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(net, digits, recipe(epochs=0.5), quiet=True)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adam", "cosine")])
def test_resume_equals_uninterrupted_run_bit_for_bit(digits, tmp_path, optimizer, schedule):
    kw = dict(optimizer=optimizer, schedule=schedule, lr=0.05 if optimizer == "sgd" else 3e-3)
    full = small_net()
    train(full, digits, recipe(**kw), val_data=digits, quiet=True)

    ckpt = tmp_path / "run.ckpt"
    first = small_net()
    with pytest.raises(Interrupt):  # 10 steps per epoch: stop in the middle of epoch 2
        train(first, digits, recipe(**kw), checkpoint_path=ckpt, extra_loss=interrupt_at(15), quiet=True)
    assert ckpt.exists()

    resumed = small_net()
    result = train(resumed, digits, recipe(**kw, checkpoint_every=2), val_data=digits,
                   checkpoint_path=ckpt, resume=True, quiet=True)
    assert_same(weights(full), weights(resumed))
    assert result.steps == 30 and [h["epoch"] for h in result.history] == [1, 2, 3]


def test_resume_refuses_another_run(digits, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupt):
        train(small_net(), digits, recipe(), checkpoint_path=ckpt, extra_loss=interrupt_at(12), quiet=True)
    with pytest.raises(ConfigError, match="another recipe"):
        train(small_net(), digits, recipe(lr=0.01), checkpoint_path=ckpt, resume=True, quiet=True)
    with pytest.raises(ConfigError, match="trained on 320 images, this run has 100"):
        train(small_net(), digits.subset(slice(0, 100)), recipe(), checkpoint_path=ckpt, resume=True, quiet=True)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ConfigError, match="belongs to another model"):
        train(other, digits, recipe(), checkpoint_path=ckpt, resume=True, quiet=True)


def test_diverging_training_stops_with_advice(digits):
    with pytest.raises(ConfigError, match="training diverged at step .*lower the learning rate"):
        train(small_net(), digits, recipe(lr=1e30, schedule="none", epochs=1), quiet=True)


def test_fractional_epochs(digits):
    result = train(small_net(), digits, recipe(epochs=0.5), quiet=True)
    assert result.steps == 5 and result.epochs_done == 0.5


# ---------------------------------------------------------------- evaluation

class Constant(nn.Module):
    """Always predicts class ``k``."""

    def __init__(self, k: int, classes: int = 10):
        super().__init__()
        self.k, self.classes, self.dummy = k, classes, nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.classes)
        out[:, self.k] = 1
        return out


def test_evaluate_is_exact_and_restores_mode(digits):
    model = Constant(3).train()
    result = evaluate(model, digits, batch_size=7)
    n3 = int((digits.y == 3).sum())
    assert result == {"accuracy": 100.0 * n3 / 320, "error": 100.0 * (320 - n3) / 320, "n": 320}
    assert model.training


def test_evaluate_shape_errors(digits):
    with pytest.raises(ShapeMismatchError, match=r"cannot take inputs of shape \(1, 8, 8\)"):
        evaluate(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), digits)
    with pytest.raises(ShapeMismatchError, match="has 3 outputs but 'digits-aug' has labels up to 9"):
        evaluate(Constant(0, classes=3), digits)
    with pytest.raises(ShapeMismatchError, match=r"logits of shape \(batch, classes\)"):
        predict(nn.Identity(), digits)
    with pytest.raises(ConfigError, match="batch size"):
        predict(Constant(0), digits, batch_size=0)


# ---------------------------------------------------------------- fit

def test_fit_records_recipe_and_metrics():
    loaded = fit("mlp", "digits", recipe(epochs=2, lr=0.1), arch_args={"width": 0.25}, quiet=True, limit=200)
    meta = loaded.meta
    assert meta.dataset == "digits" and meta.input_shape == [1, 8, 8] and meta.num_classes == 10
    assert meta.recipe["augment"] is False  # digits are not augmented
    assert meta.metrics["train_images"] == 200 and meta.metrics["test_n"] == 359
    assert 0 <= meta.metrics["test_accuracy"] <= 100 and math.isfinite(meta.metrics["val_accuracy"])
    assert [h["op"] for h in meta.history] == ["init", "train"]
    assert next(loaded.model.parameters()).device.type == "cpu" and not loaded.model.training


# ---------------------------------------------------------------- default recipes (issue 9, finding 18)

CIFAR_LIKE = DatasetInfo("cifar-like", 10, (3, 32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), augment="crop+flip")
FACES = DatasetInfo("h5", 1283, (3, 55, 47), None, None)
#: What Trias et al. train with (paper: SGD, momentum 0.9, lr 1e-2, 50 epochs; their Training.py:
#: batch 128, weight decay 5e-4, crop + flip, a StepLR of 50 epochs that never fires in 50 epochs).
PAPER = Recipe(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False, weight_decay=5e-4, batch_size=128,
               epochs=50, schedule="none", augment=True)


@pytest.mark.parametrize("arch,data,preset", [
    ("lenet", MNIST_INFO, "fast"),
    ("mlp", "digits", "fast"),            # a dataset spec is read for its shape
    ("lenet", CIFAR_LIKE, "fast"),        # a small network on any data
    ("vgg11_bn", MNIST_INFO, "fast"),     # a CNN on MNIST-like data
    ("resnet18", "digits", "fast"),
    ("vgg16", CIFAR_LIKE, "find-the-lady"),
    ("resnet18", CIFAR_LIKE, "find-the-lady"),
    ("wide_resnet_28_10", CIFAR_LIKE, "find-the-lady"),
    ("resnet50_imagenet", FACES, "find-the-lady"),
    ("vit_tiny", CIFAR_LIKE, "adam"),
    ("vit_tiny", MNIST_INFO, "adam"),      # a ViT is no CNN, whatever the data
    ("my_nets.py:Net", CIFAR_LIKE, "adam"),  # never imported to choose
])
def test_default_recipe_by_architecture_and_data(arch, data, preset):
    chosen, reason = choose_preset(arch, data)
    assert chosen.name == preset and reason
    assert default_recipe(arch, data) == PRESETS[preset].recipe


def test_default_recipes_themselves():
    assert default_recipe("vgg16", CIFAR_LIKE) == PAPER
    fast = default_recipe("lenet", MNIST_INFO)
    assert (fast.optimizer, fast.schedule, fast.augment, fast.weight_decay) == ("adam", "cosine", False, 0.0)
    fast.lr = 1.0  # a copy: the preset is not changed through it
    assert default_recipe("lenet", MNIST_INFO).lr == PRESETS["fast"].recipe.lr != 1.0
    with pytest.raises(UnknownNameError, match="unknown architecture 'lenet6'"):
        default_recipe("lenet6", MNIST_INFO)


def test_resolve_recipe_overrides_and_seed():
    plain = resolve_recipe("lenet", MNIST_INFO, {"lr": None, "epochs": None})
    assert plain.recipe == PRESETS["fast"].recipe and plain.user_set == () and plain.preset == "fast"
    given = resolve_recipe("lenet", MNIST_INFO, {"epochs": 1, "optimizer": "sgd", "lr": None}, seed=7)
    assert given.recipe == replace(PRESETS["fast"].recipe, epochs=1, optimizer="sgd", init_seed=7, data_seed=7)
    assert given.user_set == ("optimizer", "epochs", "init_seed", "data_seed")
    assert given.provenance() == {"preset": "fast", "set_by_user": ["optimizer", "epochs", "init_seed", "data_seed"]}
    # the specific seeds win over --seed
    assert resolve_recipe("lenet", MNIST_INFO, {"data_seed": 3}, seed=7).recipe.data_seed == 3
    assert resolve_recipe("lenet", MNIST_INFO, {"init_seed": 2}, seed=7).recipe.init_seed == 2
    # what runs is what is printed and recorded: no augmentation where the dataset has none
    assert resolve_recipe("vgg16", CIFAR_LIKE).recipe.augment is True
    assert resolve_recipe("vgg16", FACES).recipe.augment is False
    assert resolve_recipe("lenet", MNIST_INFO, {"augment": True}).recipe.augment is False
    with pytest.raises(ConfigError, match="unknown recipe setting"):
        resolve_recipe("lenet", MNIST_INFO, {"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="learning rate must be a positive number"):
        resolve_recipe("lenet", MNIST_INFO, {"lr": -1.0})


# ---------------------------------------------------------------- nnf train: defaults, overrides, --seed

DIGITS = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--device", "cpu"]
RECIPE_OPTIONS = ("--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay", "--batch-size", "--epochs",
                  "--schedule", "--augment")


def test_train_without_options_uses_the_default_recipe_and_records_it(run_cli, tmp_path):
    result = run_cli(*DIGITS, "--epochs", "0.2", "--json", "-o", tmp_path / "m.safetensors")
    assert result.code == 0, result.err
    assert "training recipe" not in result.err  # not with --json (nor --quiet)
    recorded = read_meta(tmp_path / "m.safetensors").recipe
    expected = replace(PRESETS["fast"].recipe, epochs=0.2).to_dict()
    assert recorded == {**expected, "preset": "fast", "set_by_user": ["epochs"]}


def test_every_option_given_overrides_the_default(run_cli, tmp_path):
    result = run_cli(*DIGITS, "--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.8", "--nesterov",
                     "--weight-decay", "1e-4", "--batch-size", "32", "--epochs", "0.25", "--schedule", "step",
                     "--seed", "5", "--data-seed", "6", "--checkpoint-every", "0", "-q",
                     "-o", tmp_path / "m.safetensors")
    assert result.code == 0, result.err
    recorded = read_meta(tmp_path / "m.safetensors").recipe
    assert recorded == {"optimizer": "sgd", "lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-4,
                        "batch_size": 32, "epochs": 0.25, "schedule": "step", "init_seed": 5, "data_seed": 6,
                        "augment": False, "checkpoint_every": 0, "preset": "fast",
                        "set_by_user": ["optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size",
                                        "epochs", "schedule", "init_seed", "data_seed", "checkpoint_every"]}


def test_seed_sets_both_seeds(run_cli, tmp_path):
    runs = {name: run_cli(*DIGITS, "--epochs", "0.5", "-q", *extra, "-o", tmp_path / f"{name}.safetensors")
            for name, extra in {"seed": ["--seed", "3"], "both": ["--init-seed", "3", "--data-seed", "3"],
                                "default": []}.items()}
    assert all(r.code == 0 for r in runs.values()), [r.err for r in runs.values()]
    models = {name: load_model(tmp_path / f"{name}.safetensors") for name in runs}
    assert (models["seed"].meta.recipe["init_seed"], models["seed"].meta.recipe["data_seed"]) == (3, 3)
    assert_same(weights(models["seed"].model), weights(models["both"].model))
    assert not torch.equal(models["seed"].model.state_dict()["layers.1.weight"],
                           models["default"].model.state_dict()["layers.1.weight"])


def test_the_recipe_is_printed_once_at_the_start(run_cli, tmp_path):
    result = run_cli(*DIGITS, "--epochs", "0.2", "--lr", "0.01", "-o", tmp_path / "m.safetensors")
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if "training recipe" in line]
    assert len(lines) == 1 and result.err.lstrip().startswith("training recipe: fast defaults (mlp is a small network)")
    line = lines[0]
    assert "optimizer=adam " in line and "lr=0.01* " in line and "epochs=0.2* " in line and "batch_size=64 " in line
    assert "momentum" not in line  # an SGD setting, unused by Adam
    assert line.endswith("(* given on the command line)")
    assert run_cli(*DIGITS, "--epochs", "0.2", "-q", "-o", tmp_path / "q.safetensors").err == ""


def test_help_says_where_the_defaults_come_from(run_cli):
    from nnforensics.cli import app

    command = typer.main.get_command(app).commands["train"]
    params = {opt: p for p in command.params for opt in p.opts}
    for option in RECIPE_OPTIONS:
        assert params[option].default is None, option  # unset: from the recipe, never a hard-coded value
        assert "default: from the recipe for the architecture and dataset" in params[option].help, option
    assert params["--seed"].default is None and "--init-seed" in params["--seed"].help
    text = " ".join(run_cli("train", "--help").out.replace("│", " ").split())
    assert "--seed" in text and text.count("(default: from the recipe for the architecture and dataset)") >= 9
