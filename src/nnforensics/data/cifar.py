"""CIFAR-10 and CIFAR-100 in the official "python version" format.

Accepted PATHs for ``--data cifar10:PATH`` (CIFAR-100 in brackets):

* the folder ``cifar-10-batches-py/`` (``cifar-100-python/``) holding
  ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (``train`` and ``test``),
  plus the optional ``batches.meta`` (``meta``) with the class names;
* a folder that contains that folder (torchvision's ``root``);
* the official archive ``cifar-10-python.tar.gz`` (``cifar-100-python.tar.gz``), or a
  folder containing it: read in memory with :mod:`tarfile`, never extracted.

Each batch file is a Python 2 pickle of a dict with ``b"data"`` (N, 3072) uint8
(1024 red, 1024 green, 1024 blue values, row-major 32x32) and ``b"labels"`` (CIFAR-100:
``b"fine_labels"``; the coarse labels are ignored). The pickles are parsed with
:func:`~.safe_pickle.load_data_pickle`, which refuses anything but arrays, lists,
dicts and strings. Sizes are checked before reading: a batch file, or the
members of an archive as its tar headers declare them, must stay within
``NNF_MAX_DATA_BYTES`` (:mod:`nnforensics.io.limits`).

Splits: ``test`` = the official 10,000 test images; ``val`` = the last 5,000 images
of the official 50,000 training images (at most 1/10 of a smaller set); ``train`` =
the first 45,000.
"""

from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError, DataError
from .cache import cached, file_signature
from ..io.limits import check_size
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .safe_pickle import load_data_pickle
from .splits import holdout_size
from .validate import as_labels, make_dataset

CIFAR_VAL_SIZE = 5_000
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class CifarFormat:
    """File names and keys of one CIFAR variant."""

    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_names: tuple[str, ...] | None = None

    def info(self, class_names: tuple[str, ...] | None) -> DatasetInfo:
        return DatasetInfo(self.name, self.num_classes, (3, 32, 32), self.mean, self.std,
                           augment="crop+flip", crop_padding=4, class_names=class_names)

    def layout(self) -> str:
        files = ", ".join(self.train_files[:1]) + (" .. " + self.train_files[-1] if len(self.train_files) > 1 else "")
        return (f"PATH: the folder {self.folder}/ ({files}, {', '.join(self.test_files)}[, {self.meta_file}]), "
                f"a folder containing it, or the archive {self.archive} (read without extracting)")


CIFAR10 = CifarFormat(
    "cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
    "labels", "label_names", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CIFAR10_CLASSES)
CIFAR100 = CifarFormat(
    "cifar100", "cifar-100-python", "cifar-100-python.tar.gz",
    ("train",), ("test",), "meta",
    "fine_labels", "fine_label_names", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def _text(value: object) -> object:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _as_dict(obj: object, what: str) -> dict[str, object]:
    """A pickled dict with bytes (Python 2) or str keys, as a dict with str keys."""
    if not isinstance(obj, dict):
        raise DataError(f"{what}: expected a pickled dict, got {type(obj).__name__}")
    return {str(_text(k)): v for k, v in obj.items()}


def parse_batch(raw: bytes, what: str, fmt: CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's bytes -> images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    batch = _as_dict(load_data_pickle(raw, what), what)
    for key in ("data", fmt.label_key):
        if key not in batch:
            raise DataError(f"{what}: no {key!r} entry (found {sorted(batch)}); is this a {fmt.name} file?")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{what}: 'data' must be a uint8 array, got "
                        f"{data.dtype if isinstance(data, np.ndarray) else type(data).__name__}")
    if data.ndim == 2 and data.shape[1] == 3072:
        data = data.reshape(-1, 3, 32, 32)
    elif data.shape[1:] != (3, 32, 32):
        raise DataError(f"{what}: 'data' must have shape (N, 3072), got {data.shape}")
    labels = as_labels(batch[fmt.label_key], f"{what} ({fmt.label_key!r})", fmt.num_classes)
    if len(labels) != len(data):
        raise DataError(f"{what}: {len(data)} images but {len(labels)} labels")
    return data, labels


def parse_meta(raw: bytes, what: str, fmt: CifarFormat) -> tuple[str, ...]:
    """Class names from ``batches.meta`` / ``meta``."""
    meta = _as_dict(load_data_pickle(raw, what), what)
    names = meta.get(fmt.names_key)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{what}: no list of class names under {fmt.names_key!r}")
    if len(names) != fmt.num_classes:
        raise DataError(f"{what}: {len(names)} class names, {fmt.name} has {fmt.num_classes} classes")
    return tuple(str(_text(n)) for n in names)


# ----------------------------------------------------------------- locating and reading the files

def locate(path: str, fmt: CifarFormat) -> tuple[str, Path]:
    """``("folder", batches_folder)`` or ``("archive", tar_file)`` for a user PATH."""
    root = Path(path)
    if root.is_file():
        if tarfile.is_tarfile(root) or root.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "archive", root
        raise DataError(f"{fmt.name}: {path!r} is neither a folder nor a tar archive. " + fmt.layout())
    wanted = (*fmt.train_files, *fmt.test_files)
    if any((root / name).is_file() for name in wanted):
        return "folder", root
    if (root / fmt.folder).is_dir():
        return "folder", root / fmt.folder
    if (root / fmt.archive).is_file():
        return "archive", root / fmt.archive
    raise DataError(f"{fmt.name}: {path!r} holds none of {', '.join(wanted)}. " + fmt.layout())


def _batch_from_file(path: Path, fmt: CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    try:
        check_size(path.stat().st_size, repr(str(path)), "the batch file")
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {str(path)!r}: {err}") from None
    return parse_batch(raw, repr(str(path)), fmt)


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_folder(folder: Path, fmt: CifarFormat, official: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Images, labels and class names of the official ``train`` or ``test`` part of a folder."""
    names = fmt.train_files if official == "train" else fmt.test_files
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{fmt.name}: {str(folder)!r} lacks {', '.join(missing)}. " + fmt.layout())
    files = [folder / n for n in names]
    meta = folder / fmt.meta_file
    key = ("cifar", fmt.name, official, file_signature(files + ([meta] if meta.is_file() else [])))

    def build() -> tuple[np.ndarray, np.ndarray, tuple | None]:
        x, y = _concat([_batch_from_file(f, fmt) for f in files])
        class_names = parse_meta(meta.read_bytes(), repr(str(meta)), fmt) if meta.is_file() else fmt.default_names
        return x, y, class_names

    return cached(key, build)


def _read_archive(archive: Path, fmt: CifarFormat) -> dict[str, object]:
    """Every part of the archive in one streaming pass: ``{"train": (x, y), "test": (x, y), "names": ...}``."""
    wanted = {*fmt.train_files, *fmt.test_files, fmt.meta_file}
    members: dict[str, bytes] = {}
    what = repr(str(archive))
    declared = 0
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                base = member.name.rstrip("/").rsplit("/", 1)[-1]
                if base not in wanted or not member.isfile():
                    continue
                if base in members:
                    raise DataError(f"{what} holds {base} twice; expected one {fmt.folder}/ folder")
                declared += member.size  # checked before the member is decompressed
                check_size(declared, what, f"the members up to {member.name!r}")
                handle = tar.extractfile(member)
                members[base] = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise CorruptFileError(f"{what} is not a readable tar archive (truncated or corrupt): {err}") from None
    missing = sorted(n for n in wanted - {fmt.meta_file} if n not in members)
    if missing:
        raise DataError(f"{what} lacks {', '.join(missing)}. " + fmt.layout())
    out: dict[str, object] = {}
    for official, names in (("train", fmt.train_files), ("test", fmt.test_files)):
        out[official] = _concat([parse_batch(members.pop(n), f"{what}:{n}", fmt) for n in names])
    meta = members.pop(fmt.meta_file, None)
    out["names"] = parse_meta(meta, f"{what}:{fmt.meta_file}", fmt) if meta is not None else fmt.default_names
    return out


def read_cifar(path: str | None, split: str, fmt: CifarFormat) -> ArrayDataset:
    """Split ``split`` of a CIFAR folder or archive (see the module docstring)."""
    if path is None:
        raise DataError(f"{fmt.name} needs a path: --data {fmt.name}:PATH ({fmt.layout()})")
    kind, where = locate(path, fmt)
    official = "test" if split == "test" else "train"
    if kind == "archive":
        parsed = cached(("cifar-archive", fmt.name, file_signature([where])), lambda: _read_archive(where, fmt))
        (x, y), names = parsed[official], parsed["names"]
    else:
        x, y, names = _read_folder(where, fmt, official)
    if split != "test":
        n_val = holdout_size(len(x), CIFAR_VAL_SIZE, 0.1)
        if n_val == 0:
            raise DataError(f"{fmt.name} at {str(where)!r}: {len(x)} training image(s) are too few to hold out "
                            f"a validation split")
        part = slice(len(x) - n_val, None) if split == "val" else slice(0, len(x) - n_val)
        x, y = x[part], y[part]
    return make_dataset(x, y, fmt.info(names), split, str(where))


def read_cifar10(path: str | None, split: str) -> ArrayDataset:
    return read_cifar(path, split, CIFAR10)


def read_cifar100(path: str | None, split: str) -> ArrayDataset:
    return read_cifar(path, split, CIFAR100)


register_dataset(DatasetEntry(
    "cifar10", read_cifar10,
    "CIFAR-10, 32x32 RGB, 10 classes; train 45,000 / val 5,000 (last of the training set) / test 10,000",
    CIFAR10.layout, needs_path=True))
register_dataset(DatasetEntry(
    "cifar100", read_cifar100,
    "CIFAR-100 (fine labels), 32x32 RGB, 100 classes; train 45,000 / val 5,000 (last of the training set) "
    "/ test 10,000",
    CIFAR100.layout, needs_path=True))
