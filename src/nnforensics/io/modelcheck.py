"""Does a file's content fit an architecture? Checked before any weight is allocated.

* :func:`check_fits`: the architecture, built on torch's ``meta`` device (shapes, no
  memory), must have exactly the file's tensor names, shapes and dtype kinds.
* :func:`check_input_shape`: a built-in architecture's input shape follows from its
  own arguments (``in_channels``, ``image_size``), or, where the parameters do not depend
  on the image size, has its channels; a recorded or given shape that disagrees is
  refused (it would make random example inputs of any size).
* :func:`load_into`: ``load_state_dict`` with a readable mismatch message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError, CorruptFileError, ShapeMismatchError


def _fmt_shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating-point"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def describe_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], arch: str) -> str | None:
    """A message naming the first mismatching keys, shapes and dtype kinds, or None when they fit.

    Works on data-less ``meta`` tensors too (only names, shapes and dtypes are compared).
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    common = [k for k in expected if k in given]
    wrong = [k for k in common if tuple(expected[k].shape) != tuple(given[k].shape)]
    kinds = [k for k in common if k not in wrong and _kind(expected[k]) != _kind(given[k])]
    if not (missing or unexpected or wrong or kinds):
        return None

    def head(keys: list[str], fmt=lambda k: k) -> str:
        return ", ".join(fmt(k) for k in keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = []
    if wrong:
        parts.append("shape mismatch: " + head(
            wrong, lambda k: f"{k} file {_fmt_shape(given[k].shape)} vs model {_fmt_shape(expected[k].shape)}"))
    if kinds:
        parts.append("dtype mismatch: " + head(
            kinds, lambda k: f"{k} file {_kind(given[k])} vs model {_kind(expected[k])}"))
    if missing:
        parts.append("missing keys: " + head(missing))
    if unexpected:
        parts.append("unexpected keys: " + head(unexpected))
    return f"weights do not match architecture {arch!r}: " + "; ".join(parts)


def _with_counters(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` plus the model's own BatchNorm ``num_batches_tracked`` counters where the file has none.

    Many exported state dicts lack them; they do not affect the network's function.
    """
    counters = {k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in tensors}
    return {**counters, **tensors}


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], arch: str) -> None:
    """``model.load_state_dict(tensors, strict=True)`` with a readable mismatch error."""
    expected = model.state_dict()
    tensors = _with_counters(expected, tensors)
    problem = describe_mismatch(expected, tensors, arch)
    if problem:
        raise ShapeMismatchError(problem)
    model.load_state_dict(tensors, strict=True)


def check_fits(arch: str, args: dict[str, Any], layout: dict[str, torch.Tensor]) -> None:
    """Refuse, before allocating anything, an architecture whose weights are not the file's.

    The model is built on torch's ``meta`` device (shapes, no memory), registering at
    most about as many tensors as the file holds, and its state dict is compared with
    the file's names, shapes and dtype kinds (:func:`describe_mismatch`); the values it
    would allocate, non-persistent buffers included, must not exceed the file's.

    Args:
        arch: registry name or user architecture spec.
        args: constructor arguments.
        layout: the file's tensors, real or ``meta`` (only shapes and dtypes are used).
    """
    from ..models.registry import build_on_meta, is_user_arch

    try:
        skeleton = build_on_meta(arch, args, max_tensors=2 * len(layout) + 64)
    except ConfigError:
        if not is_user_arch(arch):
            raise
        return  # a user's own code that cannot run on the meta device: checked when loading for real
    expected = skeleton.state_dict()
    problem = describe_mismatch(expected, _with_counters(expected, layout), arch)
    if problem:
        raise ShapeMismatchError(problem)
    wanted = sum(t.numel() for t in [*skeleton.parameters(), *skeleton.buffers()])
    held = sum(t.numel() for t in layout.values()) + sum(v.numel() for k, v in expected.items() if k not in layout)
    if wanted > held + 2**20:  # slack: small non-persistent buffers (e.g. masks, position tables)
        raise ShapeMismatchError(f"architecture {arch!r} with {args} would allocate {wanted:,} values, far more "
                                 f"than the {held:,} the file holds")


def _same_parameters(arch: str, args: dict[str, Any], shape: Sequence[int]) -> bool:
    """Whether ``arch`` built for images of ``shape`` has the very parameter shapes it has with ``args``.

    True for size-independent networks (global pooling: ResNet, VGG's CIFAR classifier,
    MobileNet...), which may record any image size; False where layer sizes follow the image
    (LeNet, MLP, ViT position embeddings) or where the size is too small to build at all.
    """
    from ..models.registry import accepts_argument, build_on_meta

    if not accepts_argument(arch, "image_size"):
        return True
    try:
        a = build_on_meta(arch, args).state_dict()
        b = build_on_meta(arch, {**args, "image_size": [int(s) for s in shape[1:]]}).state_dict()
    except (ConfigError, ShapeMismatchError):
        return False
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def check_input_shape(arch: str, args: dict[str, Any], shape: Sequence[int] | None,
                      recorded_in: str | None = None) -> None:
    """Refuse an input shape that a built-in architecture with ``args`` does not take.

    The shape must be the one ``in_channels`` and ``image_size`` define, or, for a network
    whose parameters do not depend on the image size, any shape with its channels (files
    written before ``image_size`` was recorded, data of another size). Its number of values
    is bounded elsewhere (:mod:`nnforensics.io.limits`).

    Args:
        arch: registry name (user architectures are not checked: their shape is theirs to record).
        args: constructor arguments.
        shape: one input's shape ``(C, H, W)``; empty or None: nothing to check.
        recorded_in: the file whose metadata records ``shape`` (None: the caller gave it).

    Raises:
        CorruptFileError: a file records a shape its own architecture arguments contradict.
        ConfigError: the caller's shape contradicts them.
    """
    from ..models.factory import input_shape_for
    from ..models.registry import is_user_arch

    if not shape or is_user_arch(arch):
        return
    shape = [int(s) for s in shape]
    expected = input_shape_for(arch, args, None)
    if shape == expected:
        return
    if len(shape) == len(expected) == 3 and shape[0] == expected[0] and _same_parameters(arch, args, shape):
        return
    takes = f"architecture {arch!r} with its arguments takes inputs {_fmt_shape(expected)} (in_channels, image_size)"
    if recorded_in is None:
        raise ConfigError(f"input shape {_fmt_shape(shape)} does not fit the model: {takes}; for a built-in "
                          f"architecture set --arch-arg in_channels=C and image_size=H (or [H,W]) instead")
    raise CorruptFileError(f"{recorded_in}: its metadata records input shape {_fmt_shape(shape)}, but {takes}; "
                           f"inconsistent metadata (edited or crafted?)")
