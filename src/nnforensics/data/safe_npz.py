"""Reading an untrusted numpy ``.npz`` archive: sizes checked before anything is decompressed.

``numpy.load`` decompresses each member whole; a few megabytes of zip can hold
gigabytes of zeros. :func:`read_npz_arrays` reads the zip directory and each
``.npy`` header first and refuses, before reading any data:

* a total declared size over :func:`~.limits.max_data_bytes` (``NNF_MAX_DATA_BYTES``);
* a member whose declared uncompressed size its compressed bytes cannot hold
  (deflate expands at most 1032:1), or a stored member whose sizes differ;
* a ``.npy`` header whose shape x item size does not match the member's size;
* object arrays (they need pickle: :class:`~nnforensics.errors.UnsafeFileError`).

Then each member is read incrementally into its own buffer (no second copy).
Members not named ``*.npy`` are ignored, as ``numpy.savez`` never writes them.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CorruptFileError, DataError, UnsafeFileError
from .limits import check_deflate_ratio, check_size, read_exact, reading

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the archive at ``path``, by name without ``.npy``."""
    where = repr(str(path))
    with open(path, "rb") as handle:
        magic = handle.read(6)
        if magic.startswith(b"\x93NUMPY"):
            raise DataError(f"{where} is a single .npy array; expected an .npz archive with keys x and y")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise CorruptFileError(f"{where} is not an .npz archive (no zip signature)")
        handle.seek(0)
        try:
            with reading(where), zipfile.ZipFile(handle) as archive:
                members = _checked_members(archive, where)
                return {key: _read_member(archive, info, where) for key, info in members.items()}
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, KeyError, ValueError, NotImplementedError,
                RuntimeError) as err:  # RuntimeError: encrypted member; NotImplementedError: unknown method
            raise CorruptFileError(f"{where} is not a readable .npz archive (truncated or corrupt): "
                                   f"{type(err).__name__}: {err}") from None


def _checked_members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """The ``.npy`` members by key, after the directory's sizes are checked."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename[: -len(".npy")]
        if key in members:
            raise CorruptFileError(f"{where} holds member {info.filename!r} twice")
        what = f"member {info.filename!r}"
        if info.compress_type == zipfile.ZIP_DEFLATED:
            check_deflate_ratio(info.file_size, info.compress_size, where, what)
        elif info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise CorruptFileError(f"{where} is corrupt: stored {what} declares {info.file_size} bytes "
                                   f"but holds {info.compress_size}")
        members[key] = info
    check_size(sum(info.file_size for info in members.values()), where,
               f"the archive's {len(members)} arrays")
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One ``.npy`` member: header checked against the member's size, then the data."""
    what = f"{where} (member {info.filename!r})"
    with archive.open(info) as stream:
        shape, fortran, dtype = _read_npy_header(stream, what)
        nbytes = math.prod(shape) * dtype.itemsize
        header = stream.tell()
        if header + nbytes != info.file_size:
            raise CorruptFileError(f"{what} is corrupt: its header declares shape {shape} {dtype} "
                                   f"({nbytes} bytes) but the member holds {info.file_size - header}")
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        data = read_exact(stream, nbytes, what)
    return data.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_npy_header(stream: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version not in _HEADER_READERS:
        raise CorruptFileError(f"{what}: unsupported .npy format version {version}")
    shape, fortran, dtype = _HEADER_READERS[version](stream)
    if dtype.hasobject:
        raise UnsafeFileError(f"{what} holds object arrays, which only pickle can read; refusing. "
                              f"Store numeric arrays (and strings as fixed-width unicode).")
    return tuple(shape), bool(fortran), dtype
