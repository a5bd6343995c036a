"""Training checkpoints for ``--resume``: tensors and plain values only.

Written with ``torch.save`` and read back with ``weights_only=True``, so a checkpoint
cannot carry code either.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptFileError, UnsafeFileError
from ..utils.atomic import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint dict (state dicts, epoch, RNG state, recipe)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeFileError(f"refused to load checkpoint {str(path)!r}: it holds Python objects ({err})") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError, ValueError) as err:
        raise CorruptFileError(f"checkpoint {str(path)!r} is unreadable (truncated or corrupt?): {err}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CorruptFileError(f"{str(path)!r} is not an nnforensics training checkpoint")
    return state
