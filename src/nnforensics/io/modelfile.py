"""Reading and writing model files without ever executing code from them.

* ``.safetensors`` (preferred): tensors plus a JSON metadata entry (:class:`ModelMeta`);
  the header is validated by :mod:`.safetensors_file`, and files are written so that
  the same model and metadata always give the same bytes.
* ``.pt`` / ``.pth`` / ``.bin``: a plain state dict, read with
  ``torch.load(weights_only=True)`` (:mod:`.torchfile`); the architecture comes from ``--arch``.

Architecture code is imported only from what the user names explicitly; a file's
metadata naming a user architecture is not followed. A model is first built on
torch's ``meta`` device (no memory) and its parameter names, shapes and dtypes are
compared with the file's before any tensor is read or any weight allocated, so a
small file cannot make its metadata ask for a huge network; a built-in architecture's
recorded input shape must be the one its arguments define (:mod:`.modelcheck`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn as nn

from ..errors import ConfigError, CorruptFileError, InvalidWeightsError
from ..utils.atomic import atomic_path, check_not_input
from .meta import META_KEY, ModelMeta
from .modelcheck import check_fits, check_input_shape, load_into
from .modelcheck import describe_mismatch  # noqa: F401  (re-exported: training, resynchronization use it)
from .safetensors_file import Header, read_header, read_tensors, write_safetensors
from .torchfile import read_torch_state_dict

SAFETENSORS_SUFFIXES = {".safetensors"}
TORCH_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}


@dataclass
class LoadedModel:
    """A model rebuilt from a file, with its metadata."""

    model: nn.Module
    meta: ModelMeta
    path: Path | None = None

    def classifier(self) -> nn.Module:
        """The model wrapped with its input normalisation (takes ``[0, 1]`` inputs)."""
        from ..models.wrappers import Normalized

        norm = self.meta.normalization or {}
        return Normalized(self.model, norm.get("mean"), norm.get("std"))


# ---------------------------------------------------------------- reading tensors

def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"file not found: {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"expected a model file, got a directory: {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"expected a model file, got a special file: {str(path)!r}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{str(path)!r} is empty")


def _is_safetensors(path: Path) -> bool:
    """True for ``.safetensors``, False for torch files; other suffixes are a :class:`ConfigError`."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return True
    if suffix in TORCH_SUFFIXES:
        return False
    known = ", ".join(sorted(SAFETENSORS_SUFFIXES | TORCH_SUFFIXES))
    raise ConfigError(
        f"unsupported model file type {suffix or '(none)'!r} for {str(path)!r}; "
        f"model files are {known} (a .pt/.pth state dict needs --arch)"
    )


def _meta_of(header: Header, path: Path) -> ModelMeta | None:
    """The nnforensics metadata of a safetensors header (None for files written by others)."""
    if META_KEY not in header.metadata:
        return None
    try:
        return ModelMeta.from_json(header.metadata[META_KEY])
    except CorruptFileError as err:
        raise CorruptFileError(f"{str(path)!r}: {err}") from None


@dataclass
class _Opened:
    """A model file whose tensor names, shapes and dtypes are known; the data may not be read yet."""

    path: Path
    layout: dict[str, torch.Tensor]  # real tensors, or data-less ``meta`` tensors from a header
    meta: ModelMeta | None
    header: Header | None  # safetensors: the data is read by :meth:`tensors`

    def tensors(self, check: bool = True) -> dict[str, torch.Tensor]:
        tensors = self.layout if self.header is None else read_tensors(self.path, self.header)
        if check:
            check_finite(tensors, f"weights in {str(self.path)!r}")
        return tensors


def _open(path: Path) -> _Opened:
    """Names, shapes, dtypes and metadata of a model file; for safetensors, without reading the data."""
    _check_exists(path)
    if _is_safetensors(path):
        header = read_header(path)
        opened = _Opened(path, header.skeleton(), _meta_of(header, path), header)
    else:
        opened = _Opened(path, read_torch_state_dict(path), None, None)
    if not opened.layout:
        raise CorruptFileError(f"{str(path)!r} holds no tensors")
    return opened


def _non_finite(name: str, tensor: torch.Tensor, source: str) -> int:
    """How many values of ``tensor`` are NaN/Inf; a tensor that cannot be counted is an :class:`InvalidWeightsError`."""
    if tensor.is_quantized:
        _unusable(name, tensor, source)
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    try:
        return int((~torch.isfinite(tensor)).sum())
    except (RuntimeError, NotImplementedError):  # sparse layouts, data-less meta tensors...
        _unusable(name, tensor, source)


def _unusable(name: str, tensor: torch.Tensor, source: str) -> NoReturn:
    kind = str(tensor.layout if tensor.layout != torch.strided else tensor.dtype).removeprefix("torch.")
    raise InvalidWeightsError(f"{source}: tensor {name!r} ({kind}, on {tensor.device.type}) cannot be checked "
                              f"for NaN/Inf; only plain dense CPU tensors are used")


def check_finite(tensors: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Raise :class:`InvalidWeightsError` naming the first tensors holding NaN/Inf, or one that
    cannot be checked (sparse, quantized, data-less ``meta``)."""
    bad = []
    for name, tensor in tensors.items():
        n_bad = _non_finite(name, tensor, source)
        if n_bad:
            bad.append(f"{name} ({n_bad} of {tensor.numel()} values)")
    if bad:
        raise InvalidWeightsError(f"{source} contain NaN or Inf values: {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))


def load_state_dict(path: str | os.PathLike, check: bool = True) -> tuple[dict[str, torch.Tensor], ModelMeta | None]:
    """Read tensors (and metadata, if any) from a model file, safely.

    Args:
        path: ``.safetensors``, or a ``.pt``/``.pth``/``.bin``/``.ckpt`` state dict.
        check: refuse NaN/Inf weights (:class:`InvalidWeightsError`).

    Returns:
        ``(state_dict, meta)``; ``meta`` is None for files not written by nnforensics.
    """
    opened = _open(Path(path))
    return opened.tensors(check), opened.meta


def read_meta(path: str | os.PathLike) -> ModelMeta | None:
    """The metadata of a safetensors model file (None for other files); reads no tensor data."""
    path = Path(path)
    _check_exists(path)
    return _meta_of(read_header(path), path) if _is_safetensors(path) else None


# ---------------------------------------------------------------- loading a model

def _infer_args(arch: str, tensors: dict[str, torch.Tensor], given: dict[str, Any]) -> dict[str, Any]:
    """Fill ``num_classes`` / ``in_channels`` from the weights when the user gave none."""
    from ..models.registry import accepts_argument

    args = dict(given)
    floats = [(k, v) for k, v in tensors.items() if v.is_floating_point() and v.dim() >= 2]
    if not floats:
        return args
    if "num_classes" not in args and accepts_argument(arch, "num_classes"):
        last = [v for k, v in floats if v.dim() == 2]
        if last:
            args["num_classes"] = int(last[-1].shape[0])
    if "in_channels" not in args and accepts_argument(arch, "in_channels"):
        first = floats[0][1]
        if first.dim() == 4:
            args["in_channels"] = int(first.shape[1])
    return args


def _same_arch(recorded: str, given: str) -> bool:
    """Whether ``given`` names the architecture a file records (a user's file may move)."""
    from ..models.registry import is_user_arch

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
    from ..models.factory import input_shape_for
    from ..models.registry import build_model, is_user_arch
    from ..utils.device import resolve_device

    dev = resolve_device(device)  # fail before reading a large file
    path = Path(path)
    opened = _open(path)
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


# ---------------------------------------------------------------- writing

def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as CPU tensors (no copy of tensors already there)."""
    return {k: v.detach().to("cpu") for k, v in model.state_dict().items()}


def check_model_output(path: str | os.PathLike, inputs: list[str | os.PathLike | None] | None = None) -> Path:
    """Validate an output model path before any work: ``.safetensors``, not a folder, not an input."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ConfigError(f"model outputs are written as .safetensors; got {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"output path {str(path)!r} is a directory; give a file name")
    check_not_input(path, inputs or [])
    return path


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    meta: ModelMeta,
    inputs: list[str | os.PathLike | None] | None = None,
) -> Path:
    """Write ``model`` and ``meta`` to a ``.safetensors`` file atomically.

    ``inputs`` are the files the command read; writing over one of them is refused.
    NaN/Inf weights are refused, and the metadata must read back (no file is written
    that :func:`load_model` would reject). The file's bytes depend only on the tensors
    and the metadata.
    """
    path = check_model_output(path, inputs)
    tensors = state_dict_for_saving(model)
    check_finite(tensors, "weights of the model to save")
    check_input_shape(meta.arch, meta.arch_args, meta.input_shape)
    text = meta.to_json()
    ModelMeta.from_json(text)
    with atomic_path(path) as tmp:  # same model and metadata -> same bytes (sorted header, fixed order)
        write_safetensors(tmp, tensors, {META_KEY: text, "format": "pt"})
    return path
