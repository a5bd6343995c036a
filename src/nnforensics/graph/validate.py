"""Numerical check that every group's permutation preserves the network's function."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_leaves

from ..errors import UnsupportedModelError
from .apply import application_order, apply_group, random_permutation
from .groups import GroupSet, PermutationGroup
from .trace import state_tensors


def relative_difference(a, b) -> float:
    """max |a - b| / max |a| over all output tensors."""
    la = [t for t in tree_leaves(a) if isinstance(t, torch.Tensor)]
    lb = [t for t in tree_leaves(b) if isinstance(t, torch.Tensor)]
    num = max(float((x.double() - y.double()).abs().max()) for x, y in zip(la, lb)) if la else 0.0
    den = max(float(x.double().abs().max()) for x in la) if la else 1.0
    return num / max(den, 1e-30)


def _double(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(x.double() if x.is_floating_point() else x for x in inputs)


def _fresh(inputs: Sequence[torch.Tensor], seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for x in inputs:
        if x.is_floating_point():
            lo, hi = float(x.min()), float(x.max())
            out.append(torch.rand(x.shape, generator=gen, dtype=torch.float64) * (hi - lo if hi > lo else 1.0) + lo)
        else:
            out.append(x)
    return tuple(out)


@torch.no_grad()
def _permuted_error(model64: nn.Module, groups: list[PermutationGroup], inputs, reference, seed: int) -> float:
    net = copy.deepcopy(model64)
    tensors = state_tensors(net)
    rng = np.random.default_rng(seed)
    for group in application_order(groups):
        apply_group(tensors, group, random_permutation(group.size, rng))
    return relative_difference(reference, net(*inputs))


@torch.no_grad()
def validate_groups(model: nn.Module, group_set: GroupSet, example_inputs: Sequence[torch.Tensor],
                    tolerance: float = 1e-7, seed: int = 0) -> float:
    """Permute every group at random (float64) and check the outputs do not change.

    Returns the relative output difference. Raises :class:`UnsupportedModelError`
    naming the groups that break the function.
    """
    if not len(group_set):
        return 0.0
    model64 = copy.deepcopy(model).double().eval()
    inputs = _fresh(_double(example_inputs), seed)
    reference = model64(*inputs)
    error = _permuted_error(model64, list(group_set), inputs, reference, seed)
    if error <= tolerance:
        return error
    bad = [g.name for g in group_set if _permuted_error(model64, group_set.select([g.name]), inputs, reference, seed) > tolerance]
    raise UnsupportedModelError(
        "the graph analysis found permutation groups that change the network's output "
        f"(relative difference {error:.2e}); offending groups: {', '.join(bad[:5]) or '(a combination)'}"
        "; some operation in the model is not understood correctly"
    )
