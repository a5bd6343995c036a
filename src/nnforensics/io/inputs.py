"""Example inputs read from a file: what a model is fed to find its permutation groups.

``nnf ... --example-inputs FILE`` takes a ``.safetensors`` or ``.npz`` file (read with
``allow_pickle=False``) of one or more named tensors, each with its batch axis first
(a batch of 2 or more is best):

* one tensor: the model is called as ``model(x)`` (its name does not matter);
* several: ``model(name=tensor, ...)``, keyword arguments in the file's order, e.g.
  ``input_ids`` (integers) and ``attention_mask`` for a BERT-style model.

Dtypes are kept: floating point, integers (token ids), booleans (masks); unsigned
integers wider than 8 bits become int64 (torch indexes with signed integers). Files
are data: shapes and dtypes are checked against
:data:`~nnforensics.io.limits.MAX_INPUT_VALUES` (all tensors together: a batch, not a
dataset) before any tensor is read, ``.npz`` archives are read by :mod:`.npzfile` (zip
sizes and deflate ratios checked first), and NaN/Inf values are refused.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, CorruptFileError, DataError
from .limits import MAX_INPUT_VALUES
from .npzfile import NpyHeader, read_npz_arrays

SUFFIXES = (".safetensors", ".npz")
MAX_TENSORS = 64
_KINDS = "biuf"  # numpy kinds accepted: bool, signed and unsigned integers, floating point
_EXACT = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def read_example_inputs(path: str | os.PathLike) -> torch.Tensor | dict[str, torch.Tensor]:
    """The tensor (one in the file) or the named tensors (several, in file order) of ``path``.

    Raises:
        ConfigError: missing file, unsupported type, names that cannot be keyword arguments.
        CorruptFileError: unreadable file.
        UnsafeFileError: an ``.npz`` member that only pickle could read.
        DataError: no tensors, empty tensors, scalars, unsupported dtypes, NaN/Inf, too many values.
    """
    path = Path(path)
    where = f"example inputs {str(path)!r}"
    _check_file(path, where)
    suffix = path.suffix.lower()
    tensors = _read_safetensors(path, where) if suffix == ".safetensors" else _read_npz(path, where)
    if not tensors:
        raise DataError(f"{where} holds no tensors")
    for name, tensor in tensors.items():
        _check_tensor(name, tensor, where)
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    bad = [name for name in tensors if not name.isidentifier()]
    if bad:
        raise ConfigError(f"{where}: several tensors are passed to the model by name, so each name must be a "
                          f"Python identifier (like input_ids); got {bad[0]!r}")
    return tensors


def _check_file(path: Path, where: str) -> None:
    if not path.exists():
        raise ConfigError(f"{where}: file not found")
    if not path.is_file():
        raise ConfigError(f"{where}: not a regular file")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"{where}: example inputs are {' or '.join(SUFFIXES)} files of named tensors; "
                          f"got {path.suffix or 'a file without extension'!r}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{where} is empty")


def _check_count(total: int, where: str) -> None:
    if total > MAX_INPUT_VALUES:
        raise DataError(f"{where} declares {total:,} values; example inputs are a small batch "
                        f"(at most {MAX_INPUT_VALUES:,} values)")


def _read_safetensors(path: Path, where: str) -> dict[str, torch.Tensor]:
    """Header first (shapes, dtypes, size), then the tensors, in header order."""
    from .safetensors_file import read_header, read_tensors

    header = read_header(path)
    if len(header.entries) > MAX_TENSORS:
        raise DataError(f"{where} holds {len(header.entries)} tensors; at most {MAX_TENSORS} inputs are accepted")
    _check_count(sum(math.prod(e.shape) for e in header.entries.values()), where)
    tensors = read_tensors(path, header)
    return {name: _widen(t) for name, t in tensors.items()}


def _widen(tensor: torch.Tensor) -> torch.Tensor:
    """uint16/32/64 -> int64 (torch indexes with signed integers)."""
    if tensor.dtype in (getattr(torch, "uint16", None), getattr(torch, "uint32", None), getattr(torch, "uint64", None)):
        return torch.from_numpy(_widen_array(tensor.numpy()))
    return tensor


def _widen_array(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        if array.size and int(array.max()) > np.iinfo(np.int64).max:
            raise DataError("an unsigned integer input holds values beyond int64")
        return array.astype(np.int64)
    return array


def _read_npz(path: Path, where: str) -> dict[str, torch.Tensor]:
    """Every ``.npy`` member (:mod:`.npzfile`): count, dtypes and total size checked from the headers first."""

    def check(headers: dict[str, NpyHeader]) -> None:
        if len(headers) > MAX_TENSORS:
            raise DataError(f"{where} holds {len(headers)} arrays; at most {MAX_TENSORS} inputs are accepted")
        for name, header in headers.items():
            if header.dtype.kind not in _KINDS:
                raise DataError(f"{where}: array {name!r} has dtype {header.dtype}; example inputs are floating "
                                f"point, integer or boolean")
        _check_count(sum(math.prod(h.shape) for h in headers.values()), where)

    arrays = read_npz_arrays(path, where, check)
    return {name: torch.from_numpy(np.array(_widen_array(a), order="C")) for name, a in arrays.items()}


def _check_tensor(name: str, tensor: torch.Tensor, where: str) -> None:
    """A batch (ndim >= 1, not empty) of floats, integers or booleans without NaN/Inf."""
    if not (tensor.is_floating_point() or tensor.dtype in _EXACT):
        raise DataError(f"{where}: tensor {name!r} has dtype {tensor.dtype}; example inputs are floating point, "
                        f"integer or boolean")
    if tensor.dim() == 0 or tensor.numel() == 0:
        raise DataError(f"{where}: tensor {name!r} has shape {tuple(tensor.shape)}; give a batch "
                        f"(batch axis first, e.g. (2, 3, 32, 32) or (2, 128))")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise DataError(f"{where}: tensor {name!r} holds NaN or Inf values")


def for_model(inputs: torch.Tensor | dict[str, torch.Tensor], model: torch.nn.Module,
              device: str | torch.device | None = None) -> tuple[torch.Tensor, ...] | dict[str, torch.Tensor]:
    """Inputs as the model takes them: a tuple (one tensor) or a dict (named tensors), floating-point
    ones in the model's float dtype (numpy writes float64 by default), on ``device`` if given."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    def fit(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor
        return tensor.to(device) if device is not None else tensor

    if isinstance(inputs, dict):
        return {name: fit(tensor) for name, tensor in inputs.items()}
    return (fit(inputs),)
