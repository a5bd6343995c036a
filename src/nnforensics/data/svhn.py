"""SVHN (Street View House Numbers), cropped-digits format ``*_32x32.mat``.

Layout of ``--data svhn:PATH``: a folder with ``train_32x32.mat`` and
``test_32x32.mat`` (``svhn-extra`` also needs ``extra_32x32.mat``). Each file holds
``X`` of shape (32, 32, 3, N) uint8 and ``y`` of shape (N, 1) with labels 1..10,
where 10 stands for the digit 0 (read here as label 0). MATLAB v4/v5/v6 files are
read with :func:`scipy.io.loadmat`; v7.3 files (HDF5 inside, dimensions stored
reversed) with h5py through :mod:`nnforensics.io.h5safe`. Sizes are checked before
reading (:mod:`.matfile`, :mod:`nnforensics.io.limits`: ``NNF_MAX_DATA_BYTES``).

Splits: ``test`` = ``test_32x32.mat`` (26,032); ``val`` = the last 5,000 images of
``train_32x32.mat`` (at most 1/10 of a smaller file); ``train`` = the other 68,257
(``svhn-extra``: plus all 531,131 of ``extra_32x32.mat``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import CorruptFileError, DataError
from ..io.h5safe import declared_nbytes, get_dataset, open_h5, read_dataset
from .cache import cached, file_signature
from ..io.limits import check_size, max_data_bytes, reading
from .matfile import check_mat_size
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .splits import holdout_size
from .validate import as_labels, library_warnings, make_dataset

SVHN_INFO = DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                        augment="crop", crop_padding=4, class_names=tuple(str(d) for d in range(10)))
SVHN_VAL_SIZE = 5_000
_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def _load_v5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat
    from scipy.io.matlab import matfile_version

    where = repr(str(path))
    try:
        version = matfile_version(str(path))[0]
    except Exception as err:  # noqa: BLE001 - scipy raises MatReadError, ValueError, OSError
        raise CorruptFileError(f"{where} is not a readable MATLAB file: {type(err).__name__}: {err}") from None
    check_mat_size(path, version)  # before loadmat allocates or decompresses anything
    try:
        with library_warnings(where):
            mat = loadmat(str(path), variable_names=["X", "y"])
    except MemoryError:
        raise DataError(f"{where}: not enough memory to read this MATLAB file") from None
    except Exception as err:  # noqa: BLE001 - scipy raises ValueError, MatReadError, zlib.error, ...
        raise CorruptFileError(f"{where} is not a readable MATLAB file (truncated or corrupt): "
                               f"{type(err).__name__}: {err}") from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataError(f"{where} has no variable {' or '.join(missing)}; expected SVHN's X and y")
    return np.asarray(mat["X"]), np.asarray(mat["y"])


def _load_v73(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X and y of a v7.3 file (HDF5), read through :mod:`~nnforensics.io.h5safe`."""
    where = repr(str(path))
    with open_h5(path) as f:
        names = set(f.keys())
        missing = [k for k in ("X", "y") if k not in names]
        if missing:
            raise DataError(f"{where} has no variable {' or '.join(missing)}; expected SVHN's X and y")
        x_ds, y_ds = (get_dataset(f, k, where) for k in ("X", "y"))
        check_size(declared_nbytes(x_ds) + declared_nbytes(y_ds), where, f"X {x_ds.shape} with y")
        x, y = (read_dataset(ds, where, max_data_bytes()) for ds in (x_ds, y_ds))
    # MATLAB writes column-major: HDF5 sees every shape reversed, (N, 3, 32, 32) for (32, 32, 3, N).
    return np.transpose(x), np.transpose(y)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN ``.mat`` file -> images (N, 3, 32, 32) uint8 and labels (N,) int64 in 0..9."""
    where = repr(str(path))
    with reading(where):
        x, y = _load_v73(path) if h5py.is_hdf5(path) else _load_v5(path)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{where}: X must have shape (32, 32, 3, N), got {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{where}: X must be uint8, got {x.dtype}")
    labels = as_labels(y, f"{where} (y)", num_classes=10, first=1)
    if len(labels) != x.shape[3]:
        raise DataError(f"{where}: {x.shape[3]} images but {len(labels)} labels")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels % 10  # (H, W, C, N) -> (N, C, H, W); 10 -> 0


def _file(root: Path, role: str) -> Path:
    path = root / _FILES[role]
    if not path.is_file():
        raise DataError(f"svhn: {str(root)!r} has no {_FILES[role]}. {svhn_source()}")
    return path


def _read(root: Path, role: str) -> tuple[np.ndarray, np.ndarray]:
    path = _file(root, role)
    return cached(("svhn", file_signature([path])), lambda: read_svhn_mat(path))


def read_svhn(path: str | None, split: str, with_extra: bool = False) -> ArrayDataset:
    """Split ``split`` of an SVHN folder (see the module docstring)."""
    name = "svhn-extra" if with_extra else "svhn"
    if path is None:
        raise DataError(f"{name} needs a folder: --data {name}:FOLDER ({svhn_source(with_extra)})")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{name}: expected a folder, got {path!r}. {svhn_source(with_extra)}")
    if split == "test":
        x, y = _read(root, "test")
    else:
        extra = _read(root, "extra") if with_extra and split == "train" else None
        x, y = _read(root, "train")
        n_val = holdout_size(len(x), SVHN_VAL_SIZE, 0.1)
        if n_val == 0:
            raise DataError(f"{name}: {len(x)} training image(s) are too few to hold out a validation split")
        part = slice(len(x) - n_val, None) if split == "val" else slice(0, len(x) - n_val)
        x, y = x[part], y[part]
        if extra is not None:
            x, y = np.concatenate([x, extra[0]]), np.concatenate([y, extra[1]])
    return make_dataset(x, y, SVHN_INFO, split, str(root))


def svhn_source(with_extra: bool = False) -> str:
    files = "train_32x32.mat, test_32x32.mat" + (", extra_32x32.mat" if with_extra else "")
    return f"PATH: folder with {files} (MATLAB v5 or v7.3; X (32,32,3,N) uint8, y 1..10 with 10 = digit 0)"


register_dataset(DatasetEntry(
    "svhn", lambda path, split: read_svhn(path, split),
    "SVHN cropped digits, 32x32 RGB, 10 classes; train 68,257 / val 5,000 (last of train_32x32) / test 26,032",
    svhn_source, needs_path=True))
register_dataset(DatasetEntry(
    "svhn-extra", lambda path, split: read_svhn(path, split, with_extra=True),
    "SVHN with extra_32x32.mat added to train (599,388); val 5,000 (last of train_32x32) / test 26,032",
    lambda: svhn_source(True), needs_path=True))
