"""Embedding a watermark by fine-tuning, and verifying a suspect against the original."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn

from ..data.registry import ArrayDataset, load_dataset
from ..errors import ConfigError
from ..io.meta import ModelMeta
from ..permutation import unwrap
from ..training import Recipe, evaluate, train
from ..utils.seeding import derive_seed
from .key import WatermarkKey
from .scheme import (
    DEFAULT_FPR,
    ExtractResult,
    detection_threshold,
    extract,
    key_weight,
    watermark_loss,
)

# ----------------------------------------------------------------- embedding

def embedding_recipe(recorded: Recipe, epochs: float = 1.0, lr: float | None = None, seed: int = 0) -> Recipe:
    """The model's own recipe (optimiser, learning rate and schedule, batch size, weight
    decay, augmentation) run again for ``epochs`` epochs, with a data order drawn from ``seed``.

    Restarting at the recorded learning rate matters: at the final rate of a cosine
    schedule (``finetune_recipe``) one epoch embeds almost nothing (LeNet/MNIST: BER 44 %).
    """
    return replace(recorded, epochs=epochs, lr=recorded.lr if lr is None else lr, checkpoint_every=0,
                   data_seed=derive_seed("watermark", recorded.data_seed, seed) % (2**31)).validate()


@dataclass
class EmbedResult:
    """A watermarked copy and how it went.

    ``accuracy_before`` / ``accuracy_after`` (%) are measured on ``eval_data`` when given;
    ``extract`` is the mark read back from the new model (BER 0 when embedding worked).
    """

    model: nn.Module
    meta: ModelMeta | None
    key: WatermarkKey
    extract: ExtractResult
    recipe: Recipe
    steps: int
    seconds: float
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    eval_n: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.key.layer, "bits": self.key.n_bits, "strength": self.key.strength,
                "ber": self.extract.ber, "matched": self.extract.matched, "p_value": self.extract.p_value,
                "detected": self.extract.detected, "epochs": self.recipe.epochs, "lr": self.recipe.lr,
                "steps": self.steps, "seconds": self.seconds, "accuracy_before": self.accuracy_before,
                "accuracy_after": self.accuracy_after, "eval_n": self.eval_n, "notes": self.notes}


def _recipe_for(meta: ModelMeta | None, recipe: Recipe | None, epochs: float, lr: float | None,
                seed: int) -> Recipe:
    if recipe is not None:
        return recipe.validate()
    if meta is None or not meta.recipe:
        raise ConfigError("the model records no training recipe to fine-tune with (a file not written by "
                          "`nnf train`?); pass one explicitly (CLI: --optimizer and --lr)")
    return embedding_recipe(Recipe.from_dict(meta.recipe), epochs, lr, seed)


def embed(
    model: Any,
    key: WatermarkKey,
    data: str | ArrayDataset,
    *,
    epochs: float = 1.0,
    lr: float | None = None,
    recipe: Recipe | None = None,
    limit: int | None = None,
    eval_data: ArrayDataset | None = None,
    fpr: float = DEFAULT_FPR,
    seed: int = 0,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> EmbedResult:
    """Fine-tune a copy of ``model`` with the watermark regulariser of ``key`` (whole model trained).

    Args:
        model: a loaded model (its recorded recipe and normalisation are used) or an
            ``nn.Module`` together with ``recipe``.
        key: from :func:`~nnforensics.watermark.make_key` for this model.
        data: training data, a dataset spec (its ``train`` split) or an ``ArrayDataset``.
        epochs, lr: fine-tuning length and learning rate (default: the recorded rate),
            applied to the recorded recipe (see :func:`embedding_recipe`).
        recipe: a complete recipe instead (required for a model without metadata).
        limit: use only the first ``limit`` training images (of a dataset spec).
        eval_data: accuracy is measured before and after on it when given.
        fpr: false-positive rate of the detection reported in ``extract``.
        seed: data order of the fine-tuning.

    Returns:
        :class:`EmbedResult`; the input model is not modified.

    Raises:
        ShapeMismatchError: the key is for another layer or shape.
        ConfigError: no recipe, bad settings, or ``fpr`` unreachable with the key's bits.
    """
    module, meta = unwrap(model)
    key_weight(module, key)
    detection_threshold(key.n_bits, fpr)  # before training: the mark must be detectable at all
    chosen = _recipe_for(meta, recipe, epochs, lr, seed)
    train_data = data if isinstance(data, ArrayDataset) else load_dataset(str(data), "train", limit=limit)
    if chosen.augment and train_data.info.augment == "none":
        chosen = replace(chosen, augment=False)
    norm = meta.normalization if meta is not None and meta.normalization is not None else train_data.info.normalization
    marked = copy.deepcopy(module)  # measured on the copy too, so the input stays on its device
    before = evaluate(marked, eval_data, normalization=norm, device=device) if eval_data is not None else None
    start = time.perf_counter()
    run = train(marked, train_data, chosen, normalization=norm, device=device, quiet=quiet,
                extra_loss=watermark_loss(key), description="embed watermark")
    seconds = time.perf_counter() - start
    after = evaluate(marked, eval_data, normalization=norm, device=device) if eval_data is not None else None
    marked.to("cpu").eval()
    result = extract(marked, key, fpr)
    notes = [] if result.ber == 0 else [(
        f"the mark is not fully embedded (BER {result.ber:.2f} %); fine-tune longer (epochs), "
        f"or raise the learning rate or the strength")]
    new_meta = None
    if meta is not None:  # the key (layer, bits, seed) is a secret: it is not recorded in the model
        entry: dict[str, Any] = {"op": "watermark", "epochs": chosen.epochs, "steps": run.steps,
                                 "dataset": train_data.info.name}
        if meta.metrics:
            entry["metrics_before"] = dict(meta.metrics)
        new_meta = meta.with_history(**entry)
        split = eval_data.split if eval_data is not None else None
        new_meta.metrics = ({f"{split}_accuracy": after["accuracy"], f"{split}_error": after["error"],
                             f"{split}_n": after["n"]} if after is not None else {})
    return EmbedResult(marked, new_meta, key, result, chosen, run.steps, seconds,
                       before["accuracy"] if before else None, after["accuracy"] if after else None,
                       after["n"] if after else None, notes)


# ----------------------------------------------------------------- verification

@dataclass
class VerifyResult:
    """The suspect's mark read as it is (``raw``) and after re-synchronization to the original.

    Psi cannot be measured (the true permutation is the attacker's secret); ``unambiguous``
    (%) is the share of neurons whose match is each other's best, a confidence proxy.
    """

    raw: ExtractResult
    resynchronized: ExtractResult
    method: str
    permuted_groups: int
    unambiguous: float
    seconds: float
    model: nn.Module

    def to_dict(self) -> dict[str, Any]:
        return {"raw": self.raw.to_dict(), "resynchronized": self.resynchronized.to_dict(),
                "detected": self.resynchronized.detected, "psi_unknown": True, "method": self.method,
                "permuted_groups": self.permuted_groups, "unambiguous": self.unambiguous,
                "resync_seconds": self.seconds}


def verify(
    suspect: Any,
    original: Any,
    key: WatermarkKey,
    *,
    method: str = "lap",
    fpr: float = DEFAULT_FPR,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    group_set: Any = None,
    quiet: bool = True,
) -> VerifyResult:
    """Re-synchronize ``suspect`` to ``original`` (Find the Lady), then extract the mark.

    Args:
        suspect, original: same architecture (``nn.Module`` or loaded models; the
            original's metadata gives the input shape unless ``example_inputs``).
        key: the owner's key (for the original's layer).
        method: re-synchronization method (:data:`nnforensics.resynchronization.METHODS`).

    Returns:
        :class:`VerifyResult` with the raw and re-synchronized extractions.
    """
    import numpy as np

    from ..resynchronization import resync, unambiguous_share

    detection_threshold(key.n_bits, fpr)
    key_weight(original, key)
    raw = extract(suspect, key, fpr)
    result = resync(original, suspect, method=method, example_inputs=example_inputs, group_set=group_set,
                    quiet=quiet)
    permuted = sum(not np.array_equal(m, np.arange(len(m))) for m in result.maps.values())
    return VerifyResult(raw, extract(result.model, key, fpr), method, int(permuted),
                        unambiguous_share(result.groups), result.seconds, result.model)
