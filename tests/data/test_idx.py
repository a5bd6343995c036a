"""MNIST / Fashion-MNIST idx folders (plain and .gz), and idx parsing errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from datafmt import idx_bytes, write_idx, write_mnist_idx

from nnforensics.data import load_dataset
from nnforensics.data.idx import read_idx
from nnforensics.errors import ConfigError, CorruptFileError, DataError


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, name, gz):
    arrays = write_mnist_idx(tmp_path, n_train=60, n_test=20, gz=gz)  # val = 60 // 6 = 10
    (xt, yt), (xs, ys) = arrays["train"], arrays["t10k"]
    train, val, test = (load_dataset(f"{name}:{tmp_path}", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (50, 10, 20)
    assert train.x.dtype == torch.uint8 and train.x.shape == (50, 1, 28, 28)
    np.testing.assert_array_equal(train.x[:, 0].numpy(), xt[:50])
    np.testing.assert_array_equal(val.x[:, 0].numpy(), xt[50:])
    np.testing.assert_array_equal(train.y.numpy(), yt[:50])
    np.testing.assert_array_equal(val.y.numpy(), yt[50:])
    np.testing.assert_array_equal(test.x[:, 0].numpy(), xs)
    np.testing.assert_array_equal(test.y.numpy(), ys)
    assert train.y.dtype == torch.int64


def test_normalisation_constants():
    from nnforensics.data.idx import FASHION_INFO
    from nnforensics.data.readers import MNIST_INFO

    assert (MNIST_INFO.mean, MNIST_INFO.std, MNIST_INFO.augment) == ((0.1307,), (0.3081,), "none")
    assert (FASHION_INFO.mean, FASHION_INFO.std, FASHION_INFO.augment) == ((0.2860,), (0.3530,), "none")
    assert FASHION_INFO.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize("layout", ["raw", "MNIST/raw", "kaggle"])
def test_torchvision_and_kaggle_layouts(tmp_path, layout):
    folder = tmp_path / layout if layout != "kaggle" else tmp_path
    arrays = write_mnist_idx(folder, n_train=12, n_test=5)
    if layout == "kaggle":  # train-images.idx3-ubyte
        for f in list(tmp_path.iterdir()):
            f.rename(f.with_name(f.name.replace("-idx", ".idx")))
    test = load_dataset(f"mnist:{tmp_path}", "test")
    np.testing.assert_array_equal(test.y.numpy(), arrays["t10k"][1])


def test_full_size_val_is_last_10000(tmp_path):
    x = np.zeros((60000, 28, 28), np.uint8)
    y = (np.arange(60000) % 10).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", x)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    val = load_dataset(f"fashion-mnist:{tmp_path}", "val")
    assert len(val) == 10000 and len(load_dataset(f"fashion-mnist:{tmp_path}", "train")) == 50000
    np.testing.assert_array_equal(val.y.numpy(), y[50000:])


def test_fashion_needs_a_path():
    with pytest.raises(ConfigError, match="fashion-mnist"):
        load_dataset("fashion-mnist", "train")


def test_missing_files(tmp_path):
    write_mnist_idx(tmp_path, 12, 5)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset(f"mnist:{tmp_path}", "test")
    assert len(load_dataset(f"mnist:{tmp_path}", "train")) == 10
    a_file = tmp_path / "train-images-idx3-ubyte"
    with pytest.raises(DataError, match="folder"):
        load_dataset(f"mnist:{a_file}", "train")


@pytest.mark.parametrize("damage", ["truncate", "pad", "magic", "header", "empty"])
def test_corrupt_idx(tmp_path, damage):
    write_mnist_idx(tmp_path, 12, 5)
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[:-100], "pad": raw + b"\0", "magic": b"\x08\x08" + raw[2:],
                      "header": raw[:10], "empty": b""}[damage])
    with pytest.raises(CorruptFileError):
        load_dataset(f"mnist:{tmp_path}", "test")


def test_truncated_and_bad_gzip(tmp_path):
    write_mnist_idx(tmp_path, 12, 5, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        load_dataset(f"mnist:{tmp_path}", "test")
    path.write_bytes(b"this is not gzip")
    with pytest.raises(CorruptFileError):
        load_dataset(f"mnist:{tmp_path}", "test")


def test_count_mismatch_range_and_shapes(tmp_path):
    write_mnist_idx(tmp_path, 12, 5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        load_dataset(f"mnist:{tmp_path}", "test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 10], np.uint8))
    with pytest.raises(DataError, match="out of range"):
        load_dataset(f"mnist:{tmp_path}", "test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(DataError, match="32x32"):
        load_dataset(f"mnist:{tmp_path}", "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 784), np.uint8))
    with pytest.raises(DataError, match=r"\(N, H, W\)"):
        load_dataset(f"mnist:{tmp_path}", "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"mnist:{tmp_path}", "test")


def test_read_idx_types(tmp_path):
    for arr in (np.arange(6, dtype=">i4").reshape(2, 3), np.linspace(0, 1, 4).astype(">f8")):
        path = tmp_path / "a.idx"
        path.write_bytes(idx_bytes(arr))
        out = read_idx(path)
        np.testing.assert_array_equal(out, arr)
        assert out.dtype.isnative
    gz = tmp_path / "b.idx.gz"
    gz.write_bytes(gzip.compress(idx_bytes(np.arange(3, dtype=np.uint8))))
    assert read_idx(gz).tolist() == [0, 1, 2]
