"""Reading pickled data sets (CIFAR's python format) as data, never as code.

``pickle.load`` runs whatever callables a file names, so a crafted "dataset" could
execute code on load. :func:`load_data_pickle` uses a restricted
:class:`pickle.Unpickler` whose ``find_class`` resolves only the few globals that
real numpy-array pickles need, each wrapped so it can only build plain data:

============================================================  =========================================================
global in the file                                            what it may do here
============================================================  =========================================================
``numpy.core.multiarray._reconstruct`` (and ``numpy._core``)  make an empty ``numpy.ndarray`` (shape (0,); no subclass)
``numpy.ndarray``                                             only a marker passed to ``_reconstruct``
``numpy.dtype``                                               plain dtypes; object dtypes are refused
``_codecs.encode``                                            ``str -> bytes`` in latin-1 (Python 3,
                                                              protocol <= 2 pickles of ``bytes``)
``builtins.bytes`` / ``__builtin__.bytes``                    ``bytes()`` with no argument (empty bytes)
============================================================  =========================================================

Everything else (``os.system``, ``builtins.eval``, any class) raises
:class:`~nnforensics.errors.UnsafeFileError` before anything is called; a file
that is not a valid pickle raises :class:`~nnforensics.errors.CorruptFileError`.
"""

from __future__ import annotations

import io
import pickle
import re
from typing import IO, Any

import numpy as np

from ..errors import CorruptFileError, NNFError, UnsafeFileError

_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's own _reconstruct, whatever its module is
_DTYPE_SPEC = re.compile(r"^[<>|=]?[?bBhHiIlLqQpPefdgFDGSUVaMmuc][0-9]*(\[[a-zA-Z0-9]+\])?$")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` inside a restricted pickle (it cannot be called)."""

    __slots__ = ()  # no __dict__: a BUILD opcode cannot attach state to it

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise UnsafeFileError(f"pickle asks _reconstruct for {subtype!r}; only plain numpy arrays are allowed")
    # numpy pickles always start from an empty array and fill it from data held in the
    # file (BUILD); any other shape would allocate memory the file does not hold.
    if not isinstance(shape, tuple) or shape != (0,):
        raise CorruptFileError(f"pickle asks _reconstruct for shape {shape!r}; numpy pickles use (0,)")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    text = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
    if not isinstance(text, str) or not _DTYPE_SPEC.match(text):
        raise UnsafeFileError(f"pickle asks for numpy dtype {spec!r}; only plain numeric and string dtypes are allowed")
    # copy=True as numpy itself pickles it: the BUILD that follows must not edit a shared dtype
    return np.dtype(text, bool(align), bool(copy))


def _latin1_encode(text: Any, encoding: Any = "latin1", errors: Any = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafeFileError("pickle calls _codecs.encode with unexpected arguments")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise UnsafeFileError("pickle calls bytes() with arguments")
    return b""


class _Guarded:
    """A callable handed to the unpickler; immutable, so a BUILD opcode cannot alter it."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Any):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, key: str, value: Any) -> None:
        raise UnsafeFileError("pickle tries to modify a loader function")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _Guarded(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Guarded(_reconstruct),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Guarded(_dtype),
    ("_codecs", "encode"): _Guarded(_latin1_encode),
    ("builtins", "bytes"): _Guarded(_empty_bytes),
    ("__builtin__", "bytes"): _Guarded(_empty_bytes),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`_ALLOWED`."""

    def __init__(self, file: IO[bytes], *, what: str, encoding: str = "bytes"):
        super().__init__(file, encoding=encoding)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"{self.what} asks to load {module}.{name}: this pickle would run code, not just hold data; "
                f"refusing to open it (data pickles may only contain numpy arrays, lists, dicts, numbers "
                f"and strings). If you trust and need it, convert it to .npz in a separate process.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"{self.what} uses persistent ids; refusing to open it")


def load_data_pickle(source: bytes | IO[bytes], what: str, encoding: str = "bytes") -> Any:
    """Unpickle ``source`` (bytes or a binary file) with :class:`RestrictedUnpickler`.

    Args:
        source: the pickle's bytes or an open binary file.
        what: the file's name, for messages.
        encoding: how Python 2 ``str`` objects are decoded (``"bytes"`` keeps them as
            bytes, as CIFAR readers expect: keys like ``b"data"``).

    Raises:
        UnsafeFileError: the pickle names a global outside the allowlist.
        CorruptFileError: not a pickle, truncated, or malformed.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        return RestrictedUnpickler(stream, what=what, encoding=encoding).load()
    except NNFError:
        raise
    except MemoryError:
        raise CorruptFileError(f"{what}: pickle asks for more memory than is available (corrupt?)") from None
    except Exception as err:  # noqa: BLE001 - any parse failure of an untrusted file is "corrupt"
        raise CorruptFileError(f"{what} is not a readable pickle (truncated or corrupt): "
                               f"{type(err).__name__}: {err}") from None
