"""Applying permutations (or, for argmax re-synchronization, any index map) to groups."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .groups import PermutationGroup


@torch.no_grad()
def apply_group(tensors: Mapping[str, torch.Tensor], group: PermutationGroup, perm: np.ndarray) -> None:
    """In place: the unit at position ``u`` becomes the one that was at ``perm[u]``.

    ``perm`` is normally a permutation; any index map is accepted (duplicated units),
    which is how the paper's argmax re-synchronization behaves.
    """
    perm = np.asarray(perm, dtype=np.int64)
    if perm.shape != (group.size,):
        raise ValueError(f"group {group.name!r} has {group.size} units, got a map of shape {perm.shape}")
    for member in group.members:
        tensor = tensors[member.name]
        dst = torch.from_numpy(member.index.reshape(-1)).to(tensor.device)
        src = torch.from_numpy(member.index[perm].reshape(-1)).to(tensor.device)
        moved = tensor.index_select(member.axis, src)
        tensor.index_copy_(member.axis, dst, moved)


def application_order(groups: list[PermutationGroup]) -> list[PermutationGroup]:
    """Within-block groups first, then the rest: the truth of a within-block group is
    expressed in the original block's coordinates, whatever block permutation follows."""
    return [g for g in groups if g.kind == "within"] + [g for g in groups if g.kind != "within"]


def random_permutation(size: int, rng: np.random.Generator, avoid_identity: bool = True) -> np.ndarray:
    perm = rng.permutation(size)
    while avoid_identity and size > 1 and np.array_equal(perm, np.arange(size)):
        perm = rng.permutation(size)
    return perm
