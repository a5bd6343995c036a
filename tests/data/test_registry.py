"""Specs, splits, the dataset list, and DatasetInfo/ArrayDataset checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnforensics.data import (
    SPLITS,
    ArrayDataset,
    DatasetInfo,
    list_datasets,
    load_dataset,
)
from nnforensics.errors import ConfigError, DataError, UnknownNameError


def test_every_dataset_is_listed_with_an_informative_source():
    entries = {e.name: e for e in list_datasets()}
    assert set(entries) >= {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "svhn-extra",
                            "imagefolder", "h5", "npz"}
    for name, entry in entries.items():
        source = entry.default_source()
        assert isinstance(source, str) and len(source) > 20, name
        if entry.needs_path:
            assert "PATH" in source or "ROOT" in source, name
    assert "data_batch_1" in entries["cifar10"].default_source()
    assert "train_32x32.mat" in entries["svhn"].default_source()
    assert "label" in entries["h5"].default_source()


def test_bad_specs_and_splits():
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_dataset("cifar11", "train")
    with pytest.raises(ConfigError):
        load_dataset("", "train")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", "validation")
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("digits", "train", limit=0)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist:/no/such/folder", "train")
    assert SPLITS == ("train", "val", "test", "trainval", "all")


def test_name_is_case_insensitive_and_limit(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 1, 2, 2), np.uint8), y=np.arange(20) % 2)
    data = load_dataset(f"NPZ:{tmp_path / 'd.npz'}", "train", limit=3)
    assert len(data) == 3


def test_datasetinfo_checks():
    with pytest.raises(ConfigError):
        DatasetInfo("x", 2, (1, 2, 2), (0.5,), None)
    with pytest.raises(ConfigError):
        DatasetInfo("x", 2, (1, 2, 2), (0.5,), (0.0,))
    with pytest.raises(ConfigError):
        DatasetInfo("x", 2, (1, 2, 2), None, None, augment="rotate")
    with pytest.raises(ConfigError):
        DatasetInfo("x", 2, (1, 2, 2), None, None, class_names=("a",))
    assert DatasetInfo("x", 2, (1, 2, 2), (0.5,), (0.25,)).normalization == {"mean": [0.5], "std": [0.25]}


def test_arraydataset_checks():
    info = DatasetInfo("x", 2, (1, 2, 2), None, None)
    with pytest.raises(DataError, match="labels"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, dtype=torch.int64), info)
    with pytest.raises(DataError, match="integers"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), torch.zeros(2), info)
    with pytest.raises(DataError, match="2 images but 3 labels"):
        ArrayDataset(torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.int64), info)
    with pytest.raises(DataError, match="empty"):
        ArrayDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64), info)
    data = ArrayDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1], dtype=torch.int32), info)
    assert data.y.dtype == torch.int64


def test_returned_tensors_do_not_alias_the_cache(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((20, 1, 2, 2), 5, np.uint8), y=np.arange(20) % 2)
    spec = f"npz:{tmp_path / 'd.npz'}"
    first = load_dataset(spec, "all")
    first.x.zero_()  # e.g. an experiment poisoning its copy in place
    assert int(load_dataset(spec, "all").x.max()) == 5


def test_edited_file_is_read_again(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 1, 2, 2), np.uint8), y=np.arange(20) % 2)
    assert len(load_dataset(f"npz:{path}", "all")) == 20
    np.savez(path, x=np.zeros((30, 1, 2, 2), np.uint8), y=np.arange(30) % 2)
    assert len(load_dataset(f"npz:{path}", "all")) == 30


def test_trainval_and_all_are_unions(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1), y=np.arange(40) % 4)
    spec = f"npz:{tmp_path / 'd.npz'}"
    tv = load_dataset(spec, "trainval")
    assert len(tv) == 32 and tv.split == "trainval"
    assert sorted(tv.x.flatten().tolist() + load_dataset(spec, "test").x.flatten().tolist()) == list(range(40))
    assert load_dataset(spec, "all").x.flatten().tolist() == list(range(40))  # file order
