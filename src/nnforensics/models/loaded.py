"""A model rebuilt from a file or made fresh, together with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from ..io.meta import ModelMeta
from .wrappers import Normalized


@dataclass
class LoadedModel:
    """A model (in eval mode) with the metadata that describes it."""

    model: nn.Module
    meta: ModelMeta
    path: Path | None = None

    def classifier(self) -> nn.Module:
        """The model wrapped with its input normalisation (takes ``[0, 1]`` inputs)."""
        norm = self.meta.normalization or {}
        return Normalized(self.model, norm.get("mean"), norm.get("std"))
