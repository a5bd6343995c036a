"""Dataset registry: ``--data NAME`` or ``--data NAME:PATH``.

Every reader returns images as tensors in ``[0, 1]`` (uint8 kept as uint8 until a
batch is drawn), labels as int64, and the dataset's standard normalisation, which is
recorded in the model file and applied by the model wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, UnknownNameError

SPLITS = ("train", "val", "test", "trainval")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augment: str = "none"  # "none" | "crop" (random crop with padding) | "crop+flip"
    crop_padding: int = 4
    class_names: tuple[str, ...] | None = None

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
    description: str
    default_source: Callable[[], str]  # human-readable: where it is read from without a PATH
    needs_path: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


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
        raise ConfigError(f"dataset {entry.name!r} needs a path: --data {entry.name}:PATH")
    if path is not None and not Path(path).expanduser().exists():
        raise DataError(f"dataset path {path!r} does not exist")
    return entry, (str(Path(path).expanduser()) if path else None)


def load_dataset(spec: str, split: str = "train", limit: int | None = None) -> ArrayDataset:
    """Read split ``split`` of dataset ``spec`` (``NAME`` or ``NAME:PATH``).

    Args:
        spec: e.g. ``"mnist"``, ``"cifar10:/data/cifar-10-batches-py"``.
        split: ``train``, ``val`` (held out from the official training set), ``test``,
            or ``trainval`` (train + val).
        limit: keep only the first ``limit`` examples (quick runs, tests).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    entry, path = parse_spec(spec)
    if split == "trainval":
        parts = [entry.reader(path, "train"), entry.reader(path, "val")]
        data = ArrayDataset(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]),
                            parts[0].info, "trainval", parts[0].source)
    else:
        data = entry.reader(path, split)
    if limit is not None:
        if limit <= 0:
            raise ConfigError(f"limit must be positive, got {limit}")
        data = data.subset(slice(0, limit))
    return data


def dataset_info(spec: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``spec`` (reads the test split)."""
    return load_dataset(spec, "test", limit=1).info
