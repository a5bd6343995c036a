"""Deterministic train/validation splits of an official training set."""

from __future__ import annotations

import torch

from .registry import ArrayDataset


def split_train_val(full: ArrayDataset, split: str, val_size: int) -> ArrayDataset:
    """The last ``val_size`` examples of the official training set are the validation split."""
    if split == "train":
        return full.subset(slice(0, len(full) - val_size), "train")
    if split == "val":
        return full.subset(slice(len(full) - val_size, len(full)), "val")
    raise ValueError(split)


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)
