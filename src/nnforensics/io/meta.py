"""What a model file records besides its tensors."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CorruptFileError
from .jsonfile import parse_json
from .limits import MAX_INPUT_DIMS, MAX_INPUT_VALUES

FORMAT = "nnforensics/1"
META_KEY = "nnforensics"

# What a file's metadata may ask for. Metadata comes from untrusted files: it is parsed
# with these bounds before anything is built from it (the tensors' shapes are then
# checked against the architecture before any memory is allocated for them).
MAX_META_CHARS = 1024 * 1024  # the metadata JSON text
MAX_META_DEPTH = 12  # nesting of JSON objects and arrays (nnforensics writes 4)
MAX_ARCH_ARGS = 64  # constructor arguments
MAX_ARG_ITEMS = 64  # items of a list argument (e.g. MLP hidden sizes, an (H, W) pair)
MAX_ARG_TEXT = 256  # characters of a string argument
MAX_ARG_INT = 2**31 - 1
MAX_CLASSES = 2**24


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _arg_value_problem(key: str, value: Any) -> str | None:
    """Why one constructor argument from a file is refused (None if it is acceptable)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_ARG_INT else f"{key} ({len(str(abs(value)))} digits) is out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{key}={value} is not finite"
    if isinstance(value, str):
        return None if len(value) <= MAX_ARG_TEXT else f"{key} is a string of {len(value)} characters"
    if isinstance(value, list):
        if len(value) > MAX_ARG_ITEMS:
            return f"{key} is a list of {len(value)} items (at most {MAX_ARG_ITEMS})"
        if any(isinstance(v, (list, dict)) for v in value):
            return f"{key} is a nested list"
        return next((p for p in (_arg_value_problem(key, v) for v in value) if p), None)
    return f"{key} is a {type(value).__name__}, not a number, string or list"


def arch_args_problem(args: Any) -> str | None:
    """Why a file's ``arch_args`` are refused: not a mapping, too many, or values of odd types/sizes."""
    if not isinstance(args, dict):
        return "not a mapping"
    if len(args) > MAX_ARCH_ARGS:
        return f"{len(args)} arguments (at most {MAX_ARCH_ARGS})"
    for key, value in args.items():
        if not key.isidentifier() or len(key) > 64:
            return f"{key[:64]!r} is not an argument name"
        problem = _arg_value_problem(key, value)
        if problem:
            return problem
    return None


def input_shape_problem(shape: Any) -> str | None:
    """Why an ``input_shape`` is refused: not a list of 1..4 positive sizes of a sane total."""
    if not isinstance(shape, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        return "not a list of integers"
    if len(shape) > MAX_INPUT_DIMS or any(v < 1 for v in shape):
        return f"needs at most {MAX_INPUT_DIMS} positive sizes"
    if math.prod(shape) > MAX_INPUT_VALUES:
        return f"{math.prod(shape)} values per input (at most {MAX_INPUT_VALUES})"
    return None


def normalization_problem(norm: Any, channels: int | None = None) -> str | None:
    """Why a ``{"mean": [...], "std": [...]}`` normalisation is unusable, or None.

    Every value must be finite and every std positive (a zero or NaN std turns every
    input into Inf/NaN and every prediction into noise), with one value per input
    channel when ``channels`` is known.
    """
    if norm is None:
        return None
    if not isinstance(norm, dict) or not all(isinstance(norm.get(k), list) for k in ("mean", "std")):
        return "needs lists 'mean' and 'std'"
    mean, std = norm["mean"], norm["std"]
    if not all(map(_number, mean + std)):
        return "mean and std must be numbers"
    if len(mean) != len(std) or not mean:
        return f"{len(mean)} means for {len(std)} stds"
    if channels is not None and len(mean) != channels:
        return f"{len(mean)} values for {channels} input channels"
    if not all(math.isfinite(v) for v in mean + std):
        return "mean and std must be finite (no NaN or Inf)"
    if not all(v > 0 for v in std):
        return "every std must be positive"
    return None


def _parse(text: Any) -> Any:
    """The metadata JSON, bounded in length and nesting (:mod:`.jsonfile`); errors are :class:`CorruptFileError`.

    NaN is let through the parser (a metric may be NaN); the fields where it would
    matter (``arch_args``, ``normalization``) refuse it themselves.
    """
    if not isinstance(text, str):
        raise CorruptFileError("model metadata is not text")
    if len(text) > MAX_META_CHARS:
        raise CorruptFileError(f"model metadata is {len(text):,} characters long (at most {MAX_META_CHARS:,})")
    return parse_json(text, "model metadata", allow_nan=True, max_depth=MAX_META_DEPTH)


@dataclass
class ModelMeta:
    """Everything needed to rebuild and use a model, stored as JSON in the file.

    Attributes:
        arch: registry name of the architecture (``nnf models``) or, for a user's own
            architecture, the ``file.py:Class`` / ``pkg.mod:factory`` spec it was built
            from (such a spec is never imported automatically: pass ``--arch``).
        arch_args: keyword arguments of the constructor (``num_classes``, ``in_channels``,
            ``width``...).
        input_shape: one input's shape ``(C, H, W)`` (or ``(L,)`` for token models).
        num_classes: number of output classes.
        normalization: ``{"mean": [...], "std": [...]}`` applied to ``[0, 1]`` inputs, or None.
        dataset: dataset spec the model was trained on.
        recipe: training recipe (see :class:`nnforensics.training.Recipe`).
        metrics: e.g. ``{"test_accuracy": 99.1}``.
        history: provenance, one entry per operation (train, permute, perturb...).
    """

    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    input_shape: list[int] = field(default_factory=list)
    num_classes: int | None = None
    normalization: dict[str, list[float]] | None = None
    dataset: str | None = None
    recipe: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        """Parse and type-check metadata; anything malformed is a :class:`CorruptFileError`."""
        raw = _parse(text)
        if not isinstance(raw, dict) or "arch" not in raw:
            raise CorruptFileError("model metadata has no 'arch' entry")
        fmt = raw.get("format", FORMAT)
        if not isinstance(fmt, str) or not fmt.startswith("nnforensics/"):
            raise CorruptFileError(f"model metadata has an unknown format {fmt!r}")
        if fmt != FORMAT:
            raise CorruptFileError(f"model metadata format {fmt!r} is not supported by this nnforensics "
                                   f"(it reads {FORMAT}); upgrade nnforensics")
        known = set(cls.__dataclass_fields__)
        meta = cls(**{k: v for k, v in raw.items() if k in known})
        meta._check_types()
        return meta

    def _check_types(self) -> None:
        """Raise :class:`CorruptFileError` naming the first field of a wrong type or value, and why."""
        def count(v: Any, most: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= most

        shape = self.input_shape
        image = isinstance(shape, list) and len(shape) == 3 and count(shape[0], MAX_INPUT_VALUES)
        channels = shape[0] if image else None
        checks: dict[str, str | None | bool] = {
            "arch": isinstance(self.arch, str) and 0 < len(self.arch) <= 4096,
            "arch_args": arch_args_problem(self.arch_args),
            "input_shape": input_shape_problem(shape),
            "num_classes": self.num_classes is None or count(self.num_classes, MAX_CLASSES),
            "normalization": normalization_problem(self.normalization, channels),
            "dataset": self.dataset is None or isinstance(self.dataset, str),
            "recipe": self.recipe is None or isinstance(self.recipe, dict),
            "metrics": isinstance(self.metrics, dict),
            "history": isinstance(self.history, list) and all(isinstance(h, dict) for h in self.history),
            "extra": isinstance(self.extra, dict),
        }
        for name, verdict in checks.items():
            if verdict is True or verdict is None:
                continue
            why = f" ({verdict})" if isinstance(verdict, str) else ""
            raise CorruptFileError(f"model metadata field {name!r} has a wrong type or value{why}: "
                                   f"{str(getattr(self, name))[:80]}")

    def with_history(self, **entry: Any) -> ModelMeta:
        """A copy with one more provenance entry."""
        copy = ModelMeta.from_json(self.to_json())
        copy.history.append(entry)
        return copy

    def copy(self) -> ModelMeta:
        return ModelMeta.from_json(self.to_json())
