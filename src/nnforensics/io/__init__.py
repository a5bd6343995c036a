"""Safe model and checkpoint files: safetensors with metadata, weights-only torch files.

Loading a file into its architecture (which needs the architecture) is
:func:`nnforensics.models.load_model`.
"""

from .meta import ModelMeta
from .modelfile import (
    load_state_dict,
    save_model,
    read_meta,
)
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "ModelMeta",
    "load_state_dict",
    "save_model",
    "read_meta",
    "load_checkpoint",
    "save_checkpoint",
]
