"""Model files of a training run at whole epochs (``nnf train --save-every K``).

Every ``K`` epochs, and once at the initialisation (epoch 0), a complete model file
(the same format and metadata as the final output) is written next to the output
``m.safetensors`` as ``m.epoch<E>.safetensors``, atomically. These snapshots are for
analysis (e.g. which layers moved since initialisation); they are separate from the
resume checkpoint ``m.safetensors.ckpt`` (``Recipe.checkpoint_every``), and writing
them changes nothing in the training run.

A snapshot's metadata is the final file's, except: ``extra["epoch"]`` = E, ``metrics``
= that epoch's record (training loss and accuracy, validation accuracy when a
validation set is evaluated; nothing but ``train_images`` at epoch 0) and a last
``history`` entry ``{"op": "train", "epochs": E, "steps": ...}``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from ..utils.progress import info
from .meta import ModelMeta
from .modelfile import check_model_output, save_model

#: ``on_epoch(epoch, step, record)`` of :func:`nnforensics.training.train`.
EpochHook = Callable[[int, int, dict[str, float]], None]


def snapshot_path(out: str | os.PathLike, epoch: int) -> Path:
    """``dir/m.safetensors`` -> ``dir/m.epoch<epoch>.safetensors``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.epoch{epoch}{out.suffix}")


@dataclass
class Snapshots:
    """Where and how often a training run writes its snapshots.

    Attributes:
        out: the final model file; snapshots are named after it (:func:`snapshot_path`).
        every: K >= 1: a snapshot after every K-th whole epoch, plus epoch 0.
        inputs: files the run reads (never overwritten).
        recipe_extra: merged into the recorded recipe (e.g. the CLI's preset provenance).
        quiet: do not print the paths.
        written: paths written so far by this run.
    """

    out: Path
    every: int
    inputs: list[str | os.PathLike | None] = field(default_factory=list)
    recipe_extra: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    written: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"--save-every must be a whole number of epochs >= 1, got {self.every!r}")
        self.out = Path(self.out)

    def path(self, epoch: int) -> Path:
        return snapshot_path(self.out, epoch)

    def check(self, epochs: float) -> list[Path]:
        """Validate every snapshot path a run of ``epochs`` epochs can write (before training)."""
        paths = [self.path(e) for e in range(0, math.ceil(epochs) + 1, self.every)]
        for path in paths:
            check_model_output(path, self.inputs)
        return paths

    def save(self, model: nn.Module, meta: ModelMeta, epoch: int, step: int, record: dict[str, float]) -> Path:
        """Write ``model`` as the snapshot of ``epoch`` (``meta``: the run's metadata so far, not modified)."""
        snap = meta.copy()
        snap.recipe = {**(snap.recipe or {}), **self.recipe_extra}
        snap.metrics = {**{k: v for k, v in record.items() if k != "epoch"}, **snap.metrics}
        snap.history.append({"op": "train", "epochs": epoch, "steps": step, "dataset": snap.dataset})
        snap.extra = {**snap.extra, "epoch": epoch}
        path = save_model(model, self.path(epoch), snap, inputs=self.inputs)
        self.written.append(path)
        info(f"snapshot at epoch {epoch}: {path}", self.quiet)
        return path

    def hook(self, model: nn.Module, meta: ModelMeta) -> EpochHook:
        """The ``on_epoch`` callback for :func:`~nnforensics.training.train`: saves epochs 0, K, 2K, ..."""
        def on_epoch(epoch: int, step: int, record: dict[str, float]) -> None:
            if epoch % self.every == 0:
                self.save(model, meta, epoch, step, record)

        return on_epoch
