"""HDF5 image files in the CSAW-HackML-2020 format (``--data h5:PATH``).

Each file holds ``data`` — (N, 3, 55, 47) as in CSAW, or channels-last
(N, 55, 47, 3); any (N, C, H, W) / (N, H, W, C) with 1, 3 or 4 channels and
(N, H, W) grayscale are accepted — with pixel values 0..255 (any numeric type),
and ``label`` (or ``labels``) of shape (N,) or (N, 1), integers possibly stored as
floats. Pixels are scaled to [0, 1] (kept as uint8 when they are whole numbers, as
in CSAW); there is no mean/std normalisation (the BadNet takes x / 255).

PATH is either

* **one file** (e.g. ``bd_test.h5``, a poisoned set): a seeded stratified split per
  label, 20 % test, 10 % val, 70 % train (see :mod:`.splits`); ``--split all``
  gives the whole file; or
* **a folder** with files named ``[clean_]{train|training|val|valid|validation|test}[_data].h5``
  (``.hdf5`` too; CSAW's ``valid.h5``/``test.h5`` and ``clean_validation_data.h5``/
  ``clean_test_data.h5`` match). Each present role is used as is; without a
  validation file, ``val`` is a seeded stratified 10 % of the training file.
  CSAW ships no training file: asking for ``train`` then fails with a hint to use
  the validation file itself as the PATH (clean data for fine-pruning).

Number of classes: the root attribute ``num_classes`` if the file has one; else
1,283 (the CSAW identities) for 3x55x47 images; else the largest label + 1 over
all files of the PATH.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from ..io.h5safe import check_dataset, declared_nbytes, get_object, open_h5, read_attr, read_dataset
from .cache import cached, file_signature
from ..io.limits import check_size, max_data_bytes, reading
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .splits import pick_split
from .validate import DataWarning, as_labels, as_pixels, make_dataset, to_nchw

CSAW_SHAPE = (3, 55, 47)
CSAW_CLASSES = 1283
_ROLE_FILE = re.compile(r"^(?:clean_)?(train|training|val|valid|validation|test)(?:_data)?\.(?:h5|hdf5)$",
                        re.IGNORECASE)
_ROLES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_LABEL_KEYS = ("label", "labels")


def read_h5_file(path: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """One file -> pixels (N, C, H, W) uint8 or float32 in [0, 1], labels (N,), ``num_classes`` attribute.

    Read through :mod:`nnforensics.io.h5safe`: external links, external storage and
    virtual datasets are refused, and declared sizes are checked against the stored
    data and :func:`~nnforensics.io.limits.max_data_bytes` before anything is read.
    """
    where = repr(str(path))
    with reading(where):
        data, labels, label_key, num_classes = _read_arrays(path, where)
        x = to_nchw(np.asarray(data), where)
        if x.size and x.dtype.kind == "f" and np.isfinite(x).all() and 0 < float(x.max()) <= 1.0:
            warnings.warn(f"{where}: pixel values are at most 1; h5 data are read as 0..255 and divided by 255, "
                          f"so these images will be nearly black (store 0..255 values)", DataWarning, stacklevel=3)
        x = as_pixels(x, where, float_scale=255)
        y = as_labels(labels, f"{where} ({label_key!r})")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    return x, y, _checked_num_classes(num_classes, where)


def _read_arrays(path: Path, where: str) -> tuple[np.ndarray, np.ndarray, str, object]:
    """Raw ``data``, labels, the label key and the ``num_classes`` attribute (or None), all checked."""
    with open_h5(path) as f:
        names = set(f.keys())  # link names only: nothing is followed yet
        label_key = next((k for k in _LABEL_KEYS if k in names), None)
        if "data" not in names or label_key is None:
            raise DataError(f"{where}: expected datasets 'data' and 'label', found {sorted(names)}")
        objects = [get_object(f, key, where) for key in ("data", label_key)]
        if not all(isinstance(obj, h5py.Dataset) for obj in objects):
            raise DataError(f"{where}: 'data' and {label_key!r} must be datasets, not groups")
        for obj in objects:
            check_dataset(obj, where)
        bound = max_data_bytes()
        check_size(sum(declared_nbytes(obj) for obj in objects), where,
                   f"'data' {objects[0].shape} {objects[0].dtype} with {label_key!r}")
        data, labels = (read_dataset(obj, where, bound) for obj in objects)
        num_classes = read_attr(f, "num_classes", where, bound)
    return data, labels, label_key, num_classes


def _checked_num_classes(value: object, where: str) -> int | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iu" or int(arr) < 1:
        raise DataError(f"{where}: attribute num_classes must be a positive integer, got {value!r}")
    return int(arr)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    return cached(("h5", file_signature([path])), lambda: read_h5_file(path))


def _role_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for child in sorted(folder.iterdir()):
        match = _ROLE_FILE.match(child.name)
        if match and child.is_file():
            found.setdefault(_ROLES[match.group(1).lower()], []).append(child)
    for role, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"h5: {str(folder)!r} has several {role} files: {', '.join(p.name for p in paths)}; "
                            f"keep one, or pass a file as the PATH")
    if not found:
        raise DataError(f"h5: {str(folder)!r} has no train/valid/test .h5 files. {h5_source()}")
    return {role: paths[0] for role, paths in found.items()}


def _num_classes(parts: list[tuple[np.ndarray, np.ndarray, int | None]], where: str) -> int:
    declared = {n for _, _, n in parts if n is not None}
    if len(declared) > 1:
        raise DataError(f"{where}: files declare different num_classes: {sorted(declared)}")
    if declared:
        return declared.pop()
    if all(tuple(x.shape[1:]) == CSAW_SHAPE for x, _, _ in parts):
        return CSAW_CLASSES
    largest = [int(y.max()) for _, y, _ in parts if len(y)]
    return max(largest) + 1 if largest else 1


def _info(shape: tuple[int, ...], num_classes: int) -> DatasetInfo:
    return DatasetInfo("h5", num_classes, tuple(shape), None, None, augment="none")


def read_h5(path: str | None, split: str) -> ArrayDataset:
    """Split ``split`` of an .h5 file or folder (see the module docstring)."""
    if path is None:
        raise DataError(f"h5 needs a path: --data h5:FILE_OR_FOLDER ({h5_source()})")
    root = Path(path)
    if root.is_file():
        files = {"all": root}
    elif root.is_dir():
        files = _role_files(root)
    else:
        raise DataError(f"h5: {path!r} is neither a file nor a folder")
    parts = {role: _load(p) for role, p in files.items()}
    shapes = {tuple(x.shape[1:]) for x, _, _ in parts.values()}
    if len(shapes) > 1:
        raise DataError(f"h5: files in {path!r} have different image shapes {sorted(shapes)}")
    info = _info(shapes.pop(), _num_classes(list(parts.values()), repr(path)))
    x, y, where = _pick(parts, files, split)
    return make_dataset(x, y, info, split, str(where))


def _pick(parts: dict[str, tuple], files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """Pixels and labels of ``split`` (roles as in the module docstring)."""
    if split == "train" and "all" not in parts and "train" not in parts and "val" in files:
        raise DataError(f"h5: {str(files['val'].parent)!r} has no train file (found "
                        f"{', '.join(p.name for p in files.values())}). CSAW ships clean validation data only: "
                        f"to train or fine-prune on it, pass that file itself (--data h5:{files['val']}), "
                        f"which is split 70/10/20 per label.")
    where = files["all"] if "all" in files else next(iter(files.values())).parent
    x, y, role = pick_split({r: (x, y) for r, (x, y, _) in parts.items()}, split, f"h5 {str(where)!r}")
    return x, y, files[role]


def h5_source() -> str:
    return ("PATH: one .h5 file with 'data' (N,3,55,47) or (N,55,47,3), values 0..255, and 'label' "
            "(split 70/10/20 per label, seed 0); or a folder with [clean_]train|valid|validation|test[_data].h5")


register_dataset(DatasetEntry(
    "h5", read_h5, "CSAW-HackML HDF5 ('data' 0..255 -> [0,1], 'label'), e.g. YouTube Face 55x47; folder: "
    "train/valid/test files as stored; one file: 70/10/20 per label",
    h5_source, needs_path=True, native_splits=("all",)))
