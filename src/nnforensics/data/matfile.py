"""How many bytes a MATLAB v4/v5 file decodes to, measured before ``scipy.io.loadmat`` reads it.

``loadmat`` allocates each data element at the size its tag declares and
decompresses compressed variables (MAT v7's ``miCOMPRESSED``, zlib) whole, so a
few megabytes of ``.mat`` can expand to gigabytes. :func:`check_mat_size` walks the
top-level elements of a v5 file (128-byte header, then 8-byte tags: type and byte
count): uncompressed elements count their byte count (which must fit in the file),
compressed ones are decompressed in a streaming pass that keeps nothing and stops
as soon as the total passes ``NNF_MAX_DATA_BYTES`` (:mod:`nnforensics.io.limits`). A v4 file
(never compressed) counts its size on disk.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import CorruptFileError
from ..io.limits import check_size, max_data_bytes

_MI_COMPRESSED = 15
_HEADER = 128
_CHUNK = 1024**2


def check_mat_size(path: Path, version: int) -> None:
    """Refuse a MATLAB file (``version`` 0 = v4, 1 = v5/v7) that decodes to more than the bound.

    Raises:
        DataError: over ``NNF_MAX_DATA_BYTES``.
        CorruptFileError: a tag promises more bytes than the file holds, or a
            compressed element is not valid zlib.
    """
    where = repr(str(path))
    size = path.stat().st_size
    if version == 0:
        check_size(size, where, "the MATLAB v4 file")
        return
    with open(path, "rb") as handle:
        handle.seek(126)
        order = "<" if handle.read(2) == b"IM" else ">"
        handle.seek(_HEADER)
        total = _HEADER
        while handle.tell() + 8 <= size:
            mdtype, nbytes = struct.unpack(order + "II", handle.read(8))
            if mdtype >> 16:  # "small data element": the value sits in the tag itself
                continue
            start = handle.tell()
            if start + nbytes > size:
                raise CorruptFileError(f"{where} is not a readable MATLAB file (truncated or corrupt): an "
                                       f"element declares {nbytes} bytes, the file holds {size - start} more")
            total += _inflated_size(handle, nbytes, where, max_data_bytes() - total) if mdtype == _MI_COMPRESSED \
                else nbytes
            check_size(total, where, "the MATLAB file's variables")
            handle.seek(start + nbytes)


def _inflated_size(handle: BinaryIO, nbytes: int, where: str, budget: int) -> int:
    """Bytes that ``nbytes`` of zlib data at the handle's position inflate to (stops past ``budget``)."""
    inflater = zlib.decompressobj()
    total, left = 0, nbytes
    try:
        while left > 0 and total <= budget:
            data = handle.read(min(_CHUNK, left))
            if not data:
                break
            left -= len(data)
            while data and total <= budget:
                total += len(inflater.decompress(data, _CHUNK))
                data = inflater.unconsumed_tail
    except zlib.error as err:
        raise CorruptFileError(f"{where} is not a readable MATLAB file (corrupt compressed variable): "
                               f"{err}") from None
    return total
