"""SVHN .mat files (MATLAB v5 via scipy, v7.3 via h5py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafmt import svhn_arrays, write_mat73, write_svhn
from scipy.io import savemat

from nnforensics.data import load_dataset
from nnforensics.errors import ConfigError, CorruptFileError, DataError


def _nchw(x):
    return x.transpose(3, 2, 0, 1)


def test_svhn_round_trip(tmp_path):
    arrays = write_svhn(tmp_path, {"train": 50, "test": 20})  # val = 50 // 10 = 5
    (xt, yt), (xs, ys) = arrays["train"], arrays["test"]
    train, val, test = (load_dataset(f"svhn:{tmp_path}", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (45, 5, 20)
    assert train.x.dtype == torch.uint8 and train.x.shape == (45, 3, 32, 32)
    np.testing.assert_array_equal(train.x.numpy(), _nchw(xt)[:45])
    np.testing.assert_array_equal(val.x.numpy(), _nchw(xt)[45:])
    np.testing.assert_array_equal(val.y.numpy(), yt[45:, 0] % 10)
    np.testing.assert_array_equal(test.x.numpy(), _nchw(xs))
    # (H, W, C, N): pixel (row 3, col 7, green) of image 4
    assert int(test.x[4, 1, 3, 7]) == int(xs[3, 7, 1, 4])
    np.testing.assert_array_equal(test.y.numpy(), ys[:, 0] % 10)
    assert test.y[0] == 0 and set(test.y.tolist()) <= set(range(10))  # label 10 is digit 0
    info = train.info
    assert info.mean == (0.4377, 0.4438, 0.4728) and info.std == (0.1980, 0.2010, 0.1970)
    assert info.augment == "crop" and info.crop_padding == 4 and info.num_classes == 10


def test_labels_stored_as_double(tmp_path):
    rng = np.random.default_rng(3)
    x, y = svhn_arrays(rng, 8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y.astype(np.float64)})
    np.testing.assert_array_equal(load_dataset(f"svhn:{tmp_path}", "test").y.numpy(), y[:, 0] % 10)


def test_v73_file_matches_v5(tmp_path):
    rng = np.random.default_rng(4)
    x, y = svhn_arrays(rng, 12)
    v5, v73 = tmp_path / "v5", tmp_path / "v73"
    v5.mkdir()
    v73.mkdir()
    savemat(v5 / "test_32x32.mat", {"X": x, "y": y})
    write_mat73(v73 / "test_32x32.mat", {"X": x, "y": y.astype(np.float64)})
    a, b = load_dataset(f"svhn:{v5}", "test"), load_dataset(f"svhn:{v73}", "test")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_svhn_extra(tmp_path):
    arrays = write_svhn(tmp_path, {"train": 30, "test": 10, "extra": 40})
    train = load_dataset(f"svhn-extra:{tmp_path}", "train")
    assert len(train) == 27 + 40
    np.testing.assert_array_equal(train.x[27:].numpy(), _nchw(arrays["extra"][0]))
    assert len(load_dataset(f"svhn-extra:{tmp_path}", "val")) == 3
    assert len(load_dataset(f"svhn:{tmp_path}", "train")) == 27  # plain svhn ignores extra
    (tmp_path / "extra_32x32.mat").unlink()
    with pytest.raises(DataError, match="extra_32x32.mat"):
        load_dataset(f"svhn-extra:{tmp_path}", "train")


def test_missing(tmp_path):
    with pytest.raises(ConfigError, match="train_32x32.mat"):
        load_dataset("svhn", "test")
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_dataset(f"svhn:{tmp_path}", "test")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_mat(tmp_path, damage):
    write_svhn(tmp_path, {"test": 10})
    path = tmp_path / "test_32x32.mat"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"\x00" * 300, "empty": b""}[damage])
    with pytest.raises(CorruptFileError, match="not a readable MATLAB file"):
        load_dataset(f"svhn:{tmp_path}", "test")


def test_truncated_v73(tmp_path):
    x, y = svhn_arrays(np.random.default_rng(0), 6)
    path = tmp_path / "test_32x32.mat"
    write_mat73(path, {"X": x, "y": y.astype(np.float64)})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        load_dataset(f"svhn:{tmp_path}", "test")


@pytest.mark.parametrize("variables, message", [
    ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((5, 1), np.uint8)}, "4 images but 5 labels"),
    ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[1], [2], [11], [3]], np.uint8)}, "out of range"),
    ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[1], [0], [2], [3]], np.uint8)}, "out of range"),
    ({"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1), np.uint8)}, "shape"),
    ({"X": np.zeros((32, 32, 3, 4), np.float64), "y": np.ones((4, 1), np.uint8)}, "uint8"),
    ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.full((4, 1), 1.5)}, "whole numbers"),
    ({"X": np.zeros((32, 32, 3, 4), np.uint8)}, "no variable y"),
    ({"X": np.zeros((32, 32, 3, 0), np.uint8), "y": np.zeros((0, 1), np.uint8)}, "empty"),
])
def test_bad_contents(tmp_path, variables, message):
    savemat(tmp_path / "test_32x32.mat", variables)
    with pytest.raises(DataError, match=message):
        load_dataset(f"svhn:{tmp_path}", "test")
