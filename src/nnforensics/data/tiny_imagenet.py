"""Tiny-ImageNet-200 in its official folder layout, decoded with Pillow.

Layout of ``--data tiny-imagenet:PATH`` (PATH is ``tiny-imagenet-200/`` or a folder
containing it)::

    wnids.txt                          the class wnids, one per line: class index = line order
    words.txt                          optional: "wnid<TAB>names" (class names; first name kept)
    train/<wnid>/images/*.JPEG         500 per class in the official release
    train/<wnid>/<wnid>_boxes.txt      ignored
    val/images/val_<k>.JPEG
    val/val_annotations.txt            "val_0.JPEG<TAB>n03444034<TAB>0<TAB>32<TAB>44<TAB>62" (file, wnid, box)
    test/images/*.JPEG                 not read: the official test set has no labels

Splits (as for ImageNet in :mod:`.imagefolder`): ``test`` = the official ``val``
folder (10,000 images, in the order of ``val_annotations.txt``), since the official
test set is unlabelled; ``val`` = a seeded stratified 10 % of the official training
set (:func:`~.splits.stratified_split`, 50 per class: 10,000) and ``train`` = the
rest (90,000). Training images are read class by class in ``wnids.txt`` order, files
sorted by name.

Pixels: 3x64x64 uint8; grayscale (and CMYK) JPEGs are converted to RGB. An image of
another size is refused. Normalisation: the ImageNet constants; augmentation: random
crop (padding 8) and horizontal flip. Bounds as for image trees (``NNF_MAX_IMAGE_PIXELS``
per image from its header, ``NNF_MAX_DATA_BYTES`` for each decoded part); decoded
parts are cached (:mod:`.cache`), so ``train`` and ``val`` decode the training set once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.limits import check_size
from .cache import cached, file_signature
from .imagefolder import (  # the image tree's decoding: the same header checks, bounds and conversions
    _REFUSED_MODES,
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    _decode,
    _header,
    max_image_pixels,
)
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .splits import pick_split
from .validate import library_warnings, make_dataset

NAME = "tiny-imagenet"
FOLDER = "tiny-imagenet-200"
SIDE = 64
#: Text files (wnids, words, annotations) larger than this are refused (the official words.txt is ~2.7 MB).
MAX_TEXT_BYTES = 64 * 1024**2


def tiny_imagenet_source() -> str:
    return (f"PATH: the folder {FOLDER}/ (wnids.txt, train/<wnid>/images/*.JPEG, val/images/ with "
            f"val/val_annotations.txt[, words.txt]) or a folder containing it")


def _fail(message: str) -> DataError:
    return DataError(f"{NAME}: {message}. {tiny_imagenet_source()}")


def locate(path: str) -> Path:
    """The ``tiny-imagenet-200`` folder for a user PATH (the folder itself or its parent)."""
    root = Path(path)
    if not root.is_dir():
        raise _fail(f"expected a folder, got {path!r}")
    if not (root / "wnids.txt").exists() and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


def _read_lines(path: Path) -> list[str]:
    """The non-blank lines of a small UTF-8 text file (trailing whitespace stripped)."""
    if not path.is_file():
        raise _fail(f"{str(path)!r} is missing")
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise DataError(f"{NAME}: {str(path)!r} is {size:,} bytes, more than the {MAX_TEXT_BYTES:,} "
                            f"bytes a text file of this dataset may have")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{NAME}: cannot read {str(path)!r} as UTF-8 text: {err}") from None
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def read_wnids(root: Path) -> tuple[str, ...]:
    """Class wnids from ``wnids.txt`` in file order (the class indices)."""
    path = root / "wnids.txt"
    wnids = tuple(line.strip() for line in _read_lines(path))
    if not wnids:
        raise _fail(f"{str(path)!r} lists no wnids")
    bad = next((w for w in wnids if len(w.split()) != 1 or "/" in w or w.startswith(".")), None)
    if bad is not None:
        raise DataError(f"{NAME}: {str(path)!r}: {bad[:60]!r} is not a wnid (one word per line, e.g. n01443537)")
    dup = next((w for i, w in enumerate(wnids) if w in wnids[:i]), None)
    if dup is not None:
        raise DataError(f"{NAME}: {str(path)!r} lists {dup} twice")
    return wnids


def read_class_names(root: Path, wnids: tuple[str, ...]) -> tuple[str, ...] | None:
    """Names from ``words.txt`` (first of the comma-separated names; the wnid where absent), or None.

    Names that would repeat (two wnids both called "crane") get their wnid appended.
    """
    path = root / "words.txt"
    if not path.exists():
        return None
    words = {}
    for line in _read_lines(path):
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    return tuple(n if names.count(n) == 1 else f"{n} ({w})" for n, w in zip(names, wnids))


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name, hidden files skipped)."""
    if not folder.is_dir():
        raise _fail(f"{str(folder)!r} is missing")
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if not e.name.startswith(".") and e.is_file()
                       and e.name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise DataError(f"{NAME}: {str(folder)!r} holds no images (extensions: {' '.join(IMAGE_EXTENSIONS)})")
    return [folder / n for n in names]


def scan_train(root: Path, wnids: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """Files of ``train/<wnid>/images/`` for every wnid, and their labels (N,) int64."""
    train = root / "train"
    if not train.is_dir():
        raise _fail(f"{str(train)!r} is missing")
    with os.scandir(train) as it:
        unknown = sorted(e.name for e in it if e.is_dir() and not e.name.startswith(".") and e.name not in wnids)
    if unknown:
        raise DataError(f"{NAME}: {str(train)!r} has class folders {unknown[:5]} that wnids.txt does not list")
    files: list[Path] = []
    labels: list[int] = []
    for index, wnid in enumerate(wnids):
        images = _images_in(train / wnid / "images")
        files += images
        labels += [index] * len(images)
    return files, np.asarray(labels, dtype=np.int64)


def scan_val(root: Path, wnids: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """Files listed in ``val/val_annotations.txt`` (in its order) and their labels (N,) int64."""
    notes = root / "val" / "val_annotations.txt"
    index = {w: i for i, w in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    seen: set[str] = set()
    for number, line in enumerate(_read_lines(notes), 1):
        fields = line.split("\t")
        name, wnid = fields[0].strip(), fields[1].strip() if len(fields) > 1 else ""
        where = f"{str(notes)!r} line {number}"
        if not name or not wnid or "/" in name or "\\" in name or name.startswith("."):
            raise DataError(f"{NAME}: {where}: expected 'FILE<TAB>WNID<TAB>box', got {line[:80]!r}")
        if wnid not in index:
            raise DataError(f"{NAME}: {where}: wnid {wnid!r} of {name} is not in wnids.txt")
        if name in seen:
            raise DataError(f"{NAME}: {where}: {name} is annotated twice")
        seen.add(name)
        path = root / "val" / "images" / name
        if not path.is_file():
            raise DataError(f"{NAME}: image {str(path)!r} listed at {where} is missing")
        files.append(path)
        labels.append(index[wnid])
    if not files:
        raise DataError(f"{NAME}: {str(notes)!r} annotates no images")
    return files, np.asarray(labels, dtype=np.int64)


def decode_images(files: list[Path], where: str) -> np.ndarray:
    """Decode ``files`` as RGB: (N, 3, 64, 64) uint8; any other size or a 16-bit/float image is refused."""
    limit = max_image_pixels()
    with library_warnings(where):
        for path in files:  # every header first: nothing is decoded from a tree with a bad file
            size, mode = _header(path)
            if mode in _REFUSED_MODES:
                raise DataError(f"{NAME}: {str(path)!r} has mode {mode} (16-bit or float); expected an "
                                f"8-bit RGB or grayscale image")
            if size != (SIDE, SIDE):
                raise DataError(f"{NAME}: {str(path)!r} is {size[0]}x{size[1]}; Tiny-ImageNet images are "
                                f"{SIDE}x{SIDE} (use --data imagefolder for other image trees)")
        check_size(len(files) * 3 * SIDE * SIDE, where, f"{len(files)} images of 3x{SIDE}x{SIDE}")
        return np.stack([_decode(f, "RGB", (SIDE, SIDE), limit) for f in files])


def _decoded(root: Path, part: str, wnids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The official ``train`` or ``val`` part as (N, 3, 64, 64) uint8 and (N,) int64 (cached)."""
    files, labels = scan_train(root, wnids) if part == "train" else scan_val(root, wnids)
    key = ("tiny-imagenet", str(root.resolve()), part, wnids, file_signature(files))
    where = f"{NAME} {str(root / part)!r}"
    return cached(key, lambda: (decode_images(files, where), labels))


def info(class_names: tuple[str, ...] | None, num_classes: int) -> DatasetInfo:
    return DatasetInfo(NAME, num_classes, (3, SIDE, SIDE), IMAGENET_MEAN, IMAGENET_STD, augment="crop+flip",
                       crop_padding=SIDE // 8, class_names=class_names)


def read_tiny_imagenet(path: str | None, split: str) -> ArrayDataset:
    """Split ``split`` (train, val or test) of a Tiny-ImageNet-200 folder (see the module docstring)."""
    if path is None:
        raise DataError(f"{NAME} needs a folder: --data {NAME}:PATH ({tiny_imagenet_source()})")
    root = locate(path)
    wnids = read_wnids(root)
    part = "val" if split == "test" else "train"  # the official val set is our test split
    x, y = _decoded(root, part, wnids)
    x, y, _ = pick_split({"test" if part == "val" else "train": (x, y)}, split, f"{NAME} {str(root)!r}")
    return make_dataset(x, y, info(read_class_names(root, wnids), len(wnids)), split, str(root))


register_dataset(DatasetEntry(
    NAME, read_tiny_imagenet,
    "Tiny-ImageNet-200, 64x64 RGB, 200 classes; train 90,000 / val 10,000 (seeded 10 % of each training "
    "class) / test 10,000 (the official val set; the official test set has no labels)",
    tiny_imagenet_source, needs_path=True, aliases=("tiny-imagenet-200",)))
