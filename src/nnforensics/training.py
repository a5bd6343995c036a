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
from .errors import ConfigError, CorruptFileError, DataError, ShapeMismatchError
from .io.checkpoint import load_checkpoint, save_checkpoint
from .io.snapshots import EpochHook, Snapshots
from .models.loading import LoadedModel
from .models.wrappers import Normalized
from .utils.device import resolve_device
from .utils.progress import info, progress
from .utils.seeding import derive_seed, torch_generator

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine", "none")


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` if it is an integer >= 1, else :class:`ConfigError`."""
    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size}")
    return batch_size


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
        """Raise :class:`ConfigError` for any out-of-range setting; returns ``self``."""
        def finite(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not (finite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        check_batch_size(self.batch_size)
        if not (finite(self.epochs) and self.epochs > 0):
            raise ConfigError(f"epochs must be a positive number, got {self.epochs}")
        if not (finite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if not (finite(self.momentum) and 0 <= self.momentum < 1):
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0):
            raise ConfigError(f"checkpoint interval must be an integer >= 0 (0: never), got {self.checkpoint_every}")
        for name in ("init_seed", "data_seed"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"{name.replace('_', ' ')} must be an integer, got {getattr(self, name)!r}")
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


def _restore(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe,
             n_train: int) -> tuple[int, int, list[dict[str, float]]]:
    """Load a checkpoint of this very run into ``model``/``optimizer``/the RNG.

    Returns:
        ``(epochs done, optimiser steps done, history)``.
    """
    from .io.modelcheck import describe_mismatch

    state = load_checkpoint(ckpt)
    if not _same_recipe(state["recipe"], recipe.to_dict()):
        raise ConfigError(f"checkpoint {str(ckpt)!r} was written with another recipe; refusing to mix runs "
                          f"(delete it or train without --resume)")
    if state.get("n_train", n_train) != n_train:
        raise ConfigError(f"checkpoint {str(ckpt)!r} was trained on {state['n_train']} images, this run has "
                          f"{n_train} (another --limit or dataset?); delete it or train without --resume")
    problem = describe_mismatch(model.state_dict(), state["model"], type(model).__name__)
    if problem:
        raise ConfigError(f"checkpoint {str(ckpt)!r} belongs to another model ({problem}); "
                          f"delete it or train without --resume")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        raise CorruptFileError(f"checkpoint {str(ckpt)!r} does not fit this run: {err}") from None
    return int(state["epoch"]), int(state["step"]), list(state["history"])


def _step(net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
          lr: float, extra_loss: Callable[[nn.Module], torch.Tensor] | None, step: int) -> tuple[float, int]:
    """One optimiser step on a batch ``x`` (B, C, H, W), ``y`` (B,).

    Returns:
        ``(loss, number of correct predictions)`` before the step.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    if extra_loss is not None:
        loss = loss + extra_loss(model)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ConfigError(f"training diverged at step {step + 1} (loss {value}); lower the learning rate (now {lr:g})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value, int((logits.argmax(1) == y).sum())


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
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train ``model`` in place.

    The process-wide RNG is left as it was (dropout draws from a forked stream seeded
    by ``recipe.init_seed``; data order and augmentation from ``recipe.data_seed``).

    Args:
        model: the bare architecture (its parameters are updated in place).
        train_data: training split, images (N, C, H, W) and labels (N,).
        recipe: optimiser, schedule, seeds, epochs (may be fractional, e.g. fine-tuning).
        val_data: evaluated after every epoch when given.
        normalization: ``{"mean", "std"}`` applied to inputs before the model.
        checkpoint_path: where checkpoints go (every ``recipe.checkpoint_every`` epochs).
        resume: continue from ``checkpoint_path`` if it exists; the result equals an
            uninterrupted run bit for bit on the same CPU.
        extra_loss: ``f(model) -> scalar`` added to the loss (e.g. a watermark regulariser).
        on_epoch: ``f(epoch, step, record)`` called at every whole epoch (after its validation,
            before its checkpoint) and, on a fresh start, with ``(0, 0, {})`` before the first
            step; it must not touch the model or the RNG (e.g. :meth:`Snapshots.hook`).

    Returns:
        :class:`TrainResult` with per-epoch history.

    Raises:
        ConfigError: bad recipe, a checkpoint of another run, or a diverging loss.
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
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if resume and ckpt is None:
        raise ConfigError("resume=True needs a checkpoint_path to resume from")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("dropout", recipe.init_seed))
        if ckpt is not None and ckpt.exists():
            if resume:
                start_epoch, step, history = _restore(ckpt, model, optimizer, recipe, len(train_data))
                info(f"resuming from {ckpt} (epoch {start_epoch}/{n_epochs})", quiet)
            else:
                info(f"starting afresh; the checkpoint {ckpt} will be overwritten (--resume continues it)", quiet)
        elif resume:
            info(f"no checkpoint at {ckpt}; starting afresh", quiet)
        if on_epoch is not None and step == 0:  # a fresh start: the initialisation is epoch 0
            on_epoch(0, 0, {})

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
                    loss, hits = _step(net, model, optimizer, x, y, recipe.lr_at(step, total_steps), extra_loss, step)
                    step += 1
                    loss_sum, correct, seen = loss_sum + loss * len(y), correct + hits, seen + len(y)
                    bar.update(task, advance=1, status=f"epoch {epoch + 1}/{n_epochs} loss {loss_sum / seen:.4f} "
                                                       f"acc {100 * correct / seen:.2f}%")
                record = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                          "train_accuracy": 100 * correct / max(seen, 1)}
                if val_data is not None:
                    record["val_accuracy"] = evaluate(model, val_data, normalization=normalization, device=dev)["accuracy"]
                    bar.update(task, status=f"epoch {epoch + 1}/{n_epochs} loss {record['loss']:.4f} "
                                            f"acc {record['train_accuracy']:.2f}% val acc {record['val_accuracy']:.2f}%")
                history.append(record)
                if on_epoch is not None and step == (epoch + 1) * per_epoch:  # whole epochs only
                    on_epoch(epoch + 1, step, record)
                done = epoch + 1 == n_epochs
                if ckpt is not None and not done and recipe.checkpoint_every > 0 \
                        and (epoch + 1) % recipe.checkpoint_every == 0:
                    save_checkpoint(ckpt, {
                        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "rng": torch.get_rng_state(),
                        "epoch": epoch + 1,
                        "step": step,
                        "history": history,
                        "recipe": recipe.to_dict(),
                        "n_train": len(train_data),
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
    """Logits (N, num_classes) of ``model`` on ``data`` (N, C, H, W) in eval mode.

    The model is left in eval mode on ``device``; :func:`evaluate` restores its mode.
    """
    check_batch_size(batch_size)
    dev = resolve_device(device)
    norm = normalization or {}
    net = Normalized(model, norm.get("mean"), norm.get("std")).to(dev).eval()
    outs = []
    for x, _ in batches(data, batch_size, device=dev):
        out = net(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or len(out) != len(x):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeMismatchError(f"a classifier must return logits of shape (batch, classes); "
                                     f"the model returned {shape} for a batch of {len(x)}")
        outs.append(out.float().cpu())
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
            raise ShapeMismatchError(f"the model cannot take inputs of shape {tuple(data.x.shape[1:])} "
                                     f"from {data.info.name!r}: {str(err).splitlines()[0]}") from None
        raise
    finally:
        model.train(was_training)
    if logits.shape[1] <= int(data.y.max()):
        raise ShapeMismatchError(f"the model has {logits.shape[1]} outputs but {data.info.name!r} has labels "
                                 f"up to {int(data.y.max())}")
    correct = int((logits.argmax(1) == data.y).sum())
    n = len(data)  # integer counts: a float32 mean would report 15.000000596 %
    return {"accuracy": 100.0 * correct / n, "error": 100.0 * (n - correct) / n, "n": n}


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
    snapshots: Snapshots | None = None,
) -> LoadedModel:
    """Build ``arch`` for dataset ``data``, train it with ``recipe`` and measure test accuracy.

    ``limit`` keeps the first ``limit`` training images; validation and test splits
    stay whole so that the recorded accuracies are comparable. ``snapshots`` writes model
    files at epoch 0 and every ``snapshots.every`` epochs (:mod:`nnforensics.io.snapshots`).

    Returns:
        :class:`~nnforensics.io.LoadedModel` (on CPU, eval mode) whose metadata holds the
        recipe and metrics.
    """
    from .data.registry import load_dataset
    from .models.factory import create_model

    recipe.validate()
    resolve_device(device)  # fail before loading data
    train_data = load_dataset(data, "train", limit=limit)
    val_data = load_dataset(data, "val")
    test_data = load_dataset(data, "test")
    loaded = create_model(arch, arch_args, seed=recipe.init_seed, data=train_data.info)
    info = train_data.info
    if recipe.augment and info.augment == "none":
        recipe = replace(recipe, augment=False)
    on_epoch = None
    if snapshots is not None:
        base = replace(loaded.meta.copy(), dataset=data, recipe=recipe.to_dict(),
                       metrics={"train_images": len(train_data)})
        on_epoch = snapshots.hook(loaded.model, base)
    result = train(loaded.model, train_data, recipe, val_data=val_data, normalization=info.normalization,
                   device=device, checkpoint_path=checkpoint_path, resume=resume, quiet=quiet,
                   extra_loss=extra_loss, description=f"train {arch}", on_epoch=on_epoch)
    test = evaluate(loaded.model, test_data, normalization=info.normalization, device=device)
    loaded.model.to("cpu")
    meta = loaded.meta
    meta.dataset = data
    meta.recipe = recipe.to_dict()
    meta.metrics = {"test_accuracy": test["accuracy"], "test_error": test["error"], "test_n": test["n"],
                    "val_accuracy": result.val_accuracy, "train_images": len(train_data)}
    meta.history.append({"op": "train", "epochs": recipe.epochs, "steps": result.steps, "dataset": data})
    return loaded
