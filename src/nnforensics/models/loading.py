"""Loading a model file into its architecture, checked before any weight is allocated.

* :func:`check_fits`: the architecture, built on torch's ``meta`` device (shapes, no
  memory), must have exactly the file's tensor names, shapes and dtype kinds, so a small
  file cannot make its metadata ask for a huge network;
* :func:`check_input_shape`: a built-in architecture's input shape follows from its
  own arguments (``in_channels``, ``image_size``), or, where the parameters do not depend
  on the image size, has its channels; a recorded or given shape that disagrees is
  refused (it would make random example inputs of any size);
* :func:`load_model`: both checks, then the weights (read by :mod:`nnforensics.io`).

Architecture code is imported only from what the user names explicitly; a file's
metadata naming a user architecture is not followed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, CorruptFileError, ShapeMismatchError
from ..io.meta import ModelMeta
from ..io.modelcheck import format_shape, with_counters, describe_mismatch, load_into
from ..io.modelfile import open_model_file
from ..utils.device import resolve_device
from .factory import input_shape_for
from .loaded import LoadedModel
from .registry import accepts_argument, build_model, build_on_meta, is_user_arch


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
    try:
        skeleton = build_on_meta(arch, args, max_tensors=2 * len(layout) + 64)
    except ConfigError:
        if not is_user_arch(arch):
            raise
        return  # a user's own code that cannot run on the meta device: checked when loading for real
    expected = skeleton.state_dict()
    problem = describe_mismatch(expected, with_counters(expected, layout), arch)
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
    if not shape or is_user_arch(arch):
        return
    shape = [int(s) for s in shape]
    expected = input_shape_for(arch, args, None)
    if shape == expected:
        return
    if len(shape) == len(expected) == 3 and shape[0] == expected[0] and _same_parameters(arch, args, shape):
        return
    takes = f"architecture {arch!r} with its arguments takes inputs {format_shape(expected)} (in_channels, image_size)"
    if recorded_in is None:
        raise ConfigError(f"input shape {format_shape(shape)} does not fit the model: {takes}; for a built-in "
                          f"architecture set --arch-arg in_channels=C and image_size=H (or [H,W]) instead")
    raise CorruptFileError(f"{recorded_in}: its metadata records input shape {format_shape(shape)}, but {takes}; "
                           f"inconsistent metadata (edited or crafted?)")


def _infer_args(arch: str, tensors: dict[str, torch.Tensor], given: dict[str, Any]) -> dict[str, Any]:
    """Fill ``num_classes`` / ``in_channels`` from the weights when the user gave none."""
    args = dict(given)
    floats = [(k, v) for k, v in tensors.items() if v.is_floating_point() and v.dim() >= 2]
    if not floats:
        return args
    if "num_classes" not in args and accepts_argument(arch, "num_classes"):
        # The last Linear; else the last 1x1 convolution (SqueezeNet's classifier is one).
        last = [v for _, v in floats if v.dim() == 2] or \
            [v for _, v in floats if v.dim() == 4 and tuple(v.shape[2:]) == (1, 1)]
        if last:
            args["num_classes"] = int(last[-1].shape[0])
    if "in_channels" not in args and accepts_argument(arch, "in_channels"):
        first = floats[0][1]
        if first.dim() == 4:
            args["in_channels"] = int(first.shape[1])
    return args


def _same_arch(recorded: str, given: str) -> bool:
    """Whether ``given`` names the architecture a file records (a user's file may move)."""
    if recorded == given:
        return True
    if not (is_user_arch(recorded) and is_user_arch(given)):
        return False
    (r_target, _, r_attr), (g_target, _, g_attr) = recorded.rpartition(":"), given.rpartition(":")
    return r_attr == g_attr and Path(r_target).name == Path(g_target).name


def load_model(
    path: str | os.PathLike,
    arch: str | None = None,
    arch_args: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | list[int] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Rebuild a model from a file.

    Args:
        path: ``.safetensors`` written by nnforensics (architecture from its metadata),
            or any safetensors / ``.pt`` state dict together with ``arch``.
        arch: registry name or ``file.py:Class`` / ``pkg.mod:factory``; overrides the metadata.
        arch_args: constructor arguments (override the metadata's).
        input_shape: one input's shape, when the file does not record it; for a built-in
            architecture it must be the one its ``in_channels`` / ``image_size`` define
            (as must the shape a file records).
        device: where to put the model.

    Returns:
        :class:`LoadedModel` in eval mode. Its metadata is the file's (with ``arch`` /
        ``arch_args`` as actually used), or, for a file without metadata, one whose
        first history entry is ``{"op": "import"}`` and whose ``input_shape`` is the
        architecture's default.
    """
    dev = resolve_device(device)  # fail before reading a large file
    path = Path(path)
    opened = open_model_file(path)
    meta = opened.meta
    if arch is None:
        if meta is None:
            raise ConfigError(
                f"{str(path)!r} has no nnforensics metadata; pass --arch NAME (see `nnf models`) "
                f"and, if needed, --arch-arg KEY=VALUE"
            )
        if is_user_arch(meta.arch):
            raise ConfigError(
                f"{str(path)!r} was built from the user architecture {meta.arch!r}; pass --arch {meta.arch} "
                f"to load it (code named inside a model file is never imported)"
            )
        arch = meta.arch
    same = meta is not None and _same_arch(meta.arch, arch)
    args = {**(meta.arch_args if same else {}), **(arch_args or {})}
    if not same:
        args = _infer_args(arch, opened.layout, args)
    where = repr(str(path))
    check_input_shape(arch, args, input_shape or (meta.input_shape if same else None), None if input_shape else where)
    check_fits(arch, args, opened.layout)  # before reading the data or allocating the model
    tensors = opened.tensors()
    model = build_model(arch, **args)
    load_into(model, tensors, arch)
    if meta is None:
        meta = ModelMeta(arch=arch, arch_args=args, input_shape=input_shape_for(arch, args, None),
                         num_classes=args.get("num_classes"), history=[{"op": "import", "source": path.name}])
    else:  # the weights' provenance stays; the code that runs them is what the user named
        if not (same or is_user_arch(arch)):  # another built-in: its own input shape
            meta.input_shape = input_shape_for(arch, args, None)
        meta.arch, meta.arch_args = arch, args
        meta.num_classes = args.get("num_classes", meta.num_classes)
    if input_shape:
        meta.input_shape = [int(s) for s in input_shape]
    model.to(dev).eval()
    return LoadedModel(model, meta, path)
