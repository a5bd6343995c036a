"""A small in-process cache of parsed data files.

``load_dataset`` reads one split at a time, and training reads ``train``, ``val``
and ``test`` in a row; without a cache an archive would be decompressed and an
image tree decoded once per split. Entries are keyed by the files' identity
(path, size, modification and change times, inode), so an edited file is read
again. Cached arrays are made read-only; :func:`~.validate.make_dataset` copies them,
so callers can never modify the cache through a dataset.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

MAX_ENTRIES = 4
MAX_BYTES = 2 * 1024**3  # larger parses are not kept (e.g. SVHN's extra set)

_ENTRIES: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()


def file_signature(paths: Iterable[Path | str]) -> tuple:
    """Identity of a set of files: (path, size, mtime_ns, ctime_ns, inode) each."""
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(out)


def cached(key: tuple, build: Callable[[], T]) -> T:
    """``build()``, remembered under ``key`` (least recently used entries dropped)."""
    if key in _ENTRIES:
        _ENTRIES.move_to_end(key)
        return _ENTRIES[key][0]
    value = build()
    size = _walk(value, freeze=False)
    if size <= MAX_BYTES:  # too large: not kept, and left writeable so that nothing is copied
        _walk(value, freeze=True)
        _ENTRIES[key] = (value, size)
        while len(_ENTRIES) > MAX_ENTRIES or sum(s for _, s in _ENTRIES.values()) > MAX_BYTES:
            _ENTRIES.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every parsed file."""
    _ENTRIES.clear()


def _walk(value: Any, freeze: bool) -> int:
    """Total size in bytes of the arrays inside ``value`` (made read-only if ``freeze``)."""
    if isinstance(value, np.ndarray):
        if freeze:
            value.setflags(write=False)
        return value.nbytes
    if isinstance(value, dict):
        return sum(_walk(v, freeze) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_walk(v, freeze) for v in value)
    return 0
