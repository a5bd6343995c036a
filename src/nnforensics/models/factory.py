"""Creating a fresh model whose metadata describes it completely."""

from __future__ import annotations

from typing import Any

from ..data.registry import DatasetInfo
from ..errors import ConfigError
from ..io.meta import ModelMeta, normalization_problem
from ..utils.seeding import seeded_init
from .loaded import LoadedModel
from .registry import accepts_argument, build_model, get_model_spec, is_user_arch
from .sizes import image_hw, image_size_for


def resolve_arch_args(arch: str, arch_args: dict[str, Any] | None, data: DatasetInfo | None) -> dict[str, Any]:
    """Constructor arguments: the user's, completed from the dataset.

    Fills ``num_classes``, ``in_channels`` and, for image data ``(C, H, W)``,
    ``image_size`` (an int for square images, ``[H, W]`` otherwise), where the
    architecture takes them and the user did not set them; they are recorded in the
    model's metadata.
    """
    args = dict(arch_args or {})
    if data is not None:
        fill: dict[str, Any] = {"num_classes": data.num_classes, "in_channels": data.input_shape[0]}
        if len(data.input_shape) == 3:
            fill["image_size"] = image_size_for(data.input_shape)
        for key, value in fill.items():
            if key not in args and accepts_argument(arch, key):
                args[key] = value
    return args


def input_shape_for(arch: str, args: dict[str, Any], data: DatasetInfo | None) -> list[int]:
    """One input's shape: the dataset's, else the architecture's default with ``in_channels``/``image_size``."""
    if data is not None:
        return list(data.input_shape)
    if is_user_arch(arch):
        return []
    shape = list(get_model_spec(arch).input_shape)
    if len(shape) == 3:
        shape[0] = int(args.get("in_channels", shape[0]))
        if "image_size" in args:
            try:
                shape[1], shape[2] = image_hw(args["image_size"])
            except ValueError as err:
                raise ConfigError(f"{arch}: {err}") from None
    return shape


def _check_normalization(data: DatasetInfo | None) -> None:
    """A dataset's normalisation must be usable before a model records it (finite, std > 0, one per channel)."""
    if data is None:
        return
    channels = data.input_shape[0] if len(data.input_shape) == 3 else None
    problem = normalization_problem(data.normalization, channels)
    if problem:
        raise ConfigError(f"dataset {data.name}: unusable normalisation {data.normalization}: {problem}")


def create_model(
    arch: str,
    arch_args: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    data: DatasetInfo | None = None,
) -> LoadedModel:
    """A freshly initialised model (parameters drawn from ``seed``) with its metadata."""
    _check_normalization(data)
    args = resolve_arch_args(arch, arch_args, data)
    model = seeded_init(lambda: build_model(arch, **args), seed).eval()
    meta = ModelMeta(
        arch=arch,
        arch_args=args,
        input_shape=input_shape_for(arch, args, data),
        num_classes=args.get("num_classes"),
        normalization=data.normalization if data is not None else None,
        dataset=data.name if data is not None else None,
        history=[{"op": "init", "seed": seed}],
    )
    return LoadedModel(model, meta)
