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
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorruptFileError(f"model metadata is not valid JSON: {err}") from None
        if not isinstance(raw, dict) or "arch" not in raw:
            raise CorruptFileError("model metadata has no 'arch' entry")
        known = set(cls.__dataclass_fields__)
        meta = cls(**{k: v for k, v in raw.items() if k in known})
        if not isinstance(meta.arch, str) or not isinstance(meta.arch_args, dict):
            raise CorruptFileError("model metadata 'arch' / 'arch_args' have the wrong types")
        return meta

    def with_history(self, **entry: Any) -> ModelMeta:
        """A copy with one more provenance entry."""
        copy = ModelMeta.from_json(self.to_json())
        copy.history.append(entry)
        return copy

    def copy(self) -> ModelMeta:
        return ModelMeta.from_json(self.to_json())
