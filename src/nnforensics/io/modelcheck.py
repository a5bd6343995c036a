"""Do two sets of tensors fit together? Names, shapes and dtype kinds, with a readable message.

* :func:`describe_mismatch`: the first mismatching keys, shapes and dtype kinds (works on
  data-less ``meta`` tensors too);
* :func:`load_into`: ``load_state_dict`` with that message.

Checking a file against an architecture before allocating it is
:mod:`nnforensics.models.loading`'s job (it builds the architecture).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ShapeMismatchError


def format_shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating-point"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def describe_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], arch: str) -> str | None:
    """A message naming the first mismatching keys, shapes and dtype kinds, or None when they fit.

    Works on data-less ``meta`` tensors too (only names, shapes and dtypes are compared).
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    common = [k for k in expected if k in given]
    wrong = [k for k in common if tuple(expected[k].shape) != tuple(given[k].shape)]
    kinds = [k for k in common if k not in wrong and _kind(expected[k]) != _kind(given[k])]
    if not (missing or unexpected or wrong or kinds):
        return None

    def head(keys: list[str], fmt=lambda k: k) -> str:
        return ", ".join(fmt(k) for k in keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = []
    if wrong:
        parts.append("shape mismatch: " + head(
            wrong, lambda k: f"{k} file {format_shape(given[k].shape)} vs model {format_shape(expected[k].shape)}"))
    if kinds:
        parts.append("dtype mismatch: " + head(
            kinds, lambda k: f"{k} file {_kind(given[k])} vs model {_kind(expected[k])}"))
    if missing:
        parts.append("missing keys: " + head(missing))
    if unexpected:
        parts.append("unexpected keys: " + head(unexpected))
    return f"weights do not match architecture {arch!r}: " + "; ".join(parts)


def with_counters(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` plus the model's own BatchNorm ``num_batches_tracked`` counters where the file has none.

    Many exported state dicts lack them; they do not affect the network's function.
    """
    counters = {k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in tensors}
    return {**counters, **tensors}


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], arch: str) -> None:
    """``model.load_state_dict(tensors, strict=True)`` with a readable mismatch error."""
    expected = model.state_dict()
    tensors = with_counters(expected, tensors)
    problem = describe_mismatch(expected, tensors, arch)
    if problem:
        raise ShapeMismatchError(problem)
    model.load_state_dict(tensors, strict=True)
