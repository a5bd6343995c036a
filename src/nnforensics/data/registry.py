"""Dataset registry: ``--data NAME`` or ``--data NAME:PATH``.

Every reader returns images as tensors in ``[0, 1]`` (uint8 kept as uint8 until a
batch is drawn), labels as int64, and the dataset's standard normalisation, which is
recorded in the model file and applied by the model wrapper.

Splits: ``train``, ``val`` (held out from the official training set, see
:mod:`.splits`), ``test``, ``trainval`` (train + val) and ``all`` (train + val +
test: every example of the source, e.g. a whole poisoned ``.h5`` file).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, UnknownNameError

SPLITS = ("train", "val", "test", "trainval", "all")
AUGMENT_POLICIES = ("none", "crop", "flip", "crop+flip")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augment: str = "none"  # "none" | "crop" (random crop with padding) | "flip" | "crop+flip"
    crop_padding: int = 4
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.augment not in AUGMENT_POLICIES:
            raise ConfigError(f"{self.name}: unknown augmentation {self.augment!r}; "
                              f"choose one of {', '.join(AUGMENT_POLICIES)}")
        if (self.mean is None) != (self.std is None) or (
                self.mean is not None and len(self.mean) != len(self.std)):
            raise ConfigError(f"{self.name}: mean {self.mean} and std {self.std} do not match")
        if self.std is not None and not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise ConfigError(f"{self.name}: mean and std must be finite, got {self.mean} and {self.std}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"{self.name}: std must be positive, got {self.std}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def normalization(self) -> dict[str, list[float]] | None:
        if self.mean is None or self.std is None:
            return None
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass
class ArrayDataset(torch.utils.data.Dataset):
    """Images ``x`` (N, C, H, W) uint8 or float in [0, 1] and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    info: DatasetInfo
    split: str = "train"
    source: str = ""

    def __post_init__(self) -> None:
        if self.y.dim() != 1:
            raise DataError(f"{self.info.name}: labels must have shape (N,), got {tuple(self.y.shape)}")
        if self.y.dtype.is_floating_point or self.y.dtype.is_complex or self.y.dtype == torch.bool:
            raise DataError(f"{self.info.name}: labels must be integers, got {self.y.dtype}")
        if self.y.dtype != torch.int64:  # cross_entropy wants int64 class indices
            self.y = self.y.long()
        if len(self.x) != len(self.y):
            raise DataError(f"{self.info.name}: {len(self.x)} images but {len(self.y)} labels")
        if len(self.x) == 0:
            raise DataError(f"{self.info.name} ({self.split}) is empty" + (f" at {self.source}" if self.source else ""))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_float(self.x[index]), self.y[index]

    def subset(self, indices: torch.Tensor | slice, split: str | None = None) -> ArrayDataset:
        return ArrayDataset(self.x[indices], self.y[indices], self.info, split or self.split, self.source)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1]; float tensors pass through as float32."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset reader."""

    name: str
    reader: Callable[[str | None, str], ArrayDataset]  # (path or None, split) -> dataset
    description: str  # what it is, and how its splits are made
    default_source: Callable[[], str]  # human-readable: where it is read from without a PATH,
    #                                    or for path-only datasets the layout PATH must have
    needs_path: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)
    native_splits: tuple[str, ...] = ()  # of "trainval"/"all": read by the reader itself, not concatenated


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY:
            raise RuntimeError(f"dataset {key!r} registered twice")
        _REGISTRY[key] = entry
    return entry


def _ensure_builtins() -> None:
    from . import readers  # noqa: F401  (registers the built-in readers)


def list_datasets() -> list[DatasetEntry]:
    _ensure_builtins()
    seen, out = set(), []
    for key in sorted(_REGISTRY):
        entry = _REGISTRY[key]
        if entry.name not in seen:
            seen.add(entry.name)
            out.append(entry)
    return out


def parse_spec(spec: str) -> tuple[DatasetEntry, str | None]:
    """Split ``NAME[:PATH]`` and look the name up."""
    _ensure_builtins()
    if not spec or not spec.strip():
        raise ConfigError("empty dataset name; see `nnf datasets`")
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    if name not in _REGISTRY:
        raise UnknownNameError("dataset", name, {e.name for e in _REGISTRY.values()})
    entry = _REGISTRY[name]
    path = path.strip() if sep else None
    if entry.needs_path and not path:
        raise ConfigError(f"dataset {entry.name!r} needs a path: --data {entry.name}:PATH "
                          f"({entry.default_source()})")
    if path is not None and not Path(path).expanduser().exists():
        raise DataError(f"dataset path {path!r} does not exist")
    return entry, (str(Path(path).expanduser()) if path else None)


def load_dataset(spec: str, split: str = "train", limit: int | None = None) -> ArrayDataset:
    """Read split ``split`` of dataset ``spec`` (``NAME`` or ``NAME:PATH``).

    Args:
        spec: e.g. ``"mnist"``, ``"cifar10:/data/cifar-10-batches-py"``.
        split: ``train``, ``val`` (held out from the official training set), ``test``,
            ``trainval`` (train + val) or ``all`` (train + val + test).
        limit: keep only the first ``limit`` examples (quick runs, tests).

    Returns:
        An :class:`ArrayDataset`: ``x`` (N, C, H, W) uint8 (8-bit sources) or float32
        in [0, 1], ``y`` (N,) int64.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit <= 0):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    entry, path = parse_spec(spec)
    try:
        if split in ("trainval", "all") and split not in entry.native_splits:
            names = ("train", "val") if split == "trainval" else ("train", "val", "test")
            data = concatenate([entry.reader(path, name) for name in names], split)
        else:
            data = entry.reader(path, split)
    except MemoryError:  # readers name the file when they can; this names at least the dataset
        raise DataError(f"not enough memory to read dataset {spec!r} ({split}); free memory or use a "
                        f"smaller dataset") from None
    if limit is not None:
        data = data.subset(slice(0, int(limit)))
    return data


def concatenate(parts: list[ArrayDataset], split: str) -> ArrayDataset:
    """One dataset from splits of the same source (same info; x dtypes unified)."""
    info = parts[0].info
    for part in parts[1:]:
        if part.info != info or part.x.shape[1:] != parts[0].x.shape[1:]:
            raise DataError(f"{info.name}: splits {parts[0].split!r} and {part.split!r} do not match "
                            f"({tuple(parts[0].x.shape[1:])} vs {tuple(part.x.shape[1:])})")
    xs = [p.x for p in parts]
    if len({x.dtype for x in xs}) > 1:  # e.g. uint8 train + float test: compare in [0, 1]
        xs = [to_float(x) for x in xs]
    return ArrayDataset(torch.cat(xs), torch.cat([p.y for p in parts]), info, split, parts[0].source)


def dataset_info(spec: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``spec`` (reads the test split)."""
    return load_dataset(spec, "test", limit=1).info
