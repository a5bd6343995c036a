"""How much memory one file may ask for, checked before anything is decoded.

Compressed and structured formats declare their sizes up front (an idx header, a
zip directory and ``.npy`` headers, HDF5 dataspaces, image headers, tar headers): a
few megabytes of gzip can declare, and really hold, gigabytes of zeros. Every reader
checks what a file declares against the data actually present *and* against one
bound, **before** decoding:

``NNF_MAX_DATA_BYTES`` (environment variable)
    The most bytes one data file (or one image tree) may decode to. Default
    **2 GiB** (:data:`DEFAULT_MAX_DATA_BYTES`), more than the largest built-in
    file (SVHN's ``extra_32x32.mat``, 1.6 GB decoded). Accepts a number of bytes or
    a size with a suffix, decimals allowed: ``NNF_MAX_DATA_BYTES=8G``, ``1.5G``
    (``K``, ``M``, ``G``, ``T``; powers of 1024, an optional ``B``/``iB``).

A file over the bound is a :class:`~nnforensics.errors.DataError` naming the file,
the declared size and the variable; a file whose declared size cannot match its
contents is a :class:`~nnforensics.errors.CorruptFileError`; a genuine
``MemoryError`` while reading becomes a ``DataError`` naming the file
(:func:`reading`).

Model inputs are bounded here too: one input (``--input-shape``, a file's recorded
``input_shape``, or all ``--example-inputs`` tensors together) holds at most
:data:`MAX_INPUT_VALUES` values, and nnforensics draws random example inputs from a
shape *recorded in a file* only up to :data:`MAX_RECORDED_INPUT_VALUES` (larger ones
must be confirmed with ``--input-shape``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import BinaryIO

import numpy as np

from ..errors import ConfigError, CorruptFileError, DataError

ENV_VAR = "NNF_MAX_DATA_BYTES"
DEFAULT_MAX_DATA_BYTES = 2 * 1024**3
#: deflate (gzip, zip, zlib) cannot expand more than 1032:1; a little slack for tiny streams
MAX_DEFLATE_RATIO = 1032
DEFLATE_SLACK = 4096
#: Values of one model input (16M: e.g. 1x4096x4096); --input-shape and files alike.
MAX_INPUT_VALUES = 2**24
#: Values of one random example input drawn from a file's recorded shape (4M: 3x1182x1182;
#: a 3x224x224 ImageNet image is 150k). Larger shapes must be given with --input-shape.
MAX_RECORDED_INPUT_VALUES = 2**22
#: Axes of one model input, batch axis excluded: (C, H, W) at most, plus one.
MAX_INPUT_DIMS = 4
_CHUNK = 16 * 1024**2  # incremental reads: never one huge read() of a decompressing stream
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``"8G"`` -> 8 GiB, ``"1.5G"`` -> 1.5 GiB (rounded down to a byte); 0 when ``text`` is not a size."""
    match = _SIZE.match(text)
    if not match:
        return 0
    return int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])


def max_data_bytes() -> int:
    """The bound in bytes: ``NNF_MAX_DATA_BYTES`` if set, else :data:`DEFAULT_MAX_DATA_BYTES`.

    Raises:
        ConfigError: the variable is set to something that is not a positive size.
    """
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_DATA_BYTES
    value = parse_size(raw)
    if value <= 0:
        raise ConfigError(f"{ENV_VAR}={raw!r} is not a positive size; use bytes or e.g. 512M, 1.5G, 8G")
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
    if declared > compressed * MAX_DEFLATE_RATIO + DEFLATE_SLACK:
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
