"""Runtime wrappers around a bare architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for inputs in ``[0, 1]``.

    Models are stored bare (so their parameter names match torchvision's); the
    normalisation recorded in the file's metadata is applied by this wrapper, which
    keeps attacks and watermarks working in pixel space.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None):
        super().__init__()
        self.model = model
        if mean is None or std is None:
            self.register_buffer("mean", None, persistent=False)
            self.register_buffer("std", None, persistent=False)
        else:
            shape = (1, len(mean), 1, 1)
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(shape), persistent=False)
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None and x.dim() == 4:
            x = (x - self.mean) / self.std
        return self.model(x)


class KeywordInputs(nn.Module):
    """Calls ``model(**dict(zip(names, inputs)))`` when called as ``adapter(*inputs)``.

    For a model driven by named inputs (``input_ids=..., attention_mask=...``) in tools
    that call ``net(*inputs)`` (tracing, the numerical group check). The adapter
    *shares* the model's parameters, buffers and submodules under the same names, with
    no ``model.`` prefix, so groups found on it address the model's own state-dict keys
    and permuting the adapter permutes the model.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        super().__init__()
        object.__setattr__(self, "inner", model)  # not registered as a child: no name prefix
        self.names = tuple(names)
        # The same dicts, not copies: same names, same tensors (and deepcopy keeps them shared).
        self._parameters = model._parameters
        self._buffers = model._buffers
        self._modules = model._modules
        self._non_persistent_buffers_set = model._non_persistent_buffers_set
        self.training = model.training

    def forward(self, *inputs: torch.Tensor):
        """``inputs``: one tensor per name, in the order of ``names`` (each (B, ...))."""
        return self.inner(**dict(zip(self.names, inputs)))

    def train(self, mode: bool = True) -> KeywordInputs:
        self.inner.training = mode  # the model's own flag (its submodules are shared)
        return super().train(mode)
