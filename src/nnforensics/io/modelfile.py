"""Reading and writing model files without ever executing code from them.

* ``.safetensors`` (preferred): tensors plus a JSON metadata entry (:class:`ModelMeta`).
* ``.pt`` / ``.pth`` / ``.bin``: a plain state dict, read with
  ``torch.load(weights_only=True)``; the architecture comes from ``--arch``.

Architecture code is imported only from what the user names explicitly; a file's
metadata naming a user architecture is not followed.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import (
    ConfigError,
    CorruptFileError,
    InvalidWeightsError,
    ShapeMismatchError,
    UnsafeFileError,
)
from ..utils.atomic import atomic_path, check_not_input
from .meta import META_KEY, ModelMeta

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

def _brief(err: BaseException) -> str:
    """The first sentence of an exception's first line (library messages run on for paragraphs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0].split(". ")[0] if lines else ""
    if len(text) < 16:  # e.g. KeyError('101'): the type says more than the text
        text = f"{type(err).__name__}: {text}".rstrip(": ")
    return text[:200]


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"file not found: {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"expected a model file, got a directory: {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"expected a model file, got a special file: {str(path)!r}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{str(path)!r} is empty")


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as err:  # any parse failure of an untrusted file is the file's fault
        raise CorruptFileError(
            f"{str(path)!r} is not a readable safetensors file (truncated or corrupt?): {_brief(err)}") from None
    return tensors, metadata


def _unpickling_reason(err: pickle.UnpicklingError) -> str:
    """Why ``weights_only`` refused a pickle, in one clause."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line]
    if named:
        return f"it references Python code that would run when unpickled ({named[0].rstrip('.')})"
    detail = next((line for line in lines[1:] if "nsupported" in line), _brief(err))
    return (f"it is not a plain weights-only PyTorch file: corrupt, or holding Python objects that could "
            f"run code when unpickled ({detail.rstrip('.')})")


def torch_load_weights_only(path: str | os.PathLike, what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; every failure is one readable :class:`NNFError`.

    ``weights_only`` restricts unpickling to tensors and plain containers, so a file
    crafted to run code when unpickled is refused (:class:`UnsafeFileError`) before
    any of its code runs.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's "Detected pickle protocol 4" notice
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or not _is_truncated_zip(path):
            raise UnsafeFileError(f"refused to load {what} {str(path)!r}: {_unpickling_reason(err)}; "
                                  f"only tensors and plain containers are accepted") from None
        corrupt = err  # a zip cut short before its 4-byte magic is read as a (broken) legacy pickle
    except Exception as err:  # zip, struct, key errors... from a truncated or foreign file
        corrupt = err
    raise CorruptFileError(
        f"{what} {str(path)!r} is not a readable PyTorch file (truncated or corrupt?): {_brief(corrupt)}")


def _is_truncated_zip(path: Path) -> bool:
    """True when the file starts like torch's zip format but is too short to be one."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK") and head != b"PK\x03\x04"


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a state dict, or a checkpoint dict holding one under a usual key."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise CorruptFileError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CorruptFileError(f"{str(path)!r}: entries that are not tensors: {', '.join(map(str, bad[:5]))}")
    prefixes = ("module.", "_orig_mod.")  # DataParallel / torch.compile wrappers
    for prefix in prefixes:
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj)


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    return _unwrap_state_dict(torch_load_weights_only(path, "model file"), path)


def check_finite(tensors: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Raise :class:`InvalidWeightsError` naming the first tensors holding NaN/Inf."""
    bad = []
    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            n_bad = int((~torch.isfinite(tensor)).sum())
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
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    meta = None
    if suffix in SAFETENSORS_SUFFIXES:
        tensors, metadata = _read_safetensors(path)
        if META_KEY in metadata:
            try:
                meta = ModelMeta.from_json(metadata[META_KEY])
            except CorruptFileError as err:
                raise CorruptFileError(f"{str(path)!r}: {err}") from None
    elif suffix in TORCH_SUFFIXES:
        tensors = _read_torch(path)
    else:
        known = ", ".join(sorted(SAFETENSORS_SUFFIXES | TORCH_SUFFIXES))
        raise ConfigError(
            f"unsupported model file type {suffix or '(none)'!r} for {str(path)!r}; "
            f"model files are {known} (a .pt/.pth state dict needs --arch)"
        )
    if not tensors:
        raise CorruptFileError(f"{str(path)!r} holds no tensors")
    if check:
        check_finite(tensors, f"weights in {str(path)!r}")
    return tensors, meta


def read_meta(path: str | os.PathLike) -> ModelMeta | None:
    """The metadata of a safetensors model file (None for other files)."""
    return load_state_dict(path, check=False)[1]


# ---------------------------------------------------------------- matching a model

def _fmt_shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def describe_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], arch: str) -> str | None:
    """A message naming the first mismatching keys and shapes, or None when they fit."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [k for k in expected if k in given and tuple(expected[k].shape) != tuple(given[k].shape)]
    if not (missing or unexpected or wrong):
        return None

    def head(keys: list[str], fmt=lambda k: k) -> str:
        return ", ".join(fmt(k) for k in keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = []
    if wrong:
        parts.append("shape mismatch: " + head(
            wrong, lambda k: f"{k} file {_fmt_shape(given[k].shape)} vs model {_fmt_shape(expected[k].shape)}"))
    if missing:
        parts.append("missing keys: " + head(missing))
    if unexpected:
        parts.append("unexpected keys: " + head(unexpected))
    return f"weights do not match architecture {arch!r}: " + "; ".join(parts)


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], arch: str) -> None:
    """``model.load_state_dict(tensors, strict=True)`` with a readable mismatch error.

    BatchNorm ``num_batches_tracked`` counters, absent from many exported state dicts,
    keep the model's own value (they do not affect the network's function).
    """
    expected = model.state_dict()
    tensors = {**{k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in tensors},
               **tensors}
    problem = describe_mismatch(expected, tensors, arch)
    if problem:
        raise ShapeMismatchError(problem)
    model.load_state_dict(tensors, strict=True)


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
        input_shape: one input's shape, when the file does not record it.
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
    tensors, meta = load_state_dict(path)
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
        args = _infer_args(arch, tensors, args)
    model = build_model(arch, **args)
    load_into(model, tensors, arch)
    if meta is None:
        meta = ModelMeta(arch=arch, arch_args=args, input_shape=input_shape_for(arch, args, None),
                         num_classes=args.get("num_classes"), history=[{"op": "import", "source": path.name}])
    else:  # the weights' provenance stays; the code that runs them is what the user named
        meta.arch, meta.arch_args = arch, args
        meta.num_classes = args.get("num_classes", meta.num_classes)
    if input_shape:
        meta.input_shape = [int(s) for s in input_shape]
    model.to(dev).eval()
    return LoadedModel(model, meta, path)


# ---------------------------------------------------------------- writing

def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous, storage-independent copies (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


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
    that :func:`load_model` would reject).
    """
    from safetensors.torch import save_file

    path = check_model_output(path, inputs)
    tensors = state_dict_for_saving(model)
    check_finite(tensors, "weights of the model to save")
    text = meta.to_json()
    ModelMeta.from_json(text)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: text, "format": "pt"})
    return path
