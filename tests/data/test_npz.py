"""numpy .npz archives (allow_pickle=False)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnforensics.data import load_dataset
from nnforensics.errors import CorruptFileError, DataError, UnsafeFileError


def test_x_y_round_trip_and_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)  # channels-last
    y = np.arange(50) % 5
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    whole = load_dataset(f"npz:{path}", "all")
    assert whole.x.dtype == torch.uint8 and whole.x.shape == (50, 3, 8, 8)
    np.testing.assert_array_equal(whole.x.numpy(), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(whole.y.numpy(), y)
    parts = {s: load_dataset(f"npz:{path}", s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 35, "val": 5, "test": 10}
    assert sorted(parts["val"].y.tolist()) == [0, 1, 2, 3, 4]
    assert whole.info.num_classes == 5 and whole.info.normalization is None


def test_keras_layout_and_optional_keys(tmp_path):
    rng = np.random.default_rng(1)
    xt, xs = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    yt, ys = np.arange(40) % 10, np.arange(10)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=xt, y_train=yt, x_test=xs, y_test=ys, num_classes=np.int64(12),
                        class_names=np.array([f"c{i}" for i in range(12)]), mean=np.array([0.1307]),
                        std=np.array([0.3081]))
    test = load_dataset(f"npz:{path}", "test")
    np.testing.assert_array_equal(test.x[:, 0].numpy(), xs)
    tr, va = load_dataset(f"npz:{path}", "train"), load_dataset(f"npz:{path}", "val")
    assert (len(tr), len(va)) == (36, 4)
    assert test.info.num_classes == 12 and test.info.class_names[11] == "c11"
    assert test.info.mean == (0.1307,) and test.info.std == (0.3081,)


def test_explicit_val_and_float_pixels(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {f"x_{r}": rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float64) for r, n in
              (("train", 8), ("val", 3), ("test", 2))}
    arrays.update({f"y_{r}": np.zeros(len(arrays[f"x_{r}"]), np.int64) for r in ("train", "val", "test")})
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    val = load_dataset(f"npz:{path}", "val")
    assert val.x.dtype == torch.float32
    np.testing.assert_allclose(val.x.numpy(), arrays["x_val"], rtol=1e-6)
    assert len(load_dataset(f"npz:{path}", "train")) == 8


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.zeros((2, 1, 2, 2)), y=np.array([0, {"a": 1}], dtype=object))
    with pytest.raises(UnsafeFileError, match="object arrays"):
        load_dataset(f"npz:{path}", "all")


def test_corrupt_and_wrong_files(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((10, 1, 4, 4), np.uint8), y=np.zeros(10, np.int64))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        load_dataset(f"npz:{path}", "all")
    path.write_bytes(b"garbage, not a zip")
    with pytest.raises(CorruptFileError, match="zip"):
        load_dataset(f"npz:{path}", "all")
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(DataError, match=".npy"):
        load_dataset(f"npz:{npy}", "all")
    with pytest.raises(DataError, match="expected an .npz file"):
        load_dataset(f"npz:{tmp_path}", "all")


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.zeros(2, np.int64)}, "3 images but y has 2"),
    ({"x": np.zeros((3, 1, 4, 4))}, "no y"),
    ({"a": np.zeros(3)}, "expected arrays x and y"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.array([0, -1, 2])}, "out of range"),
    ({"x": np.full((3, 1, 4, 4), 2.0), "y": np.zeros(3, np.int64)}, r"\[0, 1\]"),
    ({"x": np.full((3, 1, 4, 4), np.nan), "y": np.zeros(3, np.int64)}, "NaN"),
    ({"x": np.zeros((3, 16)), "y": np.zeros(3, np.int64)}, "images must be"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.zeros((3, 2), np.int64)}, r"shape \(N,\)"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.array(["a", "b", "c"])}, "integers"),
    ({"x": np.zeros((0, 1, 4, 4)), "y": np.zeros(0, np.int64)}, "empty"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.zeros(3, np.int64), "x_train": np.zeros((3, 1, 4, 4))}, "both"),
    ({"x_train": np.zeros((30, 1, 4, 4)), "y_train": np.zeros(30, np.int64)}, "no test data"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.array([0, 1, 5]), "num_classes": np.int64(3)}, "0..2"),
    ({"x": np.zeros((3, 1, 4, 4)), "y": np.zeros(3, np.int64), "mean": np.array([0.1, 0.2])}, "per channel"),
])
def test_bad_contents(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    split = "test" if "x_train" in arrays and "x" not in arrays else "all"
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{path}", split)


def test_tiny_file_names_the_empty_split(tmp_path):
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.zeros((3, 1, 2, 2), np.uint8), y=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="leave the val split empty.*--split all"):
        load_dataset(f"npz:{path}", "val")


@pytest.mark.parametrize("mean, std", [([0.5], [float("nan")]), ([float("inf")], [0.3]), ([0.5], [0.0])])
def test_unusable_normalisation_in_the_archive_is_refused(tmp_path, mean, std):
    path = tmp_path / "bad-norm.npz"
    np.savez(path, x=np.zeros((20, 4, 4), np.uint8), y=np.arange(20) % 2, mean=np.array(mean), std=np.array(std))
    with pytest.raises(DataError, match="std must be|must be finite"):
        load_dataset(f"npz:{path}", "test")
