"""CSAW-HackML-style .h5 files (keys data/label) written with h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from datafmt import write_csaw_h5

from nnforensics.data import DataWarning, load_dataset
from nnforensics.errors import ConfigError, CorruptFileError, DataError


def _csaw(rng, n, classes=20, dtype=np.float32):
    """(N, 3, 55, 47) whole numbers 0..255 (as CSAW stores them) and labels."""
    data = rng.integers(0, 256, size=(n, 3, 55, 47)).astype(dtype)
    label = (np.arange(n) % classes).astype(np.float32)  # every class present
    return data, label


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_single_file_round_trip_and_seeded_split(tmp_path, dtype):
    data, label = _csaw(np.random.default_rng(0), 100, classes=10, dtype=dtype)
    path = write_csaw_h5(tmp_path / "bd_test.h5", data, label)
    spec = f"h5:{path}"
    whole = load_dataset(spec, "all")
    assert whole.x.dtype == torch.uint8 and whole.x.shape == (100, 3, 55, 47)
    np.testing.assert_array_equal(whole.x.numpy(), data.astype(np.uint8))  # file order kept
    np.testing.assert_array_equal(whole.y.numpy(), label.astype(np.int64))
    parts = {s: load_dataset(spec, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 70, "val": 10, "test": 20}
    assert all((parts["test"].y == c).sum() == 2 for c in range(10))  # stratified
    ids = [tuple(r.tolist()) for d in parts.values() for r in d.x.flatten(1)[:, :40]]
    assert len(set(ids)) == 100
    assert torch.equal(load_dataset(spec, "test").x, parts["test"].x)
    info = whole.info
    assert info.mean is None and info.std is None and info.normalization is None
    assert info.augment == "none" and info.num_classes == 1283  # CSAW identities
    # values 0..255 are scaled to [0, 1] when batches are drawn
    assert torch.allclose(whole[3][0], torch.from_numpy(data[3].astype(np.float32) / 255))


def test_channels_last_matches_channels_first(tmp_path):
    data, label = _csaw(np.random.default_rng(1), 30)
    a = write_csaw_h5(tmp_path / "a.h5", data, label)
    b = write_csaw_h5(tmp_path / "b.h5", data.transpose(0, 2, 3, 1), label)
    x_a, x_b = load_dataset(f"h5:{a}", "all"), load_dataset(f"h5:{b}", "all")
    assert torch.equal(x_a.x, x_b.x) and x_b.x.shape[1:] == (3, 55, 47)


def test_fractional_values_are_divided_by_255(tmp_path):
    data = np.random.default_rng(2).uniform(0, 255, size=(20, 3, 55, 47))
    path = write_csaw_h5(tmp_path / "f.h5", data, np.arange(20) % 4)
    got = load_dataset(f"h5:{path}", "all")
    assert got.x.dtype == torch.float32
    np.testing.assert_allclose(got.x.numpy(), data / 255, rtol=1e-6)


def test_values_already_in_unit_range_warn(tmp_path):
    data = np.random.default_rng(2).uniform(0, 1, size=(20, 3, 55, 47))
    path = write_csaw_h5(tmp_path / "f.h5", data, np.arange(20) % 4)
    with pytest.warns(DataWarning, match="nearly black"):
        load_dataset(f"h5:{path}", "all")


def test_csaw_folder_layouts(tmp_path):
    rng = np.random.default_rng(3)
    valid, test = _csaw(rng, 90, classes=9), _csaw(rng, 30, classes=9)
    write_csaw_h5(tmp_path / "valid.h5", *valid)
    write_csaw_h5(tmp_path / "test.h5", *test)
    (tmp_path / "bd_valid.h5").write_bytes(b"ignored: not a role name")
    spec = f"h5:{tmp_path}"
    np.testing.assert_array_equal(load_dataset(spec, "val").x.numpy(), valid[0].astype(np.uint8))
    np.testing.assert_array_equal(load_dataset(spec, "test").y.numpy(), test[1].astype(np.int64))
    with pytest.raises(DataError, match=r"no train file.*--data h5:.*valid\.h5"):
        load_dataset(spec, "train")
    assert len(load_dataset(spec, "all")) == 120


def test_clean_prefixed_names_and_train_holdout(tmp_path):
    rng = np.random.default_rng(4)
    train, test = _csaw(rng, 100, classes=10), _csaw(rng, 20, classes=10)
    write_csaw_h5(tmp_path / "clean_train_data.h5", *train)
    write_csaw_h5(tmp_path / "clean_test_data.h5", *test)
    spec = f"h5:{tmp_path}"
    tr, va = load_dataset(spec, "train"), load_dataset(spec, "val")
    assert (len(tr), len(va)) == (90, 10) and sorted(va.y.tolist()) == list(range(10))
    assert len(load_dataset(spec, "trainval")) == 100


def test_num_classes_from_attribute_or_labels(tmp_path):
    x = np.zeros((10, 32, 32, 3), np.uint8)
    path = write_csaw_h5(tmp_path / "a.h5", x, np.arange(10) % 5)
    assert load_dataset(f"h5:{path}", "all").info.num_classes == 5
    path = write_csaw_h5(tmp_path / "b.h5", x, np.arange(10) % 5, num_classes=7)
    assert load_dataset(f"h5:{path}", "all").info.num_classes == 7
    path = write_csaw_h5(tmp_path / "c.h5", x, np.arange(10) % 5, num_classes=3)
    with pytest.raises(DataError, match="labels must lie in 0..2"):
        load_dataset(f"h5:{path}", "all")


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(ConfigError, match="label"):
        load_dataset("h5", "all")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"h5:{tmp_path / 'nope.h5'}", "all")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train/valid/test"):
        load_dataset(f"h5:{tmp_path / 'empty'}", "test")
    data, label = _csaw(np.random.default_rng(5), 10)
    path = write_csaw_h5(tmp_path / "t.h5", data, label)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CorruptFileError, match="HDF5"):
        load_dataset(f"h5:{path}", "all")
    path.write_bytes(b"definitely not hdf5")
    with pytest.raises(CorruptFileError):
        load_dataset(f"h5:{path}", "all")


@pytest.mark.parametrize("make, error, message", [
    (lambda f: (f.create_dataset("x", data=np.zeros((2, 3, 5, 5))), f.create_dataset("label", data=[0, 1])),
     DataError, "'data' and 'label'"),
    (lambda f: (f.create_dataset("data", data=np.zeros((3, 3, 5, 5))), f.create_dataset("label", data=[0, 1])),
     DataError, "3 images but 2 labels"),
    (lambda f: (f.create_dataset("data", data=np.zeros((2, 3, 5, 5))), f.create_dataset("label", data=[0, -1])),
     DataError, "out of range"),
    (lambda f: (f.create_dataset("data", data=np.full((2, 3, 5, 5), 300.0)), f.create_dataset("label", data=[0, 1])),
     DataError, "0..255"),
    (lambda f: (f.create_dataset("data", data=np.zeros((2, 3, 5, 5))), f.create_dataset("label", data=[0.5, 1])),
     DataError, "whole numbers"),
    (lambda f: (f.create_dataset("data", data=np.zeros((2, 7, 5, 5))), f.create_dataset("label", data=[0, 1])),
     DataError, "channel axis"),
    (lambda f: (f.create_dataset("data", data=np.zeros((2, 75))), f.create_dataset("label", data=[0, 1])),
     DataError, "images must be"),
    (lambda f: (f.create_dataset("data", data=np.zeros((0, 3, 5, 5))), f.create_dataset("label", data=np.zeros(0))),
     DataError, "empty"),
    (lambda f: (f.create_group("data"), f.create_dataset("label", data=[0, 1])), DataError, "not groups"),
])
def test_bad_contents(tmp_path, make, error, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        make(f)
    with pytest.raises(error, match=message):
        load_dataset(f"h5:{path}", "all")
