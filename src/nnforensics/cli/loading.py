"""Loading the models and data that commands are given."""

from __future__ import annotations

from pathlib import Path

from ..io.modelfile import LoadedModel, load_model
from ..models.registry import parse_arch_args


def open_model(path: Path | str, arch: str | None, arch_args: list[str] | None, device: str = "cpu") -> LoadedModel:
    """A model file plus the optional ``--arch`` / ``--arch-arg`` the user gave."""
    return load_model(path, arch=arch, arch_args=parse_arch_args(arch_args) or None, device=device)
