"""Batching with deterministic shuffling and standard augmentation, on tensors."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .registry import ArrayDataset, to_float


def augment_batch(x: torch.Tensor, kind: str, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and, for ``crop+flip``, random horizontal flip.

    Args:
        x: (B, C, H, W) float batch.
        kind: ``none``, ``crop`` or ``crop+flip``.
        padding: pixels of zero padding before the random crop.
        generator: source of randomness (seeded per epoch for reproducible runs).
    """
    if kind == "none" or x.dim() != 4:
        return x
    b, _, h, w = x.shape
    if "crop" in kind and padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])  # (B, H)
        cols = (dx[:, None] + torch.arange(w)[None, :])  # (B, W)
        idx_b = torch.arange(b)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    if "flip" in kind:
        flip = torch.rand(b, generator=generator) < 0.5
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
    """Yield ``(x, y)`` float batches in [0, 1] (optionally shuffled and augmented)."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        x = to_float(data.x[idx])
        if augment and generator is not None:
            x = augment_batch(x, data.info.augment, data.info.crop_padding, generator)
        yield x.to(device, non_blocking=True), data.y[idx].to(device, non_blocking=True)
