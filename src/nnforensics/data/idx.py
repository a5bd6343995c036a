"""MNIST-style idx files (``train-images-idx3-ubyte[.gz]`` ...): MNIST and Fashion-MNIST.

Layout of ``--data mnist:PATH`` / ``--data fashion-mnist:PATH``: a folder holding
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each optionally gzip-compressed (``.gz``) and also
accepted with a dot (``train-images.idx3-ubyte``, as on Kaggle); the files may also
sit in ``PATH/raw/`` or ``PATH/<MNIST|FashionMNIST>/raw/`` (torchvision's layout).

Splits: ``test`` = the official 10,000 test images; ``val`` = the last 10,000 of
the official 60,000 training images (the classic 50k/10k/10k; at most 1/6 of a
smaller file); ``train`` = the rest.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CorruptFileError, DataError
from .cache import cached, file_signature
from ..io.limits import check_deflate_ratio, check_size, read_exact, reading
from .registry import ArrayDataset, DatasetInfo
from .splits import holdout_size
from .validate import as_labels, make_dataset

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_VAL_SIZE = 10_000


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (gzip-compressed when the name ends in ``.gz``).

    The header (4 + 4 * ndim bytes) is read first, even from a gzip stream; the
    declared size is checked against :func:`~nnforensics.io.limits.max_data_bytes` and against
    what the file can hold, then the data are read incrementally: a stream holding
    more or fewer bytes than declared is refused without being decompressed whole.

    Returns:
        The array with the shape and dtype the header declares (big-endian types
        converted to native order).

    Raises:
        CorruptFileError: unreadable, bad magic number, or a byte count that does
            not match the header (truncated or padded).
        DataError: the header declares more than the bound.
    """
    path = Path(path)
    where = repr(str(path))
    compressed = path.suffix == ".gz"
    try:
        with reading(where), (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            dims, dtype = _read_header(handle, where)
            nbytes = math.prod(dims) * dtype.itemsize
            _check_declared(path, dims, nbytes, 4 + 4 * len(dims), compressed, where)
            data = read_exact(handle, nbytes, where)
            if handle.read(1):
                raise CorruptFileError(f"{where} is truncated or corrupt: it holds more data than the "
                                       f"{nbytes} bytes its header promises for shape {dims}")
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise CorruptFileError(f"cannot read idx file {where} (truncated or corrupt): {err}") from None
    arr = data.view(dtype).reshape(dims)
    if not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))  # our own buffer: no copy
    return arr


def _read_header(handle: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """(dims, dtype) from the magic number and the dimensions that follow it."""
    magic = handle.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise CorruptFileError(f"{where} is not an idx file (bad magic number)")
    ndim = magic[3]
    raw_dims = handle.read(4 * ndim)
    if ndim == 0 or len(raw_dims) < 4 * ndim:
        raise CorruptFileError(f"{where} is truncated or corrupt (header)")
    return struct.unpack(f">{ndim}I", raw_dims), np.dtype(_DTYPES[magic[2]])


def _check_declared(path: Path, dims: tuple[int, ...], nbytes: int, header: int, compressed: bool,
                    where: str) -> None:
    """Refuse a declared size over the bound, or one that the file on disk cannot hold."""
    check_size(nbytes, where, f"the idx header (shape {dims})")
    size = path.stat().st_size
    if compressed:
        check_deflate_ratio(nbytes, size, where, f"the header (shape {dims})")
    elif size - header != nbytes:
        raise CorruptFileError(f"{where} is truncated or corrupt: {size - header} data bytes, "
                               f"the header promises {nbytes} for shape {dims}")


def _candidates(stem: str) -> list[str]:
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def find_idx_file(folder: Path, stem: str, subfolders: tuple[str, ...] = ()) -> Path:
    """``folder/stem[.gz]``, also looked for in ``raw/`` and ``<sub>/raw/``."""
    bases = [folder, folder / "raw", *(folder / sub / "raw" for sub in subfolders)]
    for base in bases:
        for name in _candidates(stem):
            if (base / name).is_file():
                return base / name
    raise DataError(f"{str(folder)!r} has no {stem}[.gz] (looked in {', '.join(str(b) for b in bases)}); "
                    f"expected the four MNIST-format idx files train-images-idx3-ubyte, "
                    f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")


def _read_pair(img_path: Path, lbl_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of one official split."""
    images = read_idx(img_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{str(img_path)!r}: expected uint8 images of shape (N, H, W), "
                        f"got {images.dtype} {images.shape}")
    raw_labels = read_idx(lbl_path)
    if raw_labels.ndim != 1:
        raise DataError(f"{str(lbl_path)!r}: expected labels of shape (N,), got {raw_labels.shape}")
    labels = as_labels(raw_labels, str(lbl_path), num_classes)
    if len(images) != len(labels):
        raise DataError(f"{str(img_path)!r} has {len(images)} images but {str(lbl_path)!r} has {len(labels)} labels")
    return images[:, None], labels


def read_idx_split(folder: str, split: str, info: DatasetInfo, val_size: int = MNIST_VAL_SIZE,
                   subfolders: tuple[str, ...] = ()) -> ArrayDataset:
    """Split ``split`` of an idx folder (see the module docstring for layout and splits)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{info.name}: expected a folder of idx files, got {folder!r}")
    official = "test" if split == "test" else "train"
    img_path, lbl_path = (find_idx_file(root, stem, subfolders) for stem in _NAMES[official])
    key = ("idx", info.num_classes, file_signature([img_path, lbl_path]))
    images, labels = cached(key, lambda: _read_pair(img_path, lbl_path, info.num_classes))
    if len(images) == 0:
        raise DataError(f"{str(img_path)!r} holds no images")
    if split != "test":
        n_val = holdout_size(len(images), val_size, 1 / 6)
        if n_val == 0:
            raise DataError(f"{str(img_path)!r} has {len(images)} image(s): too few to hold out a validation split")
        part = slice(len(images) - n_val, None) if split == "val" else slice(0, len(images) - n_val)
        images, labels = images[part], labels[part]
    if images.shape[2:] != tuple(info.input_shape[1:]):
        raise DataError(f"{str(img_path)!r}: images are {images.shape[2]}x{images.shape[3]}, "
                        f"{info.name} images are {info.input_shape[1]}x{info.input_shape[2]}")
    return make_dataset(images, labels, info, split, str(root))


# ----------------------------------------------------------------- Fashion-MNIST

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_INFO = DatasetInfo("fashion-mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), augment="none",
                           class_names=FASHION_CLASSES)


def fashion_source() -> str:
    return ("PATH: folder with the idx files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz; also PATH/raw/ or "
            "PATH/FashionMNIST/raw/)")


def read_fashion_mnist(path: str | None, split: str) -> ArrayDataset:
    """Fashion-MNIST from an idx folder: 50,000 / 10,000 / 10,000 (val = last 10,000 of train)."""
    if path is None:
        raise DataError("fashion-mnist needs a folder: --data fashion-mnist:FOLDER (" + fashion_source() + ")")
    return read_idx_split(path, split, FASHION_INFO, subfolders=("FashionMNIST",))
