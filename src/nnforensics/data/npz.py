"""Images and labels in a numpy ``.npz`` archive (``--data npz:FILE``).

Read by :mod:`nnforensics.io.npzfile` (never pickle): an archive holding object arrays is
refused with :class:`~nnforensics.errors.UnsafeFileError`, and declared sizes are
checked against the data present and ``NNF_MAX_DATA_BYTES`` (:mod:`nnforensics.io.limits`)
before anything is decompressed.

Keys, one of two layouts:

* ``x``, ``y``: one source, split per label with a seed: 20 % test, 10 % val,
  70 % train (see :mod:`.splits`); ``--split all`` gives everything.
* ``x_train``, ``y_train`` with ``x_test``, ``y_test`` and optionally ``x_val``,
  ``y_val`` (Keras' ``mnist.npz`` has this layout): used as given; without
  ``x_val`` the validation split is a seeded stratified 10 % of the training arrays.

``x``: (N, H, W), (N, C, H, W) or (N, H, W, C) with 1, 3 or 4 channels; uint8
(or other integers 0..255) or floats in [0, 1]. ``y``: (N,) integers.
Optional keys: ``num_classes`` (scalar; default: largest label + 1),
``class_names`` (strings), ``mean`` and ``std`` (one float per channel; default:
no normalisation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .cache import cached, file_signature
from ..io.limits import reading
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from ..io.npzfile import read_npz_arrays
from .splits import pick_split
from .validate import as_labels, as_pixels, make_dataset, to_nchw


def _load(path: Path) -> dict[str, object]:
    """Validated arrays: ``{"parts": {role: (x, y)}, "info": {...}}``."""
    where = repr(str(path))
    arrays = read_npz_arrays(path)
    if "x" in arrays and "x_train" in arrays:
        raise DataError(f"{where} has both x and x_train; keep one layout (x, y) or (x_train, y_train, ...)")
    roles = {"all": ""} if "x" in arrays else {r: "_" + r for r in ("train", "val", "test") if "x_" + r in arrays}
    if not roles:
        raise DataError(f"{where}: expected arrays x and y (or x_train, y_train, x_test, y_test), "
                        f"found {sorted(arrays)}")
    parts = {}
    for role, suffix in roles.items():
        if "y" + suffix not in arrays:
            raise DataError(f"{where}: has x{suffix} but no y{suffix}")
        x = as_pixels(to_nchw(arrays["x" + suffix], f"{where} (x{suffix})"), f"{where} (x{suffix})")
        y = as_labels(arrays["y" + suffix], f"{where} (y{suffix})")
        if len(x) != len(y):
            raise DataError(f"{where}: x{suffix} has {len(x)} images but y{suffix} has {len(y)} labels")
        parts[role] = (x, y)
    shapes = {tuple(x.shape[1:]) for x, _ in parts.values()}
    if len(shapes) > 1:
        raise DataError(f"{where}: splits have different image shapes {sorted(shapes)}")
    return {"parts": parts, "info": _info_fields(arrays, parts, shapes.pop(), where)}


def _info_fields(arrays: dict[str, np.ndarray], parts: dict, shape: tuple[int, ...], where: str) -> dict:
    fields: dict[str, object] = {"input_shape": shape}
    largest = [int(y.max()) for _, y in parts.values() if len(y)]
    fields["num_classes"] = max(largest) + 1 if largest else 1
    if "num_classes" in arrays:
        value = arrays["num_classes"]
        if value.shape != () or value.dtype.kind not in "iu" or int(value) < 1:
            raise DataError(f"{where}: num_classes must be a positive integer scalar, got {value!r}")
        fields["num_classes"] = int(value)
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{where}: class_names must be a 1-D array of strings")
        fields["class_names"] = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())
    for key in ("mean", "std"):
        if key in arrays:
            value = np.asarray(arrays[key])
            if value.ndim != 1 or len(value) != shape[0] or value.dtype.kind not in "iuf":
                raise DataError(f"{where}: {key} must hold one number per channel ({shape[0]}), got {value!r}")
            fields[key] = tuple(float(v) for v in value)
    return fields


def read_npz(path: str | None, split: str) -> ArrayDataset:
    """Split ``split`` of an .npz file (see the module docstring)."""
    if path is None:
        raise DataError(f"npz needs a file: --data npz:FILE.npz ({npz_source()})")
    file = Path(path)
    if not file.is_file():
        raise DataError(f"npz: expected an .npz file, got {path!r}")
    with reading(repr(str(file))):  # MemoryError while converting, too: name the file
        loaded = cached(("npz", file_signature([file])), lambda: _load(file))
    parts, fields = loaded["parts"], dict(loaded["info"])
    try:
        info = DatasetInfo("npz", fields.pop("num_classes"), fields.pop("input_shape"), fields.pop("mean", None),
                           fields.pop("std", None), augment="none", class_names=fields.pop("class_names", None))
    except ConfigError as err:  # DatasetInfo's own checks (e.g. class_names vs num_classes), file named
        raise DataError(f"npz {path!r}: {err}") from None
    x, y, _ = pick_split(parts, split, f"npz {path!r}")
    return make_dataset(x, y, info, split, str(file))


def npz_source() -> str:
    return ("PATH: .npz file (allow_pickle=False) with x, y (split 70/10/20 per label, seed 0) or "
            "x_train, y_train, x_test, y_test[, x_val, y_val]; optional num_classes, class_names, mean, std")


register_dataset(DatasetEntry(
    "npz", read_npz, "images and labels in a numpy .npz archive (uint8 or floats in [0,1]): x_train/x_test "
    "as stored, or x/y 70/10/20 per label",
    npz_source, needs_path=True, native_splits=("all",)))
