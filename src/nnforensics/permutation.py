"""Function-preserving random permutation of a network's neurons."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import ConfigError, CorruptFileError
from .io.jsonfile import read_json
from .graph import (
    GroupSet,
    Inputs,
    application_order,
    apply_group,
    as_tuple,
    call_model,
    example_inputs_for,
    find_groups,
    random_permutation,
    relative_difference,
    state_tensors,
)
from .utils.atomic import atomic_write_text
from .utils.seeding import numpy_rng

TRUTH_FORMAT = "nnforensics-permutation/1"


@dataclass
class PermuteResult:
    """A permuted copy and the permutations applied (the attacker's secret).

    ``perms[name][u]`` is the original unit now at position ``u``.
    """

    model: nn.Module
    perms: dict[str, list[int]]
    max_output_diff: float
    relative_output_diff: float
    group_set: GroupSet

    def to_dict(self) -> dict[str, Any]:
        return {"groups": len(self.perms), "units": int(sum(len(p) for p in self.perms.values())),
                "max_output_diff": self.max_output_diff, "relative_output_diff": self.relative_output_diff}


def unwrap(model: Any) -> tuple[nn.Module, Any]:
    """``(module, meta)`` from an ``nn.Module`` or a :class:`~nnforensics.io.LoadedModel`."""
    if isinstance(model, nn.Module):
        return model, None
    if hasattr(model, "model") and isinstance(model.model, nn.Module):
        return model.model, getattr(model, "meta", None)
    raise ConfigError(f"expected a torch.nn.Module or a loaded model, got {type(model).__name__}")


def resolve_inputs(model: Any, example_inputs: Inputs | None) -> tuple[torch.Tensor, ...] | dict[str, torch.Tensor]:
    """Example inputs given (named ones stay a dict: the model takes them as keyword
    arguments), or a batch (2, *input_shape) of random ones of the shape the metadata records."""
    if example_inputs is not None:
        return dict(example_inputs) if isinstance(example_inputs, Mapping) else as_tuple(example_inputs)
    _, meta = unwrap(model)
    if meta is None or not meta.input_shape:
        raise ConfigError("the model's input shape is unknown (its file does not record it): give "
                          "example_inputs= (command line: --input-shape C,H,W or --example-inputs FILE)")
    return (example_inputs_for(meta, n=2),)


def groups_of(model: Any, example_inputs: Inputs | None = None, group_set: GroupSet | None = None) -> GroupSet:
    """The model's permutation groups (computed when not given; inputs as :func:`resolve_inputs`)."""
    if group_set is not None:
        return group_set
    module, _ = unwrap(model)
    return find_groups(module, resolve_inputs(model, example_inputs))


@torch.no_grad()
def output_difference(a: nn.Module, b: nn.Module, inputs: Inputs) -> tuple[float, float]:
    """(max absolute, max relative) difference of the two models' outputs in eval mode."""
    modes = a.training, b.training
    a.eval(), b.eval()
    try:
        ya, yb = call_model(a, inputs), call_model(b, inputs)
    finally:
        a.train(modes[0]), b.train(modes[1])
    from torch.utils._pytree import tree_leaves

    pairs = [(x, y) for x, y in zip(tree_leaves(ya), tree_leaves(yb)) if isinstance(x, torch.Tensor)]
    absolute = max(float((x.double() - y.double()).abs().max()) for x, y in pairs)
    return absolute, relative_difference(ya, yb)


def permute(
    model: Any,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    group_set: GroupSet | None = None,
) -> PermuteResult:
    """Randomly permute the units of all (or the named) groups.

    Args:
        model: ``nn.Module`` or loaded model (its metadata gives the input shape).
        groups: group names (``nnf groups`` lists them); within-block groups of a named
            block group are included. Default: every group.
        seed: seed of the permutations.
        example_inputs: inputs for the graph analysis and the function check.
        group_set: precomputed groups of ``model``.

    Returns:
        :class:`PermuteResult` with a permuted deep copy; ``max_output_diff`` is measured
        on the example inputs (float32, eval mode).
    """
    module, _ = unwrap(model)
    inputs = resolve_inputs(model, example_inputs)
    group_set = groups_of(model, inputs, group_set)
    chosen = group_set.select(groups)
    permuted = copy.deepcopy(module).eval()
    tensors = state_tensors(permuted)
    rng = numpy_rng("permute", seed)
    perms: dict[str, list[int]] = {}
    for group in chosen:  # draw in a fixed order so a seed always gives the same secret
        perms[group.name] = random_permutation(group.size, rng).tolist()
    for group in application_order(chosen):
        apply_group(tensors, group, np.asarray(perms[group.name]))
    absolute, relative = output_difference(module, permuted, inputs)
    return PermuteResult(permuted, perms, absolute, relative, group_set)


def save_truth(path: str | os.PathLike, perms: dict[str, list[int]], **info: Any) -> None:
    """Write the true permutations (JSON, atomically)."""
    payload = {"format": TRUTH_FORMAT, **info, "groups": {k: list(map(int, v)) for k, v in perms.items()}}
    atomic_write_text(path, json.dumps(payload))


def load_truth(path: str | os.PathLike, group_set: GroupSet | None = None) -> dict[str, np.ndarray]:
    """Read a truth file and check it fits ``group_set`` (names and sizes)."""
    path = Path(path)
    raw = read_json(path, "truth file")  # bounded and strict: a crafted file is one clear error
    if not isinstance(raw, dict) or raw.get("format") != TRUTH_FORMAT or not isinstance(raw.get("groups"), dict):
        raise CorruptFileError(f"{str(path)!r} is not an nnforensics permutation file (written by `nnf permute --truth-out`)")
    perms = {}
    for name, perm in raw["groups"].items():
        arr = np.asarray(perm)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or not np.array_equal(np.sort(arr), np.arange(len(arr))):
            raise CorruptFileError(f"truth file {str(path)!r}: entry {name!r} is not a permutation")
        perms[name] = arr.astype(np.int64)
    if group_set is not None:
        for name, arr in perms.items():
            if name not in group_set:
                raise ConfigError(f"truth file {str(path)!r} names group {name!r}, which this model does not have "
                                  f"(it was written for another architecture?)")
            if len(arr) != group_set[name].size:
                raise ConfigError(f"truth file {str(path)!r}: group {name!r} has {len(arr)} units in the file "
                                  f"but {group_set[name].size} in the model")
    return perms
