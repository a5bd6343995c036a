"""MNIST-style idx files (``train-images-idx3-ubyte[.gz]`` ...)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .registry import ArrayDataset, DatasetInfo
from .splits import split_train_val

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (optionally gzip-compressed)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read idx file {str(path)!r}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{str(path)!r} is not an idx file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{str(path)!r} is truncated (header)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{str(path)!r} is truncated or corrupt: {len(data) - header} data bytes, expected {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        for base in (folder, folder / "raw"):
            if (base / candidate).is_file():
                return base / candidate
    raise DataError(f"{str(folder)!r} has no {stem}[.gz]")


def read_idx_split(folder: str, split: str, info: DatasetInfo, val_size: int = 10000) -> ArrayDataset:
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"expected a folder of idx files, got {folder!r}")
    official = "test" if split == "test" else "train"
    img_name, lbl_name = _NAMES[official]
    images = read_idx(_find(root, img_name))
    labels = read_idx(_find(root, lbl_name)).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{folder!r}: images {images.shape} and labels {labels.shape} do not match")
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)[:, None])
    full = ArrayDataset(x, torch.from_numpy(labels), info, official, str(root))
    if split == "test":
        return full
    return split_train_val(full, split, min(val_size, len(full) // 6))
