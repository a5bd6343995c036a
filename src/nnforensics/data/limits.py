"""How much memory one data file may ask for, checked before anything is decoded.

Compressed and structured formats declare their sizes up front (an idx header, a
zip directory and ``.npy`` headers, HDF5 dataspaces, image headers, tar headers): a
few megabytes of gzip can declare, and really hold, gigabytes of zeros. Every reader
checks what a file declares against the data actually present *and* against one
bound, **before** decoding:

``NNF_MAX_DATA_BYTES`` (environment variable)
    The most bytes one data file (or one image tree) may decode to. Default
    **2 GiB** (:data:`DEFAULT_MAX_DATA_BYTES`), more than the largest built-in
    file (SVHN's ``extra_32x32.mat``, 1.6 GB decoded). Accepts a number of bytes or
    a size with a suffix: ``NNF_MAX_DATA_BYTES=8G`` (``K``, ``M``, ``G``, ``T``;
    powers of 1024, an optional ``B``/``iB``).

A file over the bound is a :class:`~nnforensics.errors.DataError` naming the file,
the declared size and the variable; a file whose declared size cannot match its
contents is a :class:`~nnforensics.errors.CorruptFileError`; a genuine
``MemoryError`` while reading becomes a ``DataError`` naming the file
(:func:`reading`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np

from ..errors import ConfigError, CorruptFileError, DataError

ENV_VAR = "NNF_MAX_DATA_BYTES"
DEFAULT_MAX_DATA_BYTES = 2 * 1024**3
#: deflate (gzip, zip, zlib) cannot expand more than 1032:1; a little slack for tiny streams
MAX_DEFLATE_RATIO = 1032
_DEFLATE_SLACK = 4096
_CHUNK = 16 * 1024**2  # incremental reads: never one huge read() of a decompressing stream
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def max_data_bytes() -> int:
    """The bound in bytes: ``NNF_MAX_DATA_BYTES`` if set, else :data:`DEFAULT_MAX_DATA_BYTES`.

    Raises:
        ConfigError: the variable is set to something that is not a positive size.
    """
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_DATA_BYTES
    match = _SIZE.match(raw)
    value = int(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0
    if value <= 0:
        raise ConfigError(f"{ENV_VAR}={raw!r} is not a positive size; use bytes or e.g. 512M, 8G")
    return value


def format_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'`` (exact byte count below 1 KiB)."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def check_size(nbytes: int, where: str, what: str) -> None:
    """Refuse ``nbytes`` (what ``what`` in file ``where`` declares) above the bound."""
    bound = max_data_bytes()
    if nbytes > bound:
        raise DataError(f"{where}: {what} would decode to {format_bytes(nbytes)}, more than the "
                        f"{format_bytes(bound)} allowed for one data file (set {ENV_VAR}, e.g. "
                        f"{ENV_VAR}=16G, to allow more)")


def check_deflate_ratio(declared: int, compressed: int, where: str, what: str) -> None:
    """Refuse a declared size that ``compressed`` bytes of deflate data cannot hold."""
    if declared > compressed * MAX_DEFLATE_RATIO + _DEFLATE_SLACK:
        raise CorruptFileError(f"{where} is truncated or corrupt: {what} declares {format_bytes(declared)}, "
                               f"more than {format_bytes(compressed)} of compressed data can hold")


def read_exact(stream: BinaryIO, nbytes: int, where: str) -> np.ndarray:
    """Exactly ``nbytes`` from ``stream`` as a (nbytes,) uint8 array, read in chunks.

    Memory grows only with the data the stream really holds: a stream shorter than
    declared is refused once it ends, never after a whole-file ``read()``.

    Raises:
        CorruptFileError: the stream ends early.
    """
    buf = np.empty(nbytes, dtype=np.uint8)
    view, done = memoryview(buf), 0
    while done < nbytes:
        got = stream.readinto(view[done:done + _CHUNK])
        if not got:
            raise CorruptFileError(f"{where} is truncated or corrupt: {done} data bytes, the header "
                                   f"promises {nbytes}")
        done += got
    return buf


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Turn a ``MemoryError`` while reading file ``where`` into a :class:`DataError` naming it."""
    try:
        yield
    except MemoryError:
        raise DataError(f"{where}: not enough memory to read this data file (the machine has too little "
                        f"free memory for it; free some, or use a smaller file)") from None
