"""Tracing a model to an aten-level graph whose placeholders are its tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

import torch
import torch.fx as fx
import torch.nn as nn
from torch.func import functional_call, functionalize
from torch.fx.experimental.proxy_tensor import make_fx

from ..errors import UnsupportedModelError


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (tied tensors once, under their first name)."""
    out: dict[str, torch.Tensor] = dict(model.named_parameters())
    for name, buf in model.named_buffers():
        if buf is not None:
            out.setdefault(name, buf)
    return out


#: Example inputs: one tensor, positional tensors, or named tensors (passed as keyword arguments).
Inputs = Union[torch.Tensor, Sequence[torch.Tensor], Mapping[str, torch.Tensor]]


def as_tuple(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """The input tensors in order (a mapping's values, in its order)."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    return tuple(inputs.values()) if isinstance(inputs, Mapping) else tuple(inputs)


def call_model(model: nn.Module, inputs: Inputs):
    """``model(**inputs)`` for named inputs, else ``model(*inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(*as_tuple(inputs))


def positional(model: nn.Module, inputs: Inputs) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """``(module, tensors)`` such that ``module(*tensors)`` is the model's call on ``inputs``.

    Named inputs get a :class:`~nnforensics.models.wrappers.KeywordInputs` adapter, which
    keeps the model's parameter names (so groups found on it are the model's groups).
    """
    if not isinstance(inputs, Mapping):
        return model, as_tuple(inputs)
    from ..models.wrappers import KeywordInputs

    return KeywordInputs(model, list(inputs)), as_tuple(inputs)


def trace_model(model: nn.Module, example_inputs: Sequence[torch.Tensor]) -> tuple[fx.GraphModule, list[str]]:
    """Trace ``model`` (eval mode) with every parameter/buffer as a graph input.

    Returns the graph and the tensor names, in placeholder order (inputs follow them).
    The trace runs with gradients enabled so that ``nn.MultiheadAttention`` takes its
    decomposed path rather than the fused inference kernel.
    """
    tensors = state_tensors(model)
    names = list(tensors)
    was_training = model.training
    model.eval()

    def call(flat: list[torch.Tensor], *inputs: torch.Tensor):
        return functional_call(model, dict(zip(names, flat)), inputs, strict=False)

    params = {id(p) for p in model.parameters()}
    flat = [t.detach().clone().requires_grad_(t.is_floating_point() and id(t) in params) for t in tensors.values()]
    try:
        with torch.enable_grad():
            gm = make_fx(functionalize(call, remove="mutations"))(flat, *example_inputs)
    except UnsupportedModelError:
        raise
    except Exception as err:  # the model cannot be traced with these inputs
        raise UnsupportedModelError(
            f"cannot trace the model to find its permutation groups: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    finally:
        model.train(was_training)
    return gm, names
