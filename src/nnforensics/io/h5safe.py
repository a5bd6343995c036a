"""Opening untrusted HDF5 files without letting them read other files or exhaust memory.

An HDF5 file can make a read reach outside itself: an **external link** is an
object that lives in another file (any path the attacker names), a dataset with
**external storage** keeps its bytes in raw files named in its header
(``/etc/passwd`` is returned as pixels), and a **virtual dataset** maps regions of
other files. Its header can also declare a dataset far larger than the file (read
back as fill values, or decompressed from a small filtered one).

Use these helpers for every object read from a user's ``.h5``:

.. code-block:: python

    with open_h5(path) as f:                      # read-only, unreadable -> CorruptFileError
        ds = get_dataset(f, "data", where)        # links checked before they are followed
        x = read_dataset(ds, where, max_bytes)    # external/virtual refused, size checked, then read
        n = read_attr(f, "num_classes", where, max_bytes)   # attributes: size checked too

Refusals name the file, the object and why: :class:`~nnforensics.errors.UnsafeFileError`
(external links, external storage, virtual datasets, unknown link kinds, filters of unbounded ratio),
:class:`~nnforensics.errors.DataError` (a group where a dataset is expected,
missing objects, sizes over ``max_bytes``, variable-length or reference types),
:class:`~nnforensics.errors.CorruptFileError` (unreadable files, declared sizes
that the stored data cannot hold, chunks never written). Filters are accepted only when
their worst-case decompression ratio is known (:data:`FILTER_RATIOS`; others are an
``UnsafeFileError``). The bound is the caller's: data readers pass
:func:`nnforensics.io.limits.max_data_bytes`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..errors import CorruptFileError, DataError, UnsafeFileError
from .limits import DEFLATE_SLACK, MAX_DEFLATE_RATIO

#: soft links resolved inside one path before giving up (a cycle of soft links)
MAX_SOFT_LINKS = 16
#: HDF5 filters accepted, with how many bytes one stored byte can decode to at most. Any other
#: filter is refused: scaleoffset and n-bit can pack whole chunks into a few bits per value.
FILTER_RATIOS = {
    h5py.h5z.FILTER_DEFLATE: MAX_DEFLATE_RATIO,
    h5py.h5z.FILTER_LZF: 100,  # LZF: a 3-byte back-reference copies at most 264 bytes (88:1)
    h5py.h5z.FILTER_SHUFFLE: 1,  # reorders bytes
    h5py.h5z.FILTER_FLETCHER32: 1,  # appends a checksum
}


@contextmanager
def open_h5(path: str | Path) -> Iterator[h5py.File]:
    """``path`` opened read-only; a file HDF5 cannot open is a :class:`CorruptFileError`."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(f"{str(path)!r} is not a readable HDF5 file (truncated or corrupt): {err}") from None
    with handle:
        yield handle


def get_object(group: h5py.Group, path: str, where: str) -> h5py.Group | h5py.Dataset:
    """The object at ``path`` below ``group``, each link checked before it is followed.

    Hard links are followed; soft links are resolved inside the same file (at most
    :data:`MAX_SOFT_LINKS`); external and user-defined links are refused.

    Raises:
        DataError: nothing at ``path``.
        UnsafeFileError: the path passes through an external or unknown link.
    """
    return _walk(group.file if path.startswith("/") else group, path, where, path, 0)


def _walk(group: h5py.Group, path: str, where: str, asked: str, soft: int) -> h5py.Group | h5py.Dataset:
    obj: h5py.Group | h5py.Dataset = group
    for name in [p for p in path.split("/") if p and p != "."]:
        if not isinstance(obj, h5py.Group):
            raise DataError(f"{where}: {asked!r} is not an object of the file ({obj.name!r} is a dataset)")
        link = obj.get(name, getlink=True)
        if link is None:
            raise DataError(f"{where}: no object {asked!r} (found {sorted(obj.keys())[:20]} in {obj.name!r})")
        if isinstance(link, h5py.HardLink):
            obj = obj[name]
        elif isinstance(link, h5py.SoftLink):
            if soft >= MAX_SOFT_LINKS:
                raise CorruptFileError(f"{where}: {asked!r} goes through more than {MAX_SOFT_LINKS} soft links "
                                       f"(a cycle?)")
            obj = _walk(obj.file if link.path.startswith("/") else obj, link.path, where, asked, soft + 1)
        elif isinstance(link, h5py.ExternalLink):
            raise UnsafeFileError(f"{where}: {asked!r} is an external link to {link.path!r} in file "
                                  f"{link.filename!r}; links to other files are refused (copy the data "
                                  f"into the file itself)")
        else:
            raise UnsafeFileError(f"{where}: {asked!r} is a {type(link).__name__}; only links inside the "
                                  f"file are followed")
    return obj


def get_dataset(group: h5py.Group, path: str, where: str) -> h5py.Dataset:
    """The dataset at ``path`` (see :func:`get_object`), checked with :func:`check_dataset`."""
    obj = get_object(group, path, where)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{where}: {path!r} must be a dataset, not a group")
    check_dataset(obj, where)
    return obj


def iter_datasets(group: h5py.Group, where: str) -> Iterator[tuple[str, h5py.Dataset]]:
    """``(path, dataset)`` for every dataset below ``group``, links checked, each object once.

    Soft links are skipped (their targets are reached through hard links); an
    external link anywhere is refused.
    """
    seen: set[tuple[int, int]] = set()
    queue = deque([group])  # breadth first, names sorted: a deterministic order
    while queue:
        current = queue.popleft()
        for name in sorted(current.keys()):
            link = current.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                continue
            obj = get_object(current, name, where)
            info = h5py.h5o.get_info(obj.id)
            key = (info.fileno, info.addr)
            if key in seen:  # hard links can make cycles and aliases
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                queue.append(obj)
            else:
                check_dataset(obj, where)
                yield obj.name, obj


def check_dataset(ds: h5py.Dataset, where: str) -> None:
    """Refuse a dataset whose bytes would come from outside the file.

    Raises:
        UnsafeFileError: external storage (raw files named in the header) or a virtual dataset.
    """
    if ds.is_virtual:
        sources = sorted({vs.file_name for vs in ds.virtual_sources()})
        raise UnsafeFileError(f"{where}: dataset {ds.name!r} is a virtual dataset mapped from "
                              f"{', '.join(repr(s) for s in sources[:3])}; data read from other files "
                              f"are refused")
    external = ds.external
    if external:
        raise UnsafeFileError(f"{where}: dataset {ds.name!r} keeps its bytes outside the file, in "
                              f"{external[0][0]!r}; external storage is refused (it can read any local file)")


def declared_nbytes(ds: h5py.Dataset) -> int:
    """Bytes the dataset decodes to: product of its shape times the item size (0 for null dataspaces)."""
    if ds.shape is None:
        return 0
    return math.prod(ds.shape) * ds.dtype.itemsize


def expansion_ratio(ds: h5py.Dataset, where: str) -> int:
    """How many bytes one stored byte of ``ds`` can decode to at most, through its filter pipeline.

    Raises:
        UnsafeFileError: a filter outside :data:`FILTER_RATIOS` (its worst case is unknown,
            or unbounded like scaleoffset's).
    """
    plist = ds.id.get_create_plist()
    ratio = 1
    for index in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(index)
        if code not in FILTER_RATIOS:
            label = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            raise UnsafeFileError(f"{where}: dataset {ds.name!r} is stored through HDF5 filter {label!r} "
                                  f"(id {code}), whose decompression ratio nnforensics cannot bound; store "
                                  f"the data uncompressed, or with gzip or lzf")
        ratio *= FILTER_RATIOS[code]
    return ratio


def _check_chunks(ds: h5py.Dataset, where: str) -> None:
    """Every chunk the shape needs must be stored: HDF5 hands back fill values for the missing ones."""
    needed = math.prod(-(-size // chunk) for size, chunk in zip(ds.shape, ds.chunks))
    stored = ds.id.get_num_chunks()
    if stored < needed:
        raise CorruptFileError(f"{where}: dataset {ds.name!r} declares shape {ds.shape} in {needed:,} chunks of "
                               f"{ds.chunks}, but the file stores only {stored:,} of them (truncated, or never "
                               f"written: the rest would be read as fill values)")


def check_storage(ds: h5py.Dataset, where: str) -> None:
    """Refuse a declared size that the bytes stored in the file cannot hold.

    A chunked dataset must store every chunk its shape needs, whatever its filters;
    filters must be in :data:`FILTER_RATIOS`, and the stored bytes times their
    worst-case ratio must cover the declared size (an unfiltered dataset must store
    at least its declared size: otherwise it was never written, or the header lies).

    Raises:
        CorruptFileError: missing chunks, or fewer stored bytes than the declared size needs.
        UnsafeFileError: a filter whose decompression ratio is not bounded.
    """
    declared = declared_nbytes(ds)
    if declared == 0:
        return
    ratio = expansion_ratio(ds, where)
    if ds.chunks is not None:
        _check_chunks(ds, where)
    stored = ds.id.get_storage_size()
    if ratio == 1 and stored < declared:
        raise CorruptFileError(f"{where}: dataset {ds.name!r} declares shape {ds.shape} ({declared} bytes) "
                               f"but the file stores only {stored} bytes of it (truncated, or never written)")
    if declared > stored * ratio + DEFLATE_SLACK:
        raise CorruptFileError(f"{where}: dataset {ds.name!r} declares shape {ds.shape} ({declared} bytes), "
                               f"more than its {stored} compressed bytes can hold")


def read_dataset(ds: h5py.Dataset, where: str, max_bytes: int) -> np.ndarray:
    """The whole dataset as a numpy array, after every check.

    Args:
        ds: a dataset from :func:`get_dataset` or :func:`iter_datasets`.
        where: the file, as named in messages.
        max_bytes: the most bytes the dataset may decode to.

    Raises:
        UnsafeFileError: external storage or virtual dataset.
        DataError: declared size over ``max_bytes``; variable-length or reference
            types; not enough memory.
        CorruptFileError: the stored data cannot hold the declared size, or HDF5
            cannot read them (truncated, unknown filter).
    """
    check_dataset(ds, where)
    if ds.dtype.hasobject:
        raise DataError(f"{where}: dataset {ds.name!r} has type {ds.dtype} (variable-length or reference); "
                        f"only fixed-size numbers and strings are read")
    if ds.shape is None:
        raise DataError(f"{where}: dataset {ds.name!r} is empty (a null dataspace holds no array)")
    declared = declared_nbytes(ds)
    if declared > max_bytes:
        raise DataError(f"{where}: dataset {ds.name!r} declares shape {ds.shape} {ds.dtype}, "
                        f"{declared:,} bytes, more than the {max_bytes:,} allowed")
    check_storage(ds, where)
    try:
        return np.asarray(ds[()])
    except OSError as err:
        raise CorruptFileError(f"{where}: dataset {ds.name!r} cannot be read (truncated or corrupt): "
                               f"{err}") from None
    except MemoryError:
        raise DataError(f"{where}: not enough memory to read dataset {ds.name!r} ({declared} bytes)") from None


def read_attr(obj: h5py.HLObject, name: str, where: str, max_bytes: int) -> object | None:
    """Attribute ``name`` of ``obj`` (None when absent), after checking its declared size.

    Attributes live inside the file (no external storage), but their dataspace is
    declared like a dataset's: it is checked against ``max_bytes`` before reading.
    """
    if name not in obj.attrs:
        return None
    attr = obj.attrs.get_id(name)
    declared = 0 if attr.shape is None else math.prod(attr.shape) * attr.dtype.itemsize
    if declared > max_bytes:
        raise DataError(f"{where}: attribute {name!r} of {obj.name!r} declares shape {attr.shape} {attr.dtype}, "
                        f"{declared:,} bytes, more than the {max_bytes:,} allowed")
    try:
        return obj.attrs[name]
    except OSError as err:
        raise CorruptFileError(f"{where}: attribute {name!r} of {obj.name!r} cannot be read: {err}") from None
