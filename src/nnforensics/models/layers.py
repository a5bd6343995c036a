"""Naming and selecting a model's weight layers (the names the CLI accepts)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from ..errors import ConfigError, UnknownNameError

#: Layers whose ``weight`` the perturbations and analyses act on by default.
WEIGHT_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)

TARGET_ALIASES = ("penultimate", "last", "first")


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Conv/Linear layer, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYER_TYPES)]


def layer_names(model: nn.Module) -> list[str]:
    """Names of every module that owns parameters or buffers."""
    return [
        name
        for name, m in model.named_modules()
        if name and (any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)))
    ]


def resolve_target(model: nn.Module, target: str) -> str:
    """Layer name for ``target``: a layer name, or ``penultimate`` / ``last`` / ``first``.

    ``penultimate`` is the paper's target: the last Conv/Linear layer before the
    classifier (whose output neurons are permuted and perturbed).
    """
    layers = [name for name, _ in weight_layers(model)]
    if not layers:
        raise ConfigError("the model has no Conv/Linear layers")
    if target == "penultimate":
        if len(layers) < 2:
            raise ConfigError("the model has a single weight layer; it has no penultimate layer")
        return layers[-2]
    if target == "last":
        return layers[-1]
    if target == "first":
        return layers[0]
    names = set(layer_names(model))
    if target not in names:
        raise UnknownNameError("layer", target, list(names) + list(TARGET_ALIASES))
    return target


def resolve_layers(model: nn.Module, layers: Sequence[str] | None = None, target: str | None = None) -> list[str]:
    """The layers an operation acts on: ``layers`` if given, else ``target``, else all Conv/Linear."""
    if layers and target:
        raise ConfigError("give either layers or a target, not both")
    if target:
        return [resolve_target(model, target)]
    if layers:
        valid = {name for name, _ in weight_layers(model)} | set(layer_names(model))
        unknown = [name for name in layers if name not in valid]
        if unknown:
            raise UnknownNameError("layer", unknown[0], valid)
        return list(dict.fromkeys(layers))
    return [name for name, _ in weight_layers(model)]
