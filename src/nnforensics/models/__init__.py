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

__all__ = [
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
