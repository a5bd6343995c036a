"""nnforensics: white-box forensics of neural networks."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import NNFError  # noqa: E402
from .io import LoadedModel, ModelMeta, load_model, save_model  # noqa: E402
from .models import build_model, list_models  # noqa: E402
from .models.factory import create_model  # noqa: E402
from .data import load_dataset, list_datasets  # noqa: E402
from .training import Recipe, evaluate, fit, train  # noqa: E402

__all__ = [
    "LoadedModel",
    "ModelMeta",
    "NNFError",
    "Recipe",
    "build_model",
    "create_model",
    "evaluate",
    "fit",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "save_model",
    "train",
]
