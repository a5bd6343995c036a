"""Training checkpoints for ``--resume``: tensors and plain values only.

Written with ``torch.save`` and read back with ``weights_only=True``, so a checkpoint
cannot carry code either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptFileError
from ..utils.atomic import atomic_path
from .torchfile import torch_load_weights_only

#: Entries every checkpoint written by :func:`nnforensics.training.train` holds.
REQUIRED_KEYS = ("model", "optimizer", "rng", "epoch", "step", "history", "recipe")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint dict (state dicts, epoch, RNG state, recipe)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (never runs code from it)."""
    path = Path(path)
    state = torch_load_weights_only(path, "checkpoint")
    if not isinstance(state, dict) or "model" not in state:
        raise CorruptFileError(f"{str(path)!r} is not an nnforensics training checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing or not isinstance(state["rng"], torch.Tensor) or not isinstance(state["model"], dict):
        raise CorruptFileError(f"checkpoint {str(path)!r} is incomplete (missing or malformed: "
                               f"{', '.join(missing) or 'rng/model'}); delete it to start afresh")
    return state
