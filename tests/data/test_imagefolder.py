"""ImageFolder trees of PNG files written with Pillow."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from datafmt import write_png

from nnforensics.data import DataWarning, load_dataset
from nnforensics.errors import ConfigError, CorruptFileError, DataError

CLASSES = ("cat", "dog", "zebra")


def _tree(root, per_class, size=(12, 10), gray=False, seed=0):
    """ROOT/<class>/img_k.png; returns {class: [arrays in file order]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for cls, n in zip(CLASSES, per_class):
        out[cls] = []
        for k in range(n):
            shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            write_png(root / cls / f"img_{k:02d}.png", arr)
            out[cls].append(arr)
    return out


def _as_chw(arr):
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def test_split_folders_round_trip(tmp_path):
    train = _tree(tmp_path / "train", (4, 3, 5))
    test = _tree(tmp_path / "test", (2, 2, 1), seed=1)
    val = _tree(tmp_path / "val", (1, 1, 1), seed=2)
    spec = f"imagefolder:{tmp_path}"
    tr, va, te = (load_dataset(spec, s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (12, 3, 5)
    assert tr.x.dtype == torch.uint8 and tr.x.shape == (12, 3, 10, 12)  # (N, C, H, W)
    expected = np.stack([_as_chw(a) for cls in CLASSES for a in train[cls]])
    np.testing.assert_array_equal(tr.x.numpy(), expected)
    assert tr.y.tolist() == [0] * 4 + [1] * 3 + [2] * 5
    np.testing.assert_array_equal(te.x.numpy(), np.stack([_as_chw(a) for c in CLASSES for a in test[c]]))
    np.testing.assert_array_equal(va.x.numpy(), np.stack([_as_chw(a) for c in CLASSES for a in val[c]]))
    info = tr.info
    assert info.class_names == CLASSES and info.num_classes == 3 and info.input_shape == (3, 10, 12)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.augment == "crop+flip"


def test_val_folder_is_test_when_there_is_no_test_folder(tmp_path):
    _tree(tmp_path / "train", (10, 10, 10))
    val = _tree(tmp_path / "val", (2, 2, 2), seed=5)  # ImageNet's layout
    spec = f"imagefolder:{tmp_path}"
    te = load_dataset(spec, "test")
    np.testing.assert_array_equal(te.x.numpy(), np.stack([_as_chw(a) for c in CLASSES for a in val[c]]))
    tr, va = load_dataset(spec, "train"), load_dataset(spec, "val")
    assert (len(tr), len(va)) == (27, 3)  # 10 % of each class held out
    assert sorted(va.y.tolist()) == [0, 1, 2]
    both = torch.cat([tr.x, va.x]).flatten(1)
    assert len({tuple(r.tolist()) for r in both}) == 30  # disjoint, nothing lost


def test_single_tree_seeded_stratified_split(tmp_path):
    _tree(tmp_path, (10, 20, 30), size=(6, 6))
    spec = f"imagefolder:{tmp_path}"
    parts = {s: load_dataset(spec, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 42, "val": 6, "test": 12}
    assert [int((parts["test"].y == c).sum()) for c in range(3)] == [2, 4, 6]
    rows = [tuple(r.tolist()) for d in parts.values() for r in d.x.flatten(1)]
    assert len(set(rows)) == 60  # disjoint and complete
    again = load_dataset(spec, "val")
    assert torch.equal(again.x, parts["val"].x)  # deterministic
    assert len(load_dataset(spec, "all")) == 60


def test_grayscale_tree(tmp_path):
    arrays = _tree(tmp_path / "train", (2, 2, 2), gray=True)
    _tree(tmp_path / "test", (1, 1, 1), gray=True, seed=3)
    _tree(tmp_path / "val", (1, 1, 1), gray=True, seed=4)
    tr = load_dataset(f"imagefolder:{tmp_path}", "train")
    assert tr.x.shape[1] == 1 and tr.info.mean == (0.449,) and tr.info.std == (0.226,)
    np.testing.assert_array_equal(tr.x[:, 0].numpy(), np.stack([a for c in CLASSES for a in arrays[c]]))


def test_mixed_sizes_are_resized_to_the_most_common_with_a_warning(tmp_path):
    _tree(tmp_path, (5, 5, 5), size=(8, 8))
    write_png(tmp_path / "dog" / "big.png", np.full((16, 20, 3), 200, np.uint8))
    with pytest.warns(DataWarning, match="resizing 1 of 16 images to the most common size 8x8"):
        data = load_dataset(f"imagefolder:{tmp_path}", "all")
    assert data.x.shape[1:] == (3, 8, 8)
    assert (data.x == 200).all(dim=(1, 2, 3)).sum() == 1  # the constant image stays constant


def test_mixed_modes_become_rgb(tmp_path):
    write_png(tmp_path / "a" / "gray.png", np.full((4, 4), 7, np.uint8))
    write_png(tmp_path / "b" / "rgb.png", np.full((4, 4, 3), 9, np.uint8))
    for k in range(3):
        write_png(tmp_path / "a" / f"g{k}.png", np.full((4, 4), k, np.uint8))
        write_png(tmp_path / "b" / f"c{k}.png", np.full((4, 4, 3), k, np.uint8))
    data = load_dataset(f"imagefolder:{tmp_path}", "all")
    assert data.x.shape[1] == 3
    gray_row = data.x[data.x[:, 0, 0, 0] == 7]
    assert gray_row.shape[0] == 1 and (gray_row == 7).all()  # gray replicated over RGB


def test_non_image_and_hidden_files_are_skipped(tmp_path):
    _tree(tmp_path, (3, 3, 3), size=(4, 4))
    (tmp_path / "cat" / "notes.txt").write_text("hello")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / ".git").mkdir()
    data = load_dataset(f"imagefolder:{tmp_path}", "all")
    assert len(data) == 9 and data.info.class_names == CLASSES


def test_bad_trees(tmp_path):
    with pytest.raises(ConfigError, match="ROOT"):
        load_dataset("imagefolder", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}", "train")
    _tree(tmp_path / "t1" / "train", (2, 2, 2))
    with pytest.raises(DataError, match="neither test/ nor val/"):
        load_dataset(f"imagefolder:{tmp_path / 't1'}", "train")
    _tree(tmp_path / "t2" / "train", (2, 2, 2))
    write_png(tmp_path / "t2" / "test" / "horse" / "a.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DataError, match="horse"):
        load_dataset(f"imagefolder:{tmp_path / 't2'}", "test")
    _tree(tmp_path / "t3", (2, 2, 2))
    (tmp_path / "t3" / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class.*no images"):
        load_dataset(f"imagefolder:{tmp_path / 't3'}", "train")


def test_corrupt_images(tmp_path):
    _tree(tmp_path, (3, 3, 3), size=(6, 6))
    bad = tmp_path / "dog" / "img_01.png"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="img_01.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    bad.write_bytes(b"not an image at all")
    with pytest.raises(CorruptFileError, match="img_01.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_16bit_images_are_refused(tmp_path):
    from PIL import Image

    _tree(tmp_path, (2, 2, 2), size=(4, 4))
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / "cat" / "deep.png")
    with pytest.raises(DataError, match="16-bit"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_no_warning_for_uniform_sizes(tmp_path):
    _tree(tmp_path, (3, 3, 3), size=(5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_symlink_cycle_does_not_hang(tmp_path):
    _tree(tmp_path, (3, 3, 3), size=(4, 4))
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat", target_is_directory=True)
    assert len(load_dataset(f"imagefolder:{tmp_path}", "all")) == 9
