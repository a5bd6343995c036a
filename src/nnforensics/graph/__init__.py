"""Permutation groups of any ``nn.Module``.

``find_groups(model, example_inputs)`` traces the model to aten operations, follows
every parameter axis through the computation (:mod:`.propagate`), groups the axes that
must be permuted together (:mod:`.groups`) and checks numerically that permuting each
group leaves the function unchanged (:mod:`.validate`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError, UnsupportedModelError
from .apply import application_order, apply_group, random_permutation
from .groups import GroupSet, Member, PermutationGroup, Segment
from .labels import LabelState
from .propagate import Propagator
from .trace import Inputs, as_tuple, call_model, positional, state_tensors, trace_model
from .validate import relative_difference, validate_groups

__all__ = [
    "GroupSet",
    "Inputs",
    "Member",
    "PermutationGroup",
    "Segment",
    "application_order",
    "apply_group",
    "as_tuple",
    "call_model",
    "example_inputs_for",
    "find_groups",
    "random_permutation",
    "relative_difference",
    "state_tensors",
]


def example_inputs_for(shape_or_meta, n: int = 2, seed: int = 0) -> torch.Tensor:
    """A batch (n, *shape) of random inputs in [0, 1) for one input shape ``(C, H, W)`` (or a ModelMeta's)."""
    shape = getattr(shape_or_meta, "input_shape", shape_or_meta)
    if not shape:
        raise ConfigError("the model's input shape is unknown; give example inputs "
                          "(command line: --input-shape C,H,W or --example-inputs FILE)")
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, *[int(s) for s in shape]), generator=gen)


def find_groups(
    model: nn.Module,
    example_inputs: Inputs,
    *,
    strict: bool = True,
    validate: bool = True,
) -> GroupSet:
    """All permutation groups of ``model``.

    Args:
        model: any module; it is traced in eval mode and not modified.
        example_inputs: a tensor or tuple of tensors accepted by ``model(*inputs)``, or a
            mapping of named tensors accepted by ``model(**inputs)`` (e.g. ``input_ids`` and
            ``attention_mask``); a batch of at least 2 is recommended.
        strict: raise :class:`~nnforensics.errors.UnsupportedModelError` naming an
            operation the analysis does not understand (otherwise its axes are frozen).
        validate: check numerically (float64) that every group preserves the function.

    Returns:
        :class:`GroupSet`, producers before consumers. The network's input and output
        axes are never part of a group.
    """
    model, inputs = positional(model, example_inputs)  # named inputs: same parameter names
    gm, names = trace_model(model, inputs)
    state = LabelState()
    n_inputs = len([n for n in gm.graph.nodes if n.op == "placeholder"]) - len(names)
    prop = Propagator(gm, state, list(range(len(names))) + [None] * n_inputs, strict=strict)
    tensors = state_tensors(model)
    flat = [t.detach() for t in tensors.values()]
    try:
        with torch.no_grad():
            prop.run(flat, *inputs)
    except UnsupportedModelError as err:  # fx appends the node dump; keep the one-line message
        raise UnsupportedModelError(str(err).split("\n")[0]) from None
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    from .groups import build_groups

    group_set = build_groups(state, names, shapes, prop.first_use)
    if validate:
        validate_groups(model, group_set, inputs)
        group_set.validated = True
    return group_set
