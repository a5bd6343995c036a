"""Deterministic splits: held-out validation sets and seeded splits of single sources.

Two rules, both independent of any global random state:

* **Official training sets** (MNIST, Fashion-MNIST, CIFAR, SVHN): the validation
  split is the *last* ``holdout_size(...)`` examples of the official training set,
  the training split is the rest. No randomness at all.
* **Sources without an official split** (one ImageFolder tree, one ``.h5`` or
  ``.npz`` file): a stratified split (:func:`stratified_split`) by a stable
  hash-based permutation (:func:`stable_permutation`, splitmix64 of the index),
  which does not depend on the numpy or torch version: each held-out split gets
  ``round(fraction * N)`` examples, spread over the classes in proportion.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .registry import ArrayDataset

#: Seed of every seeded split (part of the documented data contract: do not change).
SPLIT_SEED = 0
#: Fractions of a single source that become the test and validation splits.
SINGLE_SOURCE_FRACTIONS = {"test": 0.2, "val": 0.1}
#: Fraction of a training set held out as validation when a source has train and test only.
HOLDOUT_FRACTION = 0.1

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def split_train_val(full: ArrayDataset, split: str, val_size: int) -> ArrayDataset:
    """The last ``val_size`` examples of the official training set are the validation split."""
    if not 0 < val_size < len(full):
        raise ValueError(f"val_size must be in 1..{len(full) - 1}, got {val_size}")
    if split == "train":
        return full.subset(slice(0, len(full) - val_size), "train")
    if split == "val":
        return full.subset(slice(len(full) - val_size, len(full)), "val")
    raise ValueError(split)


def holdout_size(n: int, nominal: int, max_fraction: float) -> int:
    """Validation size for an official training set of ``n`` examples.

    ``nominal`` for full-size files (10,000 for MNIST's 60,000; 5,000 for CIFAR's
    50,000), capped at ``max_fraction * n`` (at least 1) so that small or partial
    files still keep most of their examples for training.
    """
    if n < 2:
        return 0
    return max(1, min(nominal, int(n * max_fraction)))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


def stable_permutation(n: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``n`` and ``seed``.

    Sorting by a 64-bit hash of ``(seed, index)`` is stable across numpy/torch
    versions and machines, unlike ``Generator.permutation``.
    """
    with np.errstate(over="ignore"):
        base = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        keys = _splitmix64(np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + base)
    return np.argsort(keys, kind="stable").astype(np.int64)


def stratified_split(labels: np.ndarray, fractions: dict[str, float],
                     seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Split indices so that every held-out split has ``round(f * N)`` examples, spread over classes.

    Each class gives ``floor(f * n_c)`` examples to a split; the examples still
    missing for the total go one each to the classes with the largest remainders
    (ties in a seeded class order). Within a class, examples are taken in
    :func:`stable_permutation` order.

    Args:
        labels: (N,) integer labels.
        fractions: held-out splits and their fractions, e.g. ``{"test": 0.2, "val": 0.1}``
            (taken in this order); the remaining examples form ``"train"``.
        seed: permutation seed.

    Returns:
        ``{**{name: idx}, "train": idx}``, each an ascending int64 index array;
        together they partition ``range(N)``.
    """
    labels = np.asarray(labels)
    order = stable_permutation(len(labels), seed)
    classes, counts = np.unique(labels, return_counts=True)
    members = [order[labels[order] == c] for c in classes]  # each class, in permuted order
    class_rank = np.argsort(stable_permutation(len(classes), seed + 1))  # seeded tie-break order
    taken = np.zeros(len(classes), dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for name, fraction in fractions.items():
        quota = fraction * counts
        share = np.minimum(np.floor(quota).astype(np.int64), counts - taken)
        missing = round(fraction * len(labels)) - int(share.sum())
        eligible = [i for i in np.lexsort((class_rank, -(quota - np.floor(quota))))
                    if taken[i] + share[i] < counts[i]]
        for i in eligible[:max(missing, 0)]:
            share[i] += 1
        out[name] = _sorted_concat([m[t:t + k] for m, t, k in zip(members, taken, share)])
        taken += share
    out["train"] = _sorted_concat([m[t:] for m, t in zip(members, taken)])
    return out


def _sorted_concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    """A torch permutation of ``range(n)`` from a seeded generator (kept for callers)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)


def pick_split(parts: dict[str, tuple[np.ndarray, np.ndarray]], split: str,
               where: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Images and labels of ``split`` from a source's parts (user files without official sizes).

    Args:
        parts: ``{"all": (x, y)}`` for a single source, or some of ``train``, ``val``,
            ``test`` as stored (each ``(x (N, ...), y (N,))``).
        split: ``train``, ``val``, ``test`` or ``all``.
        where: the source, for messages.

    Returns:
        ``(x, y, role)``: ``role`` is the part the examples come from. A single source
        is split per class 70/10/20 (:data:`SINGLE_SOURCE_FRACTIONS`); without a
        ``val`` part, ``train``/``val`` are 90/10 of ``train`` per class; every other
        part is used as stored. ``all`` is the single source in stored order, or the
        parts concatenated (train, val, test).
    """
    if split == "all":
        if "all" in parts:
            return (*parts["all"], "all")
        present = [r for r in ("train", "val", "test") if r in parts]
        xs = [parts[r][0] for r in present]
        if len({x.dtype for x in xs}) > 1:  # uint8 and float parts: compare in [0, 1]
            xs = [x.astype(np.float32) / 255 if x.dtype == np.uint8 else x for x in xs]
        return np.concatenate(xs), np.concatenate([parts[r][1] for r in present]), present[0]
    if "all" in parts:
        x, y = parts["all"]
        idx = stratified_split(y, SINGLE_SOURCE_FRACTIONS)[split]
        _check_nonempty(idx, split, where, len(y), "70/10/20 per class")
        return x[idx], y[idx], "all"
    if split in ("train", "val") and "val" not in parts:
        if "train" not in parts:
            raise DataError(f"{where} has no training data (found {', '.join(sorted(parts))})")
        x, y = parts["train"]
        idx = stratified_split(y, {"val": HOLDOUT_FRACTION})[split]
        _check_nonempty(idx, split, where, len(y), "90/10 per class into train/val")
        return x[idx], y[idx], "train"
    if split not in parts:
        raise DataError(f"{where} has no {split} data (found {', '.join(sorted(parts))})")
    x, y = parts[split]
    return x, y, split


def _check_nonempty(idx: np.ndarray, split: str, where: str, n: int, rule: str) -> None:
    if len(idx) == 0:
        raise DataError(f"{where}: its {n} examples leave the {split} split empty (they are split {rule}); "
                        f"add examples, or use --split all for everything")
