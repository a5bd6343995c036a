"""Class-per-folder image trees (torchvision's ImageFolder layout), decoded with Pillow.

Layouts of ``--data imagefolder:ROOT``:

* **Split folders**: ``ROOT/train/<class>/...`` plus ``ROOT/test/<class>/...`` and/or
  ``ROOT/val/<class>/...``. ``test`` is ``ROOT/test`` if it exists, else ``ROOT/val``
  (ImageNet's convention: its official "val" set is what papers report as test).
  ``val`` is ``ROOT/val`` when both ``val`` and ``test`` exist, otherwise a seeded
  stratified 10 % of ``ROOT/train`` (the rest is ``train``).
* **One tree**: ``ROOT/<class>/...`` (no ``ROOT/train``): a seeded stratified split,
  per class 20 % test, 10 % val, 70 % train (see :mod:`.splits`).

Classes are the sub-folder names of ``ROOT/train`` (or ``ROOT``) in sorted order,
labelled 0, 1, ...; a ``val``/``test`` folder may lack classes but may not add new
ones. Images are found recursively inside each class folder by extension
(:data:`IMAGE_EXTENSIONS`); hidden files and folders are skipped.

Pixels: if every image is grayscale the data have 1 channel, otherwise every
image is converted to RGB (palette images expanded, alpha dropped). 16-bit and
floating-point images are refused. **Sizes**: all images should have one size. If
they do not, every image is resized (bilinear, antialiased) to the most common size
in the whole tree (ties: the larger area) and a :class:`~.validate.DataWarning` says
how many were resized; resize the images yourself beforehand to control this.

Normalisation: the ImageNet constants (grayscale: their channel means); augmentation:
random crop (padding = 1/8 of the shorter side, 4 px at 32 px) and horizontal flip.
The whole tree is decoded into memory (uint8): fine for CIFAR/Tiny-ImageNet-sized
data, not for ImageNet itself. **Bounds**, checked from the headers before any image
is decoded: each image at most ``NNF_MAX_IMAGE_PIXELS`` pixels (environment variable,
a positive integer; default ``PIL.Image.MAX_IMAGE_PIXELS``, Pillow's decompression-bomb
limit, ~89 million), the decoded tree at most
``NNF_MAX_DATA_BYTES`` (:mod:`nnforensics.io.limits`). Warnings Pillow raises while
decoding are reported as one :class:`~.validate.DataWarning`.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, CorruptFileError, DataError
from .cache import cached, file_signature
from ..io.limits import check_size, reading
from .registry import ArrayDataset, DatasetEntry, DatasetInfo, register_dataset
from .splits import pick_split
from .validate import DataWarning, library_warnings, make_dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)
_GRAY_MODES = {"1", "L", "LA"}
_REFUSED_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
PIXELS_ENV_VAR = "NNF_MAX_IMAGE_PIXELS"
_RAISE_PIXELS = (f"if you trust the file, allow more with {PIXELS_ENV_VAR}=N pixels per image "
                 f"(default: Pillow's PIL.Image.MAX_IMAGE_PIXELS)")


@dataclass(frozen=True)
class Tree:
    """The files of an image tree: for each role, (paths, labels)."""

    root: Path
    classes: tuple[str, ...]
    parts: dict[str, tuple[list[Path], np.ndarray]]  # "train"/"val"/"test"/"all" -> (files, labels)


def _visible(entries: list[os.DirEntry]) -> list[os.DirEntry]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _class_dirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return [e.name for e in _visible(list(it)) if e.is_dir()]


def _images_under(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted, hidden entries skipped)."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle: do not walk it again
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames)
                   if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return out


def _scan_split(folder: Path, classes: tuple[str, ...], require_all: bool) -> tuple[list[Path], np.ndarray]:
    found = _class_dirs(folder)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"imagefolder: {str(folder)!r} has class folders {unknown[:5]} that the training "
                        f"folder does not have")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        images = _images_under(folder / name) if name in found else []
        if require_all and not images:
            raise DataError(f"imagefolder: class folder {str(folder / name)!r} holds no images "
                            f"(extensions: {' '.join(IMAGE_EXTENSIONS)})")
        files += images
        labels += [index] * len(images)
    if not files:
        raise DataError(f"imagefolder: {str(folder)!r} holds no images in class folders")
    return files, np.asarray(labels, dtype=np.int64)


def scan_tree(root: Path) -> Tree:
    """Find classes and files for each role (see the module docstring)."""
    split_dirs = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    base = split_dirs.get("train", root)
    classes = tuple(_class_dirs(base))
    if not classes:
        raise DataError(f"imagefolder: {str(base)!r} has no class folders. {imagefolder_source()}")
    if "train" not in split_dirs:
        return Tree(root, classes, {"all": _scan_split(root, classes, require_all=True)})
    parts = {"train": _scan_split(split_dirs["train"], classes, require_all=True)}
    if "test" in split_dirs:
        parts["test"] = _scan_split(split_dirs["test"], classes, require_all=False)
        if "val" in split_dirs:
            parts["val"] = _scan_split(split_dirs["val"], classes, require_all=False)
    elif "val" in split_dirs:
        parts["test"] = _scan_split(split_dirs["val"], classes, require_all=False)
    else:
        raise DataError(f"imagefolder: {str(root)!r} has train/ but neither test/ nor val/. {imagefolder_source()}")
    return Tree(root, classes, parts)


# ----------------------------------------------------------------- decoding

def max_image_pixels() -> int | None:
    """Pixels one image may have: ``NNF_MAX_IMAGE_PIXELS`` if set, else Pillow's ``MAX_IMAGE_PIXELS``.

    Raises:
        ConfigError: the variable is set to something that is not a positive integer.
    """
    from PIL import Image

    raw = os.environ.get(PIXELS_ENV_VAR, "").strip().replace("_", "")
    if not raw:
        return Image.MAX_IMAGE_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{PIXELS_ENV_VAR}={raw!r} is not a positive number of pixels (e.g. 200000000)")
    return int(raw)


@contextmanager
def _pillow_limit(limit: int | None) -> Iterator[None]:
    """Pillow's own bomb check follows ``limit`` (:func:`max_image_pixels`) while a file is opened here."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from the image header; refused when too large to decode.

    Pillow reads only the header here. Its decompression-bomb warning is replaced
    by our own check (:func:`_check_image_size`), its error by a :class:`DataError`.
    """
    from PIL import Image

    limit = max_image_pixels()  # a bad setting is a ConfigError, not a "corrupt image"
    try:
        with warnings.catch_warnings(), _pillow_limit(limit):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size, mode = img.size, img.mode
    except Image.DecompressionBombError as err:
        raise DataError(f"{str(path)!r}: image too large to decode safely: {err} ({_RAISE_PIXELS})") from None
    except Exception as err:  # noqa: BLE001 - Pillow raises UnidentifiedImageError, OSError, SyntaxError
        raise CorruptFileError(f"{str(path)!r} is not a readable image: {type(err).__name__}: {err}") from None
    _check_image_size(path, size, limit)
    return size, mode


def _check_image_size(path: Path, size: tuple[int, int], limit: int | None) -> None:
    """Refuse an image over ``limit`` pixels or whose decoding would exceed the data bound."""
    pixels = size[0] * size[1]
    if limit is not None and pixels > limit:
        raise DataError(f"{str(path)!r}: image is {size[0]}x{size[1]} ({pixels:,} pixels), more than the "
                        f"{int(limit):,} pixels decoded per image; resize it, or, {_RAISE_PIXELS}")
    check_size(4 * pixels, repr(str(path)), f"a {size[0]}x{size[1]} image")  # Pillow holds 4 bytes per pixel


def _target_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The most common (width, height); ties go to the larger area, then the larger width."""
    counts = Counter(sizes)
    return max(counts, key=lambda s: (counts[s], s[0] * s[1], s))


def _decode(path: Path, mode: str, size: tuple[int, int], limit: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with reading(repr(str(path))), _pillow_limit(limit), Image.open(path) as img:
            img = img.convert("RGBA" if img.mode == "P" and "transparency" in img.info else img.mode)
            img = img.convert(mode)
            if img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as err:  # noqa: BLE001 - any decoding failure of a user file is "corrupt"
        raise CorruptFileError(f"{str(path)!r} cannot be decoded (truncated or corrupt): "
                               f"{type(err).__name__}: {err}") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # -> (C, H, W)


def decode_tree(tree: Tree) -> dict[str, object]:
    """Decode every image: ``{role: (x (N, C, H, W) uint8, y (N,))}``, plus the common ``size``."""
    all_files = [f for files, _ in tree.parts.values() for f in files]
    with library_warnings(f"imagefolder {str(tree.root)!r}"):
        headers = [_header(f) for f in all_files]
    refused = [(f, m) for f, (_, m) in zip(all_files, headers) if m in _REFUSED_MODES]
    if refused:
        raise DataError(f"imagefolder: {str(refused[0][0])!r} has mode {refused[0][1]} (16-bit or float); "
                        f"only 8-bit grayscale/RGB images are supported, convert them first "
                        f"({len(refused)} such file(s))")
    mode = "L" if all(m in _GRAY_MODES for _, m in headers) else "RGB"
    sizes = [s for s, _ in headers]
    size = _target_size(sizes)
    n_other = sum(s != size for s in sizes)
    if n_other:
        warnings.warn(f"imagefolder {str(tree.root)!r}: images have {len(set(sizes))} different sizes; resizing "
                      f"{n_other} of {len(sizes)} images to the most common size {size[0]}x{size[1]} (bilinear). "
                      f"Resize them beforehand to choose the size yourself.", DataWarning, stacklevel=4)
    channels = 1 if mode == "L" else 3
    check_size(len(all_files) * channels * size[0] * size[1], f"imagefolder {str(tree.root)!r}",
               f"{len(all_files)} images of {channels}x{size[1]}x{size[0]}")
    out: dict[str, object] = {"size": size}
    limit = max_image_pixels()
    with library_warnings(f"imagefolder {str(tree.root)!r}"):
        for role, (files, labels) in tree.parts.items():
            out[role] = (np.stack([_decode(f, mode, size, limit) for f in files]), labels)
    return out


# ----------------------------------------------------------------- the reader

def _info(classes: tuple[str, ...], shape: tuple[int, int, int]) -> DatasetInfo:
    gray = shape[0] == 1
    return DatasetInfo("imagefolder", len(classes), shape, GRAY_MEAN if gray else IMAGENET_MEAN,
                       GRAY_STD if gray else IMAGENET_STD, augment="crop+flip",
                       crop_padding=max(1, round(min(shape[1:]) / 8)), class_names=classes)


def read_imagefolder(path: str | None, split: str) -> ArrayDataset:
    """Split ``split`` of an image tree (see the module docstring for layouts and splits)."""
    if path is None:
        raise DataError(f"imagefolder needs a folder: --data imagefolder:ROOT ({imagefolder_source()})")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"imagefolder: expected a folder, got {path!r}. {imagefolder_source()}")
    tree = scan_tree(root)
    all_files = [f for files, _ in tree.parts.values() for f in files]
    key = ("imagefolder", str(root.resolve()), tree.classes,
           tuple((role, len(files)) for role, (files, _) in tree.parts.items()), file_signature(all_files))
    decoded = cached(key, lambda: decode_tree(tree))
    x, y, _ = pick_split({r: v for r, v in decoded.items() if r != "size"}, split, f"imagefolder {path!r}")
    return make_dataset(x, y, _info(tree.classes, tuple(x.shape[1:])), split, str(root))


def imagefolder_source() -> str:
    return ("ROOT: ROOT/train/<class>/*.png|jpg... with ROOT/test/<class>/ and/or ROOT/val/<class>/; or one "
            "tree ROOT/<class>/... split 70/10/20 per class (seed 0)")


register_dataset(DatasetEntry(
    "imagefolder", read_imagefolder,
    "class-per-folder image tree (Pillow): train/ + test|val/ as stored, or one tree 70/10/20 per class; "
    "mixed sizes resized to the most common one (with a warning)",
    imagefolder_source, needs_path=True, native_splits=("all",)))
