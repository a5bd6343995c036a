"""CIFAR-10/100 readers on files written in the official python-pickle format."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from datafmt import (
    cifar_batch,
    cifar_images,
    py2_pickle,
    tar_gz,
    write_cifar10,
    write_cifar100,
)

from nnforensics.data import load_dataset
from nnforensics.errors import ConfigError, CorruptFileError, DataError, UnsafeFileError


def _train_images(batches):
    return np.concatenate([cifar_images(batches[f"data_batch_{i}"]) for i in range(1, 6)])


def _train_labels(batches):
    return np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])


@pytest.fixture
def cifar10(tmp_path):
    return tmp_path, write_cifar10(tmp_path)


def test_cifar10_folder_round_trip(cifar10):
    root, batches = cifar10
    folder = root / "cifar-10-batches-py"
    x_all, y_all = _train_images(batches), _train_labels(batches)  # 100 images: val = last 10
    train = load_dataset(f"cifar10:{folder}", "train")
    val = load_dataset(f"cifar10:{folder}", "val")
    test = load_dataset(f"cifar10:{folder}", "test")
    assert (len(train), len(val), len(test)) == (90, 10, 30)
    assert train.x.dtype == torch.uint8 and train.x.shape == (90, 3, 32, 32) and train.y.dtype == torch.int64
    np.testing.assert_array_equal(train.x.numpy(), x_all[:90])
    np.testing.assert_array_equal(val.x.numpy(), x_all[90:])
    np.testing.assert_array_equal(train.y.numpy(), y_all[:90])
    np.testing.assert_array_equal(test.x.numpy(), cifar_images(batches["test_batch"]))
    np.testing.assert_array_equal(test.y.numpy(), batches["test_batch"][b"labels"])
    # channel planes: the first 1024 values of a row are the red 32x32 plane, row-major
    row = batches["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(train.x[0, 0].numpy(), row[:1024].reshape(32, 32))
    np.testing.assert_array_equal(train.x[0, 2, 1].numpy(), row[2048 + 32:2048 + 64])
    info = train.info
    assert info.num_classes == 10 and info.input_shape == (3, 32, 32)
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2470, 0.2435, 0.2616)
    assert info.augment == "crop+flip" and info.crop_padding == 4
    assert info.class_names[0] == "airplane" and info.class_names[-1] == "truck"


def test_cifar10_parent_folder_and_archive_agree(cifar10, tmp_path_factory):
    root, _ = cifar10
    archive = tar_gz(root / "cifar-10-batches-py", tmp_path_factory.mktemp("arch") / "cifar-10-python.tar.gz")
    for spec in (f"cifar10:{root}", f"cifar10:{archive}", f"cifar10:{archive.parent}"):
        for split in ("train", "val", "test"):
            ref = load_dataset(f"cifar10:{root / 'cifar-10-batches-py'}", split)
            got = load_dataset(spec, split)
            assert torch.equal(got.x, ref.x) and torch.equal(got.y, ref.y), (spec, split)
            assert got.info == ref.info


def test_archive_is_read_in_memory_without_extracting(cifar10, tmp_path_factory):
    root, _ = cifar10
    where = tmp_path_factory.mktemp("only")
    archive = tar_gz(root / "cifar-10-batches-py", where / "cifar-10-python.tar.gz")
    before = sorted(os.listdir(where))
    assert len(load_dataset(f"cifar10:{archive}", "trainval")) == 100
    assert sorted(os.listdir(where)) == before


def test_cifar100_folder_and_archive(tmp_path):
    parts = write_cifar100(tmp_path)
    folder = tmp_path / "cifar-100-python"
    archive = tar_gz(folder, tmp_path / "cifar-100-python.tar.gz")
    for spec in (f"cifar100:{folder}", f"cifar100:{archive}"):
        train, val, test = (load_dataset(spec, s) for s in ("train", "val", "test"))
        assert (len(train), len(val), len(test)) == (90, 10, 40)
        np.testing.assert_array_equal(train.x.numpy(), cifar_images(parts["train"])[:90])
        np.testing.assert_array_equal(val.y.numpy(), parts["train"][b"fine_labels"][90:])
        np.testing.assert_array_equal(test.y.numpy(), parts["test"][b"fine_labels"])
        assert train.info.num_classes == 100 and train.info.class_names[5] == "class5"
        assert train.info.mean == (0.5071, 0.4865, 0.4409) and train.info.std == (0.2673, 0.2564, 0.2762)


@pytest.mark.parametrize("protocol", [2, 4])
def test_python3_pickles_are_read_too(tmp_path, protocol):
    write_cifar10(tmp_path, writer=lambda obj: pickle.dumps(obj, protocol=protocol))
    assert len(load_dataset(f"cifar10:{tmp_path}", "test")) == 30


def test_meta_is_optional_for_cifar10(cifar10):
    root, _ = cifar10
    (root / "cifar-10-batches-py" / "batches.meta").unlink()
    assert load_dataset(f"cifar10:{root}", "test").info.class_names[3] == "cat"


def test_crafted_batch_with_code_is_refused_and_does_not_run(cifar10):
    root, _ = cifar10
    marker = root / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(UnsafeFileError, match="system"):
        load_dataset(f"cifar10:{root}", "test")
    assert not marker.exists()


def test_crafted_batch_inside_archive_is_refused(cifar10, tmp_path_factory):
    root, _ = cifar10
    marker = root / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(Exploit(), protocol=2))
    archive = tar_gz(root / "cifar-10-batches-py", tmp_path_factory.mktemp("a") / "cifar-10-python.tar.gz")
    with pytest.raises(UnsafeFileError):
        load_dataset(f"cifar10:{archive}", "train")
    assert not marker.exists()


# ----------------------------------------------------------------- bad input

def _rewrite(root, name, batch):
    (root / "cifar-10-batches-py" / name).write_bytes(py2_pickle(batch))


def test_missing_folder_and_files(cifar10, tmp_path_factory):
    root, _ = cifar10
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"cifar10:{root / 'nope'}", "train")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset(f"cifar10:{empty}", "train")
    (root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        load_dataset(f"cifar10:{root}", "train")
    assert len(load_dataset(f"cifar10:{root}", "test")) == 30  # test needs only test_batch
    with pytest.raises(ConfigError, match="needs a path.*cifar-10-batches-py"):
        load_dataset("cifar10", "train")


def test_truncated_batch_is_corrupt(cifar10):
    root, _ = cifar10
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="test_batch"):
        load_dataset(f"cifar10:{root}", "test")


def test_corrupt_and_truncated_archives(cifar10, tmp_path_factory):
    root, _ = cifar10
    where = tmp_path_factory.mktemp("bad")
    archive = tar_gz(root / "cifar-10-batches-py", where / "cifar-10-python.tar.gz")
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        load_dataset(f"cifar10:{archive}", "test")
    archive.write_bytes(b"\x1f\x8b" + os.urandom(500))
    with pytest.raises(CorruptFileError):
        load_dataset(f"cifar10:{archive}", "test")


def test_archive_missing_members(cifar10, tmp_path_factory):
    root, _ = cifar10
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    archive = tar_gz(root / "cifar-10-batches-py", tmp_path_factory.mktemp("m") / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="test_batch"):
        load_dataset(f"cifar10:{archive}", "train")


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.update({b"labels": b[b"labels"][:-1]}), "images but"),
    (lambda b: b.update({b"labels": [10] + b[b"labels"][1:]}), "out of range"),
    (lambda b: b.update({b"labels": [-1] + b[b"labels"][1:]}), "out of range"),
    (lambda b: b.update({b"data": b[b"data"][:, :3000]}), "shape"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.float32)}), "uint8"),
    (lambda b: b.pop(b"labels"), "labels"),
    (lambda b: b.update({b"data": b[b"data"][:0], b"labels": []}), "empty"),
])
def test_bad_batch_contents(cifar10, mutate, message):
    root, batches = cifar10
    batch = dict(batches["test_batch"])
    mutate(batch)
    _rewrite(root, "test_batch", batch)
    with pytest.raises(DataError, match=message):
        load_dataset(f"cifar10:{root}", "test")


def test_not_a_dict_and_bad_meta(cifar10):
    root, _ = cifar10
    _rewrite(root, "test_batch", [1, 2, 3])
    with pytest.raises(DataError, match="dict"):
        load_dataset(f"cifar10:{root}", "test")
    _rewrite(root, "test_batch", cifar_batch(np.random.default_rng(0), 4, 10))
    _rewrite(root, "batches.meta", {b"label_names": [b"a", b"b"]})
    with pytest.raises(DataError, match="class names"):
        load_dataset(f"cifar10:{root}", "test")


def test_cifar100_file_given_to_cifar10(tmp_path):
    write_cifar100(tmp_path)
    shutil.copy(tmp_path / "cifar-100-python" / "test", tmp_path / "cifar-100-python" / "test_batch")
    with pytest.raises(DataError, match="'labels'"):
        load_dataset(f"cifar10:{tmp_path / 'cifar-100-python'}", "test")
