"""Safe model and checkpoint files: safetensors with metadata, weights-only torch files."""

from .meta import ModelMeta
from .modelfile import (
    LoadedModel,
    load_model,
    load_state_dict,
    save_model,
    read_meta,
)
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "ModelMeta",
    "LoadedModel",
    "load_model",
    "load_state_dict",
    "save_model",
    "read_meta",
    "load_checkpoint",
    "save_checkpoint",
]
