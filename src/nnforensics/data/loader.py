"""Batching with deterministic shuffling and standard augmentation, on tensors.

Augmentation policies (``DatasetInfo.augment``), applied to float batches in
[0, 1] before normalisation, as torchvision's ``RandomCrop(32, padding=4)`` +
``RandomHorizontalFlip()`` would be:

* ``crop``: pad every side with ``padding`` zero pixels, then cut a random
  window of the original size (a shift of up to ``padding`` pixels each way);
* ``flip``: mirror left-right with probability 1/2;
* ``crop+flip``: both, crop first; ``none``: the batch unchanged.

All randomness comes from the ``generator`` argument, so a run is reproduced by
seeding it the same way (training seeds one per epoch from its data seed).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeMismatchError
from .registry import AUGMENT_POLICIES, ArrayDataset, to_float


def augment_batch(x: torch.Tensor, kind: str, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and/or random horizontal flip, per image.

    Args:
        x: (B, C, H, W) float batch.
        kind: ``none``, ``crop``, ``flip`` or ``crop+flip``.
        padding: pixels of zero padding before the random crop (0: no crop).
        generator: source of randomness (seeded per epoch for reproducible runs);
            a CPU generator, whatever the device of ``x``.

    Returns:
        A new (B, C, H, W) batch (``x`` itself when ``kind`` is ``none``).
    """
    if kind not in AUGMENT_POLICIES:
        raise ConfigError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENT_POLICIES)}")
    if kind == "none":
        return x
    if x.dim() != 4:
        raise ShapeMismatchError(f"augmentation {kind!r} needs image batches (B, C, H, W), got {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"crop padding must be a non-negative integer, got {padding!r}")
    b, _, h, w = x.shape
    if "crop" in kind and padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]  # (B, H) source rows
        cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # (B, W) source columns
        idx_b = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    if "flip" in kind:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def batches(
    data: ArrayDataset,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches: x (B, C, H, W) float32 in [0, 1], y (B,) int64.

    Args:
        data: the dataset (uint8 images are converted per batch).
        batch_size: images per batch (the last batch may be smaller).
        shuffle: visit the examples in ``torch.randperm`` order drawn from
            ``generator`` (the global RNG when no generator is given).
        generator: seeded CPU generator for order and augmentation.
        augment: apply ``data.info.augment`` (needs ``generator``).
        device: where the batches are sent.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if augment and generator is None and data.info.augment != "none":
        raise ConfigError("augmentation needs a seeded generator (pass generator=...)")
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        x = to_float(data.x[idx])
        if augment:
            x = augment_batch(x, data.info.augment, data.info.crop_padding, generator)
        yield x.to(device, non_blocking=True), data.y[idx].to(device, non_blocking=True)
