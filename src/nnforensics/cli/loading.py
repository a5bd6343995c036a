"""Loading the models and data that commands are given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.registry import ArrayDataset
from ..errors import ConfigError, ShapeMismatchError
from ..io.meta import ModelMeta
from ..io.modelfile import LoadedModel, load_model
from ..models.registry import accepts_argument, is_user_arch, parse_arch_args


def arch_args_for(arch: str | None, items: list[str] | None) -> dict[str, Any]:
    """Parse ``--arch-arg KEY=VALUE`` options and reject keys ``arch`` does not take.

    Registry architectures check their arguments when built; a user's constructor
    would silently drop unknown keys, so a typo is caught here.
    """
    args = parse_arch_args(items)
    if arch is not None and is_user_arch(arch):
        unknown = [k for k in args if not accepts_argument(arch, k)]
        if unknown:
            raise ConfigError(f"user architecture {arch!r} does not take argument(s) {', '.join(unknown)}")
    return args


def open_model(path: Path | str, arch: str | None, arch_args: list[str] | None, device: str = "cpu") -> LoadedModel:
    """A model file plus the optional ``--arch`` / ``--arch-arg`` the user gave."""
    return load_model(path, arch=arch, arch_args=arch_args_for(arch, arch_args) or None, device=device)


def model_or_arch(model: Path | str | None, arch: str | None, arch_args: list[str] | None) -> LoadedModel:
    """A model file, or (without one) a freshly initialised ``--arch``: for commands that only
    need the architecture (``layers``, ``groups``)."""
    if model is not None:
        return open_model(model, arch, arch_args)
    if arch is None:
        raise ConfigError("give a model file or --arch NAME (see `nnf models`)")
    from ..models.factory import create_model

    return create_model(arch, arch_args_for(arch, arch_args))


def _imported(meta: ModelMeta) -> bool:
    """True when the metadata was made up on load (a state dict without nnforensics metadata)."""
    return bool(meta.history) and meta.history[0].get("op") == "import"


def check_data_fits(loaded: LoadedModel, data: ArrayDataset) -> None:
    """Refuse data whose image shape differs from the one the model file records.

    A model with global pooling would run on the wrong image size and report a
    meaningless accuracy. For imported state dicts only the channel count is
    known for sure (the recorded size is the architecture's default).
    """
    expected, given = list(loaded.meta.input_shape), list(data.x.shape[1:])
    if not expected or expected == given:
        return
    if _imported(loaded.meta) and len(expected) == len(given) and expected[:1] == given[:1]:
        return
    raise ShapeMismatchError(
        f"the model expects inputs of shape {tuple(expected)} but dataset {data.info.name!r} has "
        f"{tuple(given)}; evaluate it on the data it was built for"
    )
