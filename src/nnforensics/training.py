"""Training and evaluation with the recipes of the original codebases.

* Optimisers: SGD (momentum, Nesterov) or Adam; weight decay.
* Schedules (a function of the global step, so resuming needs no scheduler state):
  ``step`` (x0.1 at 1/3 and 2/3 of training), ``cosine``, ``none``.
* Separate seeds for initialisation (and dropout) and for data order/augmentation.
* Periodic checkpoints written atomically; ``resume=True`` continues from the last one
  and reproduces the uninterrupted run exactly on the same device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.loader import batches
from .data.registry import ArrayDataset
from .errors import ConfigError, DataError
from .io.checkpoint import load_checkpoint, save_checkpoint
from .models.wrappers import Normalized
from .utils.device import resolve_device
from .utils.progress import progress
from .utils.seeding import derive_seed, torch_generator

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine", "none")


@dataclass
class Recipe:
    """A training recipe (recorded in the model file's metadata)."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: float = 30
    schedule: str = "step"
    init_seed: int = 0
    data_seed: int = 0
    augment: bool = True
    checkpoint_every: int = 1

    def validate(self) -> Recipe:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("weight decay must be >= 0 and momentum in [0, 1)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known}).validate()

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate after ``step`` of ``total_steps`` optimiser steps."""
        t = step / max(1, total_steps)
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * t))
        if self.schedule == "step":
            return self.lr * (0.1 ** ((t >= 1 / 3) + (t >= 2 / 3)))
        return self.lr


@dataclass
class TrainResult:
    """What a training run produced."""

    epochs_done: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    val_accuracy: float | None = None


def seeded_init(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model with parameters drawn from ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("init", seed))
        return factory()


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                           nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)


def _steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def _same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ignore = {"checkpoint_every"}
    return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}


def train(
    model: nn.Module,
    train_data: ArrayDataset,
    recipe: Recipe,
    *,
    val_data: ArrayDataset | None = None,
    normalization: dict[str, list[float]] | None = None,
    device: str | torch.device = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    quiet: bool = False,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    description: str = "train",
) -> TrainResult:
    """Train ``model`` in place.

    Args:
        model: the bare architecture (its parameters are updated in place).
        train_data: training split.
        recipe: optimiser, schedule, seeds, epochs (may be fractional, e.g. fine-tuning).
        val_data: evaluated after every epoch when given.
        normalization: ``{"mean", "std"}`` applied to inputs before the model.
        checkpoint_path: where checkpoints go (every ``recipe.checkpoint_every`` epochs).
        resume: continue from ``checkpoint_path`` if it exists.
        extra_loss: ``f(model) -> scalar`` added to the loss (e.g. a watermark regulariser).

    Returns:
        :class:`TrainResult` with per-epoch history.
    """
    recipe.validate()
    if len(train_data) == 0:
        raise DataError("training data is empty")
    dev = resolve_device(device)
    model.to(dev)
    norm = normalization or {}
    net = Normalized(model, norm.get("mean"), norm.get("std")).to(dev)
    optimizer = make_optimizer(model.parameters(), recipe)
    per_epoch = _steps_per_epoch(len(train_data), recipe.batch_size)
    total_steps = max(1, round(recipe.epochs * per_epoch))
    n_epochs = math.ceil(total_steps / per_epoch)
    start_epoch, step, history = 0, 0, []
    torch.manual_seed(derive_seed("dropout", recipe.init_seed))

    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        if not _same_recipe(state.get("recipe", {}), recipe.to_dict()):
            raise ConfigError(f"checkpoint {str(ckpt)!r} was written with another recipe; refusing to mix runs "
                              f"(delete it or train without --resume)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start_epoch, step, history = int(state["epoch"]), int(state["step"]), list(state["history"])

    with progress(quiet=quiet) as bar:
        task = bar.add_task(description, total=total_steps, status="")
        bar.update(task, completed=step)
        for epoch in range(start_epoch, n_epochs):
            net.train()
            gen = torch_generator("data", recipe.data_seed, epoch)
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in batches(train_data, recipe.batch_size, shuffle=True, generator=gen,
                                augment=recipe.augment, device=dev):
                if step >= total_steps:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr_at(step, total_steps)
                logits = net(x)
                loss = F.cross_entropy(logits, y)
                if extra_loss is not None:
                    loss = loss + extra_loss(model)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                bar.update(task, advance=1,
                           status=f"epoch {epoch + 1}/{n_epochs} loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}%")
            record = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "train_accuracy": 100 * correct / max(seen, 1)}
            if val_data is not None:
                record["val_accuracy"] = evaluate(model, val_data, normalization=normalization, device=dev)["accuracy"]
                bar.update(task, status=f"epoch {epoch + 1}/{n_epochs} val acc {record['val_accuracy']:.2f}%")
            history.append(record)
            done = epoch + 1 == n_epochs
            if ckpt is not None and not done and recipe.checkpoint_every > 0 and (epoch + 1) % recipe.checkpoint_every == 0:
                save_checkpoint(ckpt, {
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "step": step,
                    "history": history,
                    "recipe": recipe.to_dict(),
                })
    model.eval()
    return TrainResult(step / per_epoch, step, history, history[-1].get("val_accuracy") if history else None)


@torch.no_grad()
def predict(
    model: nn.Module,
    data: ArrayDataset,
    *,
    normalization: dict[str, list[float]] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> torch.Tensor:
    """Logits (N, num_classes) of ``model`` on ``data`` in eval mode."""
    dev = resolve_device(device)
    norm = normalization or {}
    net = Normalized(model, norm.get("mean"), norm.get("std")).to(dev).eval()
    outs = [net(x).float().cpu() for x, _ in batches(data, batch_size, device=dev)]
    return torch.cat(outs)


def evaluate(
    model: nn.Module,
    data: ArrayDataset,
    *,
    normalization: dict[str, list[float]] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> dict[str, float | int]:
    """Top-1 ``{"accuracy": %, "error": %, "n": count}`` in eval mode (model mode restored)."""
    if len(data) == 0:
        raise DataError("evaluation data is empty")
    was_training = model.training
    try:
        logits = predict(model, data, normalization=normalization, device=device, batch_size=batch_size)
    except RuntimeError as err:
        if "shape" in str(err) or "size" in str(err):
            raise DataError(f"the model cannot take inputs of shape {tuple(data.x.shape[1:])} "
                            f"from {data.info.name!r}: {str(err).splitlines()[0]}") from None
        raise
    finally:
        model.train(was_training)
    if logits.shape[1] <= int(data.y.max()):
        raise DataError(f"the model has {logits.shape[1]} outputs but the data has labels up to {int(data.y.max())}")
    accuracy = 100.0 * float((logits.argmax(1) == data.y).float().mean())
    return {"accuracy": accuracy, "error": 100.0 - accuracy, "n": len(data)}


def finetune_recipe(recipe: Recipe, fraction_of_epochs: float, seed: int = 0) -> Recipe:
    """The recipe resumed for ``fraction_of_epochs`` of its epochs at its final learning rate."""
    final_lr = recipe.lr_at(1, 1) if recipe.schedule != "cosine" else recipe.lr * 1e-2
    return replace(recipe, epochs=recipe.epochs * fraction_of_epochs, lr=final_lr, schedule="none",
                   data_seed=derive_seed("finetune", recipe.data_seed, seed) % (2**31))


def fit(
    arch: str,
    data: str,
    recipe: Recipe,
    *,
    arch_args: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    quiet: bool = False,
    limit: int | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
):
    """Build ``arch`` for dataset ``data``, train it with ``recipe`` and measure test accuracy.

    Returns:
        :class:`~nnforensics.io.LoadedModel` whose metadata holds the recipe and metrics.
    """
    from .data.registry import load_dataset
    from .models.factory import create_model

    train_data = load_dataset(data, "train", limit=limit)
    val_data = load_dataset(data, "val")
    test_data = load_dataset(data, "test")
    loaded = create_model(arch, arch_args, seed=recipe.init_seed, data=train_data.info)
    info = train_data.info
    if recipe.augment and info.augment == "none":
        recipe = replace(recipe, augment=False)
    result = train(loaded.model, train_data, recipe, val_data=val_data, normalization=info.normalization,
                   device=device, checkpoint_path=checkpoint_path, resume=resume, quiet=quiet,
                   extra_loss=extra_loss, description=f"train {arch}")
    test = evaluate(loaded.model, test_data, normalization=info.normalization, device=device)
    loaded.model.to("cpu")
    meta = loaded.meta
    meta.dataset = data
    meta.recipe = recipe.to_dict()
    meta.metrics = {"test_accuracy": test["accuracy"], "test_error": test["error"], "test_n": test["n"],
                    "val_accuracy": result.val_accuracy, "train_images": len(train_data)}
    meta.history.append({"op": "train", "epochs": recipe.epochs, "steps": result.steps, "dataset": data})
    return loaded
