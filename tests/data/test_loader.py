"""augment_batch and batches: shapes, content, determinism."""

from __future__ import annotations

import pytest
import torch

from nnforensics.data import ArrayDataset, DatasetInfo, augment_batch, batches
from nnforensics.errors import ConfigError, ShapeMismatchError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _batch(b=16, c=3, h=8, w=10):
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w) / (b * c * h * w) + 0.01


def test_none_returns_input():
    x = _batch()
    assert augment_batch(x, "none", 4, _gen()) is x


def test_crop_keeps_shape_and_shifts_content():
    x = _batch()
    out = augment_batch(x, "crop", 2, _gen())
    assert out.shape == x.shape
    found_shift = False
    for i in range(len(x)):
        # every output equals the zero-padded input cropped at some (dy, dx) in 0..4
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(out[i], padded[:, dy:dy + 8, dx:dx + 10])]
        assert len(matches) == 1
        found_shift |= matches[0] != (2, 2)
    assert found_shift
    assert (out == 0).any()  # zero padding shows up where the window moved


def test_flip_mirrors_some_images():
    x = _batch(b=32)
    out = augment_batch(x, "flip", 4, _gen())
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(32)]
    kept = [torch.equal(out[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 32


def test_crop_flip_determinism_by_generator():
    x = _batch()
    a = augment_batch(x, "crop+flip", 4, _gen(7))
    b = augment_batch(x, "crop+flip", 4, _gen(7))
    c = augment_batch(x, "crop+flip", 4, _gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape


def test_non_square_and_padding_zero():
    x = _batch(h=5, w=9)
    assert augment_batch(x, "crop", 3, _gen()).shape == x.shape
    assert torch.equal(augment_batch(x, "crop", 0, _gen()), x)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        augment_batch(_batch(), "rotate", 4, _gen())
    with pytest.raises(ShapeMismatchError):
        augment_batch(torch.zeros(3, 8, 8), "crop", 4, _gen())
    with pytest.raises(ConfigError):
        augment_batch(_batch(), "crop", -1, _gen())


def _dataset(n=10, augment="crop+flip"):
    info = DatasetInfo("t", 3, (1, 4, 4), None, None, augment=augment, crop_padding=1)
    x = torch.arange(n * 16, dtype=torch.uint8).reshape(n, 1, 4, 4)
    return ArrayDataset(x, torch.arange(n) % 3, info)


def test_batches_order_dtype_and_determinism():
    data = _dataset()
    plain = list(batches(data, 4))
    assert [len(y) for _, y in plain] == [4, 4, 2]
    assert plain[0][0].dtype == torch.float32 and torch.equal(plain[0][0], data.x[:4].float() / 255)
    a = [y for _, y in batches(data, 3, shuffle=True, generator=_gen(1))]
    b = [y for _, y in batches(data, 3, shuffle=True, generator=_gen(1))]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == sorted(data.y.tolist())
    xa = [x for x, _ in batches(data, 5, shuffle=True, generator=_gen(2), augment=True)]
    xb = [x for x, _ in batches(data, 5, shuffle=True, generator=_gen(2), augment=True)]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))


def test_batches_validation():
    with pytest.raises(ConfigError):
        list(batches(_dataset(), 0))
    with pytest.raises(ConfigError, match="generator"):
        list(batches(_dataset(), 2, augment=True))
    assert len(list(batches(_dataset(augment="none"), 4, augment=True))) == 3
