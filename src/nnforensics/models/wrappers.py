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
