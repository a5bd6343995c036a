"""Built-in architectures (a registry) and adapters for users' own models."""

from .registry import (
    ModelSpec,
    accepts_argument,
    build_model,
    get_model_spec,
    is_user_arch,
    list_models,
    parse_arch_args,
    register_model,
)
from .wrappers import Normalized
from .loaded import LoadedModel
from .loading import check_input_shape, load_model

__all__ = [
    "LoadedModel",
    "check_input_shape",
    "load_model",
    "ModelSpec",
    "Normalized",
    "accepts_argument",
    "build_model",
    "get_model_spec",
    "is_user_arch",
    "list_models",
    "parse_arch_args",
    "register_model",
]
