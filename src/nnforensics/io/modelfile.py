"""Reading and writing model files without ever executing code from them.

* ``.safetensors`` (preferred): tensors plus a JSON metadata entry (:class:`ModelMeta`);
  the header is validated by :mod:`.safetensors_file`, and files are written so that
  the same model and metadata always give the same bytes.
* ``.pt`` / ``.pth`` / ``.bin``: a plain state dict, read with
  ``torch.load(weights_only=True)`` (:mod:`.torchfile`); the architecture comes from ``--arch``.

:func:`open_model_file` gives a file's tensor names, shapes, dtypes and metadata
without reading the data, so that :func:`nnforensics.models.load_model` can check them
against the architecture before anything is allocated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.nn as nn

from ..errors import ConfigError, CorruptFileError, InvalidWeightsError
from ..utils.atomic import atomic_path, check_not_input
from .meta import META_KEY, ModelMeta
from .safetensors_file import Header, read_header, read_tensors, write_safetensors
from .torchfile import read_torch_state_dict

SAFETENSORS_SUFFIXES = {".safetensors"}
TORCH_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}


# ---------------------------------------------------------------- reading tensors

def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"file not found: {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"expected a model file, got a directory: {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"expected a model file, got a special file: {str(path)!r}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{str(path)!r} is empty")


def _is_safetensors(path: Path) -> bool:
    """True for ``.safetensors``, False for torch files; other suffixes are a :class:`ConfigError`."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return True
    if suffix in TORCH_SUFFIXES:
        return False
    known = ", ".join(sorted(SAFETENSORS_SUFFIXES | TORCH_SUFFIXES))
    raise ConfigError(
        f"unsupported model file type {suffix or '(none)'!r} for {str(path)!r}; "
        f"model files are {known} (a .pt/.pth state dict needs --arch)"
    )


def _meta_of(header: Header, path: Path) -> ModelMeta | None:
    """The nnforensics metadata of a safetensors header (None for files written by others)."""
    if META_KEY not in header.metadata:
        return None
    try:
        return ModelMeta.from_json(header.metadata[META_KEY])
    except CorruptFileError as err:
        raise CorruptFileError(f"{str(path)!r}: {err}") from None


@dataclass
class OpenedFile:
    """A model file whose tensor names, shapes and dtypes are known; the data may not be read yet."""

    path: Path
    layout: dict[str, torch.Tensor]  # real tensors, or data-less ``meta`` tensors from a header
    meta: ModelMeta | None
    header: Header | None  # safetensors: the data is read by :meth:`tensors`

    def tensors(self, check: bool = True) -> dict[str, torch.Tensor]:
        tensors = self.layout if self.header is None else read_tensors(self.path, self.header)
        if check:
            check_finite(tensors, f"weights in {str(self.path)!r}")
        return tensors


def open_model_file(path: Path) -> OpenedFile:
    """Names, shapes, dtypes and metadata of a model file; for safetensors, without reading the data."""
    _check_exists(path)
    if _is_safetensors(path):
        header = read_header(path)
        opened = OpenedFile(path, header.skeleton(), _meta_of(header, path), header)
    else:
        opened = OpenedFile(path, read_torch_state_dict(path), None, None)
    if not opened.layout:
        raise CorruptFileError(f"{str(path)!r} holds no tensors")
    return opened


def _non_finite(name: str, tensor: torch.Tensor, source: str) -> int:
    """How many values of ``tensor`` are NaN/Inf; a tensor that cannot be counted is an :class:`InvalidWeightsError`."""
    if tensor.is_quantized:
        _unusable(name, tensor, source)
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    try:
        return int((~torch.isfinite(tensor)).sum())
    except (RuntimeError, NotImplementedError):  # sparse layouts, data-less meta tensors...
        _unusable(name, tensor, source)


def _unusable(name: str, tensor: torch.Tensor, source: str) -> NoReturn:
    kind = str(tensor.layout if tensor.layout != torch.strided else tensor.dtype).removeprefix("torch.")
    raise InvalidWeightsError(f"{source}: tensor {name!r} ({kind}, on {tensor.device.type}) cannot be checked "
                              f"for NaN/Inf; only plain dense CPU tensors are used")


def check_finite(tensors: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Raise :class:`InvalidWeightsError` naming the first tensors holding NaN/Inf, or one that
    cannot be checked (sparse, quantized, data-less ``meta``)."""
    bad = []
    for name, tensor in tensors.items():
        n_bad = _non_finite(name, tensor, source)
        if n_bad:
            bad.append(f"{name} ({n_bad} of {tensor.numel()} values)")
    if bad:
        raise InvalidWeightsError(f"{source} contain NaN or Inf values: {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))


def load_state_dict(path: str | os.PathLike, check: bool = True) -> tuple[dict[str, torch.Tensor], ModelMeta | None]:
    """Read tensors (and metadata, if any) from a model file, safely.

    Args:
        path: ``.safetensors``, or a ``.pt``/``.pth``/``.bin``/``.ckpt`` state dict.
        check: refuse NaN/Inf weights (:class:`InvalidWeightsError`).

    Returns:
        ``(state_dict, meta)``; ``meta`` is None for files not written by nnforensics.
    """
    opened = open_model_file(Path(path))
    return opened.tensors(check), opened.meta


def read_meta(path: str | os.PathLike) -> ModelMeta | None:
    """The metadata of a safetensors model file (None for other files); reads no tensor data."""
    path = Path(path)
    _check_exists(path)
    return _meta_of(read_header(path), path) if _is_safetensors(path) else None


# ---------------------------------------------------------------- writing

def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as CPU tensors (no copy of tensors already there)."""
    return {k: v.detach().to("cpu") for k, v in model.state_dict().items()}


def check_model_output(path: str | os.PathLike, inputs: list[str | os.PathLike | None] | None = None) -> Path:
    """Validate an output model path before any work: ``.safetensors``, not a folder, not an input."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ConfigError(f"model outputs are written as .safetensors; got {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"output path {str(path)!r} is a directory; give a file name")
    check_not_input(path, inputs or [])
    return path


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    meta: ModelMeta,
    inputs: list[str | os.PathLike | None] | None = None,
) -> Path:
    """Write ``model`` and ``meta`` to a ``.safetensors`` file atomically.

    ``inputs`` are the files the command read; writing over one of them is refused.
    NaN/Inf weights are refused, and the metadata must read back. The file's bytes depend only on the tensors
    and the metadata.
    """
    path = check_model_output(path, inputs)
    tensors = state_dict_for_saving(model)
    check_finite(tensors, "weights of the model to save")
    text = meta.to_json()
    ModelMeta.from_json(text)
    with atomic_path(path) as tmp:  # same model and metadata -> same bytes (sorted header, fixed order)
        write_safetensors(tmp, tensors, {META_KEY: text, "format": "pt"})
    return path
