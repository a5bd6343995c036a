"""nnforensics: white-box forensics of neural networks."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import NNFError  # noqa: E402
from .io import ModelMeta, save_model  # noqa: E402
from .models import LoadedModel, build_model, list_models, load_model  # noqa: E402
from .models.factory import create_model  # noqa: E402
from .data import load_dataset, list_datasets  # noqa: E402
from .training import Recipe, evaluate, fit, train  # noqa: E402
from .graph import GroupSet, PermutationGroup, example_inputs_for, find_groups  # noqa: E402
from .permutation import PermuteResult, permute  # noqa: E402
from .resynchronization import METHODS, ResyncResult, resync, similarity_matrix  # noqa: E402
from .integrity import CompareResult, compare  # noqa: E402
from .perturbation import perturb  # noqa: E402

__all__ = [
    "CompareResult",
    "GroupSet",
    "METHODS",
    "PermutationGroup",
    "PermuteResult",
    "ResyncResult",
    "compare",
    "example_inputs_for",
    "find_groups",
    "permute",
    "perturb",
    "resync",
    "similarity_matrix",
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
