"""Creating a fresh model whose metadata describes it completely."""

from __future__ import annotations

from typing import Any

from ..data.registry import DatasetInfo
from ..io.meta import ModelMeta
from ..io.modelfile import LoadedModel
from .registry import accepts_argument, build_model, get_model_spec, is_user_arch


def resolve_arch_args(arch: str, arch_args: dict[str, Any] | None, data: DatasetInfo | None) -> dict[str, Any]:
    """Constructor arguments: the user's, completed from the dataset (classes, channels, size)."""
    args = dict(arch_args or {})
    if data is not None:
        fill = {"num_classes": data.num_classes, "in_channels": data.input_shape[0]}
        if len(data.input_shape) == 3:
            fill["image_size"] = data.input_shape[-1]
        for key, value in fill.items():
            if key not in args and accepts_argument(arch, key):
                args[key] = value
    return args


def input_shape_for(arch: str, args: dict[str, Any], data: DatasetInfo | None) -> list[int]:
    if data is not None:
        return list(data.input_shape)
    if is_user_arch(arch):
        return []
    shape = list(get_model_spec(arch).input_shape)
    if len(shape) == 3:
        shape[0] = int(args.get("in_channels", shape[0]))
        if "image_size" in args:
            shape[1] = shape[2] = int(args["image_size"])
    return shape


def create_model(
    arch: str,
    arch_args: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    data: DatasetInfo | None = None,
) -> LoadedModel:
    """A freshly initialised model (parameters drawn from ``seed``) with its metadata."""
    from ..training import seeded_init

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
