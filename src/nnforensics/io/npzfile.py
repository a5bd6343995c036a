"""Reading an untrusted numpy ``.npz`` archive: sizes checked before anything is decompressed.

``numpy.load`` decompresses each member whole; a few megabytes of zip can hold
gigabytes of zeros. :func:`read_npz_arrays` reads the zip directory and each
``.npy`` header first and refuses, before reading any data:

* a total declared size over :func:`~.limits.max_data_bytes` (``NNF_MAX_DATA_BYTES``);
* a member whose declared uncompressed size its compressed bytes cannot hold
  (deflate expands at most 1032:1), or a stored member whose sizes differ;
* a ``.npy`` header whose shape x item size does not match the member's size;
* object arrays (they need pickle: :class:`~nnforensics.errors.UnsafeFileError`);
* whatever the caller's ``check`` refuses, given every member's header.

Then each member is read incrementally into its own buffer (no second copy).
Members not named ``*.npy`` are ignored, as ``numpy.savez`` never writes them.
Used by the ``npz`` dataset reader and by ``--example-inputs``.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CorruptFileError, DataError, UnsafeFileError
from .limits import check_deflate_ratio, check_size, read_exact, reading

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class NpyHeader:
    """What one member's ``.npy`` header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes before the data (magic + header)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


#: ``check(headers)`` runs after every header is read and before any data is: it raises to refuse.
HeaderCheck = Callable[[dict[str, NpyHeader]], None]


def read_npz_arrays(path: str | Path, where: str | None = None, check: HeaderCheck | None = None
                    ) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the archive at ``path``, by name without ``.npy``, in archive order.

    Args:
        path: the ``.npz`` file.
        where: how messages name the file (default: its path, quoted).
        check: the caller's own checks of the headers (shapes, dtypes, counts).

    Raises:
        CorruptFileError: not a zip, truncated, sizes that contradict each other.
        UnsafeFileError: object arrays.
        DataError: over ``NNF_MAX_DATA_BYTES``, a single ``.npy`` file, or what ``check`` raises.
    """
    where = where or repr(str(path))
    with open(path, "rb") as handle:
        magic = handle.read(6)
        if magic.startswith(b"\x93NUMPY"):
            raise DataError(f"{where} is a single .npy array; expected an .npz archive (numpy.savez)")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise CorruptFileError(f"{where} is not an .npz archive (no zip signature)")
        handle.seek(0)
        try:
            with reading(where), zipfile.ZipFile(handle) as archive:
                members = _checked_members(archive, where)
                headers = {key: _member_header(archive, info, where) for key, info in members.items()}
                if check is not None:
                    check(headers)
                return {key: _read_member(archive, members[key], headers[key], where) for key in members}
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, KeyError, ValueError, NotImplementedError,
                RuntimeError) as err:  # RuntimeError: encrypted member; NotImplementedError: unknown method
            raise CorruptFileError(f"{where} is not a readable .npz archive (truncated or corrupt): "
                                   f"{type(err).__name__}: {str(err)[:160]}") from None


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


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> NpyHeader:
    """One member's ``.npy`` header (only its first bytes are decompressed), checked against its size."""
    what = f"{where} (member {info.filename!r})"
    with archive.open(info) as stream:
        header = _read_npy_header(stream, what)
    if header.offset + header.nbytes != info.file_size:
        raise CorruptFileError(f"{what} is corrupt: its header declares shape {header.shape} {header.dtype} "
                               f"({header.nbytes} bytes) but the member holds {info.file_size - header.offset}")
    return header


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: NpyHeader, where: str) -> np.ndarray:
    """One member's data, read incrementally after its header."""
    if header.nbytes == 0:
        return np.empty(header.shape, dtype=header.dtype)
    with archive.open(info) as stream:
        stream.seek(header.offset)  # forward seek: decompresses (and discards) the header again
        data = read_exact(stream, header.nbytes, f"{where} (member {info.filename!r})")
    return data.view(header.dtype).reshape(header.shape, order="F" if header.fortran else "C")


def _read_npy_header(stream: BinaryIO, what: str) -> NpyHeader:
    version = np.lib.format.read_magic(stream)
    if version not in _HEADER_READERS:
        raise CorruptFileError(f"{what}: unsupported .npy format version {version}")
    shape, fortran, dtype = _HEADER_READERS[version](stream)
    if dtype.hasobject:
        raise UnsafeFileError(f"{what} holds Python objects (object arrays), which only pickle can read; "
                              f"refusing. Store numeric arrays (and strings as fixed-width unicode).")
    return NpyHeader(tuple(int(s) for s in shape), dtype, bool(fortran), stream.tell())
