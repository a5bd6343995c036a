"""What a model file records besides its tensors."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CorruptFileError

FORMAT = "nnforensics/1"
META_KEY = "nnforensics"


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
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, TypeError) as err:
            raise CorruptFileError(f"model metadata is not valid JSON: {err}") from None
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
        """Raise :class:`CorruptFileError` naming the first field of the wrong type."""
        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def count(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        norm = self.normalization
        checks = {
            "arch": isinstance(self.arch, str) and bool(self.arch),
            "arch_args": isinstance(self.arch_args, dict),
            "input_shape": isinstance(self.input_shape, list) and all(count(v) for v in self.input_shape),
            "num_classes": self.num_classes is None or count(self.num_classes),
            "normalization": norm is None or (
                isinstance(norm, dict) and all(isinstance(norm.get(k), list) for k in ("mean", "std"))
                and len(norm["mean"]) == len(norm["std"]) and all(map(number, norm["mean"] + norm["std"]))),
            "dataset": self.dataset is None or isinstance(self.dataset, str),
            "recipe": self.recipe is None or isinstance(self.recipe, dict),
            "metrics": isinstance(self.metrics, dict),
            "history": isinstance(self.history, list) and all(isinstance(h, dict) for h in self.history),
            "extra": isinstance(self.extra, dict),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise CorruptFileError(f"model metadata field {bad[0]!r} has a wrong type or value: "
                                   f"{getattr(self, bad[0])!r:.80}")

    def with_history(self, **entry: Any) -> ModelMeta:
        """A copy with one more provenance entry."""
        copy = ModelMeta.from_json(self.to_json())
        copy.history.append(entry)
        return copy

    def copy(self) -> ModelMeta:
        return ModelMeta.from_json(self.to_json())
