"""PyTorch ``.pt`` files, read with ``torch.load(weights_only=True)`` and nothing else.

``weights_only`` restricts unpickling to tensors and plain containers, so a file
crafted to run code when unpickled is refused before any of its code runs. The refusal
names what the file asked for (e.g. ``builtins.eval``), found by reading the pickle's
opcodes (:mod:`pickletools`, which never executes them), and never repeats torch's
advice to allow-list it: that global is the attacker's payload.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import CorruptFileError, UnsafeFileError

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
#: torch's legacy (pre-zip) format is several pickles in a row; the state dict is the fourth.
_LEGACY_PICKLES = 4
#: How much more a zip-format .pt may inflate to than its own size (torch stores its members uncompressed).
ZIP_INFLATION_SLACK = 16 * 1024 * 1024
#: Words of torch's refusal text that advise allowing the refused object: never shown to users.
_ADVICE_WORDS = ("safe_globals", "allowlist", "weights_only", "trust", "add_safe")


def brief(err: BaseException) -> str:
    """The first sentence of an exception's first line (library messages run on for paragraphs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0].split(". ")[0] if lines else ""
    if len(text) < 16:  # e.g. KeyError('101'): the type says more than the text
        text = f"{type(err).__name__}: {text}".rstrip(": ")
    return text[:200]


# ---------------------------------------------------------------- what a pickle refers to

def _python3_name(module: str, attr: str) -> str:
    """``module.attr`` as Python 3 resolves it (protocol-2 pickles say ``__builtin__`` for ``builtins``)."""
    module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"


def _globals_in(handle: IO[bytes]) -> Iterator[str]:
    """``module.name`` of every global one pickle references, from its opcodes alone.

    ``STACK_GLOBAL`` takes its two names from the stack; they are the last two strings
    pushed (directly or from the memo), which is how every pickler writes them.
    """
    memo: dict[Any, Any] = {}
    pushed: list[Any] = []
    for op, arg, _ in pickletools.genops(handle):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            yield _python3_name(module, attr)
        elif name == "STACK_GLOBAL" and len(pushed) >= 2 and all(isinstance(v, str) for v in pushed[-2:]):
            yield _python3_name(pushed[-2], pushed[-1])
        if name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else str(arg))
        elif name in _GET_OPS:
            pushed.append(memo.get(arg))
        elif name in _PUT_OPS:
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        else:
            pushed.append(None)
        del pushed[:-2]


def pickle_globals(path: Path) -> list[str]:
    """Every global referenced by a ``.pt`` file's pickles (zip or legacy format), in order, unique.

    Best effort on damaged files: whatever was found before the damage.
    """
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in [n for n in archive.namelist() if n.endswith(".pkl")][:8]:
                    with archive.open(member) as handle:
                        found.extend(_globals_in(handle))
        else:
            with open(path, "rb") as handle:
                for _ in range(_LEGACY_PICKLES):
                    found.extend(_globals_in(handle))
    except Exception:  # a damaged or foreign file: keep what was found
        pass
    return list(dict.fromkeys(found))


def _allowed_globals() -> set[str]:
    """What ``weights_only`` accepts (torch's own list, where this torch exposes it)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except Exception:  # a torch without that private helper: treat only torch's own names as allowed
        return set()


def refused_globals(path: Path) -> list[str]:
    """The globals of ``path`` that ``weights_only`` does not allow."""
    allowed = _allowed_globals()

    def ok(name: str) -> bool:
        return name in allowed if allowed else name.split(".")[0] in ("torch", "collections", "_codecs")

    return [name for name in pickle_globals(path) if not ok(name)]


def _without_advice(text: str) -> str:
    """torch's refusal text minus every sentence advising to allow the refused object."""
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if s.strip()]
    kept = [s for s in sentences if not any(word in s.lower() for word in _ADVICE_WORDS)]
    return ". ".join(kept).rstrip(".")[:200]


def unpickling_reason(err: pickle.UnpicklingError, path: Path) -> str:
    """Why ``weights_only`` refused a pickle, in one clause that names what was refused."""
    refused = refused_globals(path)
    if refused:
        shown = ", ".join(refused[:3]) + (f" (+{len(refused) - 3} more)" if len(refused) > 3 else "")
        return f"it references {shown}, Python code that would run while the file is unpickled"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "error:" in line.lower()), lines[-1] if lines else "")
    detail = _without_advice(detail.split("error:", 1)[-1]) or type(err).__name__
    return (f"it is not a plain weights-only PyTorch file: corrupt, or holding Python objects that could "
            f"run code when unpickled ({detail})")


# ---------------------------------------------------------------- loading

def _is_truncated_zip(path: Path) -> bool:
    """True when the file starts like torch's zip format but is too short to be one."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK") and head != b"PK\x03\x04"


def _check_inflation(path: Path, what: str) -> None:
    """Refuse a zip-format file whose members would inflate far beyond its own size (a zip bomb).

    torch writes members uncompressed but reads deflated ones too, allocating their
    declared size first: a few megabytes could otherwise ask for gigabytes.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip, or a damaged one: torch.load reports it
    size = path.stat().st_size
    if declared > size + ZIP_INFLATION_SLACK:
        raise CorruptFileError(f"{what} {str(path)!r} would inflate from {size:,} to {declared:,} bytes; "
                               f"PyTorch files are stored uncompressed, so this is not one nnforensics reads")


def torch_load_weights_only(path: str | os.PathLike, what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; every failure is one readable :class:`NNFError`.

    A file that would run code is an :class:`UnsafeFileError` naming what it references
    (nothing of it runs); a truncated or foreign file is a :class:`CorruptFileError`.
    """
    path = Path(path)
    _check_inflation(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's "Detected pickle protocol 4" notice
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or not _is_truncated_zip(path):
            raise UnsafeFileError(f"refused to load {what} {str(path)!r}: {unpickling_reason(err, path)}; "
                                  f"only tensors and plain containers are accepted, and nothing from the "
                                  f"file was run") from None
        corrupt: BaseException = err  # a zip cut short before its 4-byte magic is read as a (broken) legacy pickle
    except Exception as err:  # zip, struct, key errors... from a truncated or foreign file
        corrupt = err
    raise CorruptFileError(
        f"{what} {str(path)!r} is not a readable PyTorch file (truncated or corrupt?): {brief(corrupt)}")


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor read from a file is refused, or None for a dense CPU tensor of plain numbers.

    Sparse, quantized and data-less (``meta``) tensors cannot be compared or checked
    like weights; a view whose strides overlap (``expand``) presents more values than
    its file holds, so a few bytes could ask for gigabytes once computed on.
    """
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor (save it dense: tensor.to_dense())"
    if tensor.is_quantized:
        return f"a quantized {str(tensor.dtype).removeprefix('torch.')} tensor (save tensor.dequantize())"
    if tensor.device.type != "cpu":
        return f"a tensor on device {tensor.device.type!r}, which holds no values"
    stored = tensor.untyped_storage().nbytes()
    if tensor.numel() * tensor.element_size() > stored:
        return (f"a view of shape {tuple(tensor.shape)} over {stored} bytes of data (overlapping strides, as "
                f"from expand()); save tensor.contiguous()")
    return None


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a state dict, or a checkpoint dict holding one under a usual key.

    Raises:
        CorruptFileError: no mapping of names to tensors, or a tensor refused by
            :func:`tensor_problem` (sparse, quantized, ``meta``, overlapping views).
    """
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
    for name, tensor in obj.items():
        problem = tensor_problem(tensor)
        if problem:
            raise CorruptFileError(f"{str(path)!r}: tensor {name!r} is {problem}; nnforensics reads plain dense "
                                   f"tensors only")
    for prefix in ("module.", "_orig_mod."):  # DataParallel / torch.compile wrappers
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj)


def read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict held by a ``.pt``/``.pth``/``.bin``/``.ckpt`` file."""
    return unwrap_state_dict(torch_load_weights_only(path, "model file"), path)
