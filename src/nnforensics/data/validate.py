"""Input validation shared by the readers: raw arrays from a file -> a checked dataset.

Every check raises :class:`~nnforensics.errors.DataError` with the file (``where``)
and what to do, so that bad files never surface as raw numpy/torch tracebacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .registry import ArrayDataset, DatasetInfo


class DataWarning(UserWarning):
    """Data were usable but changed on the way in (e.g. images resized)."""


@contextmanager
def library_warnings(where: str) -> Iterator[None]:
    """Collect the warnings a decoding library raises inside the block; re-raise them as one DataWarning.

    Libraries (Pillow, scipy) warn with their own classes and wording, once per
    file; users get one :class:`DataWarning` naming ``where``, how many warnings
    there were and the first one.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    theirs = [w for w in caught if not issubclass(w.category, DataWarning)]
    for w in ours:  # our own warnings pass through unchanged
        warnings.warn(w.message, w.category, stacklevel=3)
    if theirs:
        first = theirs[0]
        more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
        warnings.warn(f"{where}: the decoder warned: {first.category.__name__}: {first.message}{more}",
                      DataWarning, stacklevel=3)


def as_labels(raw: Any, where: str, num_classes: int | None = None, *, first: int = 0) -> np.ndarray:
    """(N,) int64 labels from a list or array.

    Args:
        raw: labels as stored: a list of ints, or an integer array of shape (N,),
            (N, 1) or (1, N); floats are accepted when every value is integral
            (MATLAB/HDF5 files often store labels as doubles).
        where: file or dataset named in error messages.
        num_classes: labels must lie in ``first .. first + num_classes - 1``.
        first: smallest valid label (SVHN stores 1..10).
    """
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: labels are not a flat list of integers ({err})") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must have shape (N,), got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels must be integers, got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise DataError(f"{where}: labels must be whole numbers, found non-integer or NaN values")
    low, high = arr.min(), arr.max()
    last = first + num_classes - 1 if num_classes is not None else 2**31 - 1
    if low < first or high > last:
        bad = low if low < first else high
        raise DataError(f"{where}: label {bad!r} is out of range: labels must lie in {first}..{last}"
                        + (f" ({num_classes} classes)" if num_classes is not None else ""))
    return arr.astype(np.int64)


def to_nchw(arr: np.ndarray, where: str, layout: str = "auto") -> np.ndarray:
    """Images as (N, C, H, W).

    Args:
        arr: (N, H, W) grayscale, (N, C, H, W) or (N, H, W, C).
        where: named in error messages.
        layout: ``nchw``, ``nhwc`` or ``auto``: channels-first when axis 1 has 1, 3
            or 4 entries, else channels-last when axis 3 does; when both could be
            channels (e.g. (N, 3, 3, 3)) channels-first wins.
    """
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise DataError(f"{where}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), "
                                 f"got shape {arr.shape}")
    if layout == "auto":
        if arr.shape[1] in (1, 3, 4):
            layout = "nchw"
        elif arr.shape[3] in (1, 3, 4):
            layout = "nhwc"
        else:
            raise DataError(f"{where}: cannot tell the channel axis of images with shape {arr.shape} "
                                     f"(expected 1, 3 or 4 channels first or last)")
    return arr if layout == "nchw" else arr.transpose(0, 3, 1, 2)


def as_pixels(arr: np.ndarray, where: str, float_scale: float = 1.0) -> np.ndarray:
    """Pixel array as uint8 (8-bit data) or float32 in [0, 1].

    Args:
        arr: pixel values. Integers (any width) must lie in 0..255 and become uint8.
            Floats must lie in ``0 .. float_scale``: with ``float_scale=1`` they are
            kept as float32; with ``float_scale=255`` (0..255 stored as floats, as in
            CSAW's .h5) whole numbers become uint8 and others ``float32(arr / 255)``.
        where: named in error messages.
        float_scale: the float value that means full intensity (1 or 255).
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{where}: pixel values must be numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.uint8 if arr.dtype.kind in "iu" else np.float32)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: pixel values contain NaN or infinity")
    low, high = float(arr.min()), float(arr.max())
    top = 255 if arr.dtype.kind in "iu" else float_scale
    if low < 0 or high > top:
        hint = ("store 8-bit images as integers 0..255 or floats in [0, 1]" if top == 1
                else f"values must lie in 0..{top:g}")
        raise DataError(f"{where}: pixel values span [{low:g}, {high:g}]; {hint}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.uint8)
    if float_scale == 255 and np.all(arr == np.round(arr)):
        return arr.astype(np.uint8)  # whole numbers 0..255 stored as floats: keep them exact and small
    return (arr / float_scale).astype(np.float32)


def make_dataset(x: np.ndarray, y: np.ndarray, info: DatasetInfo, split: str, source: str) -> ArrayDataset:
    """A checked :class:`ArrayDataset` from (N, C, H, W) pixels and (N,) labels.

    Checks: matching counts, non-empty, per-image shape == ``info.input_shape``, labels
    in ``0 .. info.num_classes - 1``. Read-only (cached) arrays are copied so that
    callers may modify the returned tensors.
    """
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{info.name} ({split}) at {source} is empty")
    if tuple(x.shape[1:]) != tuple(info.input_shape):
        raise DataError(f"{source}: images have shape {tuple(x.shape[1:])}, "
                                 f"expected {tuple(info.input_shape)} for {info.name}")
    if y.min() < 0 or y.max() >= info.num_classes:
        raise DataError(f"{source}: labels must lie in 0..{info.num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    if x.dtype not in (np.uint8, np.float32):
        raise DataError(f"{source}: internal pixel dtype {x.dtype} (expected uint8 or float32)")
    return ArrayDataset(torch.from_numpy(_owned(x)), torch.from_numpy(_owned(y, np.int64)), info, split, source)


def _owned(arr: np.ndarray, dtype: Any = None) -> np.ndarray:
    """A writeable C-contiguous array: read-only (cached) arrays and their views are copied."""
    if not arr.flags.writeable:
        return np.array(arr, dtype=dtype, order="C")
    return np.ascontiguousarray(arr, dtype=dtype)
