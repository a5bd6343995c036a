"""Synaptic filtering of one model: accuracy curves as weights are removed.

For every filter and every set of layers filtered together (one layer at a time in the
``local`` scope, every Conv/Linear layer at once in the ``global`` scope), the weights
are changed in place, the model is evaluated on clean and adversarial inputs, and the
original weights are copied back, bit for bit, before the next threshold: no model copy
per threshold, and the model's BatchNorm statistics never change (it is evaluated in
eval mode, and nothing runs in training mode).

Adversarial inputs (``adversarial="fixed"``, the paper's setting) are crafted once on
the intact model, so every threshold costs forward passes only; ``"adaptive"`` crafts
them again against each filtered model (what an attacker who knows the filtered model
would do, and a check that a "fixed" improvement is not only a weaker transfer attack).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import ConfigError, DataError, ShapeMismatchError
from ..models.layers import resolve_layers, weight_layers
from ..models.wrappers import Normalized
from ..utils.progress import progress
from .filters import MAGNITUDE_FILTERS, check_scope, check_thresholds, removal_mask, threshold_sweep
from .suffix import SuffixForward, trace_or_none

GLOBAL_TARGET = "(all layers)"
ADVERSARIAL_MODES = ("fixed", "adaptive")

#: ``craft(net, x, y) -> x_adv``: adversarial inputs against ``net`` (same shape as ``x``).
Crafter = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Target:
    """Layers filtered together: one layer (local scope) or every layer (global scope)."""

    name: str
    layers: tuple[tuple[str, nn.Module], ...]

    @property
    def n_weights(self) -> int:
        return sum(m.weight.numel() for _, m in self.layers)


def filter_targets(model: nn.Module, scope: str, layers: Sequence[str] | None = None) -> list[Target]:
    """What is filtered together: each Conv/Linear layer (``local``), or all of them (``global``).

    ``layers`` restricts the analysis to some Conv/Linear layers (names as ``nnf layers`` prints them).
    """
    check_scope(scope)
    modules = dict(weight_layers(model))
    if not modules:
        raise ConfigError("the model has no Conv/Linear layer: synaptic filtering acts on their weights")
    names = resolve_layers(model, layers) if layers else list(modules)
    not_weight = [name for name in names if name not in modules]
    if not_weight:
        raise ConfigError(f"layer {not_weight[0]!r} is not a Conv/Linear layer; filters act on those: "
                          f"{', '.join(modules)}")
    chosen = tuple((name, modules[name]) for name in names)
    if scope == "global":
        return [Target(GLOBAL_TARGET, chosen)]
    return [Target(name, ((name, module),)) for name, module in chosen]


@contextmanager
def kept_weights(target: Target) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor | None]]]:
    """Save the target's weights and biases; copy them back exactly on exit (even on error)."""
    saved = {name: (m.weight.detach().clone(), None if m.bias is None else m.bias.detach().clone())
             for name, m in target.layers}
    try:
        yield saved
    finally:
        with torch.no_grad():
            for name, m in target.layers:
                weight, bias = saved[name]
                m.weight.copy_(weight)
                if bias is not None:
                    m.bias.copy_(bias)


def weight_range(saved: dict[str, tuple[torch.Tensor, torch.Tensor | None]]) -> tuple[float, float]:
    """``(min, max)`` of the saved weights (every layer of the target together)."""
    lo = min(float(w.min()) for w, _ in saved.values())
    hi = max(float(w.max()) for w, _ in saved.values())
    return lo, hi


def check_eval_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if len(x) == 0:
        raise DataError("the evaluation data is empty")
    if len(x) != len(y):
        raise ShapeMismatchError(f"{len(x)} inputs but {len(y)} labels")


class FilterRun:
    """Evaluates one model under the filters; see :func:`run_filter`.

    Args:
        model: the bare model (its Conv/Linear layers are the ones the targets name);
            it is put in eval mode and left there.
        x, y: evaluation inputs (N, ...) in ``[0, 1]`` and labels (N,), on the model's device.
        normalization: ``{"mean", "std"}`` applied inside the classifier (attacks work in [0, 1]).
        craft: makes adversarial inputs against the normalised classifier, or ``None`` for
            clean accuracy only.
        adversarial: ``fixed`` (crafted once on the intact model) or ``adaptive``.
        batch_size: evaluation batch size.
        reuse_prefix: evaluate only the part of the network downstream of the filtered
            layers (:mod:`.suffix`); the results are identical either way.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 normalization: dict | None = None, craft: Crafter | None = None,
                 adversarial: str = "fixed", batch_size: int = 500, reuse_prefix: bool = True):
        check_eval_data(x, y)
        if adversarial not in ADVERSARIAL_MODES:
            raise ConfigError(f"unknown adversarial mode {adversarial!r}; choose one of {', '.join(ADVERSARIAL_MODES)}")
        norm = normalization or {}
        self.model = model.eval()
        self.net = Normalized(model, norm.get("mean"), norm.get("std")).to(x.device).eval()
        self.x, self.y, self.craft = x, y, craft
        self.adversarial, self.batch_size = adversarial, batch_size
        self.traced = trace_or_none(model) if reuse_prefix else None
        self.x_adv = craft(self.net, x, y) if craft is not None else None
        self.inputs = {"clean": self._normalised(x)}
        if self.x_adv is not None:
            self.inputs["adv"] = self._normalised(self.x_adv)
        self._suffix: SuffixForward | None = None
        self._intact: dict[str, torch.Tensor] = {}
        self.base_clean, self.base_adv = self.evaluate()
        self._intact = dict(self._last)  # per-image correctness of the intact model

    @torch.no_grad()
    def _normalised(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` as the bare model sees it, in evaluation batches."""
        net = self.net
        batches = [x[i:i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        if net.mean is None or x.dim() != 4:
            return batches
        return [(b - net.mean) / net.std for b in batches]

    def focus(self, target: Target | None) -> None:
        """Evaluate only what ``target``'s layers change from now on (``None``: full forward passes)."""
        self._suffix = None
        if target is None or self.traced is None:
            return
        tensors = [t for _, m in target.layers for t in (m.weight, m.bias) if t is not None]
        sets = [self.inputs["clean"]] + ([self.inputs["adv"]] if self.adversarial == "fixed" and "adv" in self.inputs else [])
        suffix = SuffixForward(self.traced, tensors, [b for batches in sets for b in batches])
        self._suffix = suffix if suffix.usable else None

    @torch.no_grad()
    def _accuracy(self, name: str, batches: list[torch.Tensor]) -> float:
        offset = 0 if name == "clean" else len(self.inputs["clean"])
        hits, start = [], 0
        for i, batch in enumerate(batches):
            logits = self._forward(offset + i, batch)
            hits.append(logits.argmax(1) == self.y[start:start + len(batch)])
            start += len(batch)
        self._last[name] = torch.cat(hits)
        return 100.0 * int(self._last[name].sum()) / len(self.y)

    def _forward(self, index: int, batch: torch.Tensor) -> torch.Tensor:
        """Logits of batch ``index``: from the cached prefix when possible, else a full forward pass."""
        if self._suffix is not None:
            try:
                return self._suffix.forward(index)
            except Exception:  # anything the partial pass cannot run: the full pass always can
                self._suffix = None
        return self.model(batch)

    def flips(self) -> tuple[int, int]:
        """Images whose correctness differs from the intact model's at the last evaluation (clean, adversarial).

        The paired difference of two accuracies on the same images has a standard error of
        about ``sqrt(flips) / n``: what the verdicts' confidence is measured against.
        """
        counts = [int((self._last[k] != self._intact[k]).sum()) if k in self._intact else 0 for k in ("clean", "adv")]
        return counts[0], counts[1]

    def evaluate(self) -> tuple[float, float]:
        """(clean accuracy, adversarial accuracy) in % of the model as its weights are now."""
        self._last: dict[str, torch.Tensor] = {}
        clean = self._accuracy("clean", self.inputs["clean"])
        if self.craft is None:
            return clean, math.nan
        if self.adversarial == "fixed":
            return clean, self._accuracy("adv", self.inputs["adv"])
        suffix, self._suffix = self._suffix, None  # adaptive inputs change: full forward passes
        try:
            return clean, self._accuracy("adv", self._normalised(self.craft(self.net, self.x, self.y)))
        finally:
            self._suffix = suffix


def _apply(kind: str, target: Target, saved: dict, step, last: bool,
           init: dict[str, torch.Tensor] | None) -> int:
    """Set the target's weights for one threshold; returns how many weights were removed or changed."""
    changed = 0
    with torch.no_grad():
        for name, m in target.layers:
            weight, bias = saved[name]
            if kind == "reset":
                m.weight.copy_(torch.lerp(weight, init[f"{name}.weight"].to(weight), step.alpha))
                if bias is not None:
                    m.bias.copy_(torch.lerp(bias, init[f"{name}.bias"].to(bias), step.alpha))
                changed += int((init[f"{name}.weight"].to(weight) != weight).sum())
            else:
                mask = removal_mask(weight, kind, step, last)
                m.weight.copy_(weight.masked_fill(mask, 0.0))
                changed += int(mask.sum())
    return changed


def run_filter(run: FilterRun, target: Target, kind: str, n_thresholds: int, *,
               init: dict[str, torch.Tensor] | None = None, quiet: bool = True) -> list[dict]:
    """One filter's sweep over one target: a row per threshold (weights restored afterwards).

    Row keys: ``layer``, ``filter``, ``threshold_index``, ``alpha``, ``t`` (normalised
    threshold), ``n_weights``, ``removed`` (weights zeroed; for ``reset``, weights whose
    value differs from the initial one), ``removed_fraction`` (for ``reset``: ``t``, the
    share of the way back to initialisation), ``kept_fraction`` (``1 - removed_fraction``),
    ``clean_accuracy``,
    ``adv_accuracy`` (%, NaN without an attack), ``clean_flips`` / ``adv_flips`` (images
    whose correctness differs from the intact model's), ``low``/``high`` (pulse window).
    """
    check_thresholds(n_thresholds)
    if kind == "reset" and init is None:
        raise ConfigError("the reset filter needs the model's weights at initialisation (--init INIT_MODEL)")
    rows = []
    run.focus(target)
    previous: tuple[int, tuple[float, float, int, int]] | None = None
    with kept_weights(target) as saved:
        lo, hi = weight_range(saved)
        steps = threshold_sweep(kind, lo, hi, n_thresholds)
        with progress(quiet=quiet, transient=True) as bar:
            task = bar.add_task(f"{kind} {target.name}", total=len(steps), status="")
            for step in steps:
                changed = _apply(kind, target, saved, step, step.index == len(steps) - 1, init)
                if kind != "reset" and changed == 0:  # the intact model
                    clean, adv, clean_flips, adv_flips = run.base_clean, run.base_adv, 0, 0
                elif kind in ("high-pass", "low-pass") and previous and previous[0] == changed:
                    clean, adv, clean_flips, adv_flips = previous[1]  # nested masks of equal size: the same mask
                else:
                    clean, adv = run.evaluate()
                    clean_flips, adv_flips = run.flips()
                previous = (changed, (clean, adv, clean_flips, adv_flips))
                # reset changes every weight at once; its share is how far back towards initialisation
                removed_fraction = step.t if kind == "reset" else changed / target.n_weights
                kept = 1.0 - removed_fraction
                rows.append({"layer": target.name, "filter": kind, "threshold_index": step.index,
                             "alpha": step.alpha, "t": step.t, "low": step.low, "high": step.high,
                             "n_weights": target.n_weights, "removed": changed,
                             "removed_fraction": removed_fraction, "kept_fraction": kept,
                             "clean_accuracy": clean, "adv_accuracy": adv, "clean_flips": clean_flips,
                             "adv_flips": adv_flips})
                bar.advance(task)
    run.focus(None)
    return rows


def check_init_state(model: nn.Module, init: dict[str, torch.Tensor], targets: Sequence[Target]) -> None:
    """The initial weights must have every filtered layer's weight/bias, with the same shapes."""
    for target in targets:
        for name, m in target.layers:
            for param in ("weight", "bias"):
                tensor = getattr(m, param)
                if tensor is None:
                    continue
                key = f"{name}.{param}"
                if key not in init:
                    raise ShapeMismatchError(f"the initial model has no {key!r}: it is not the same architecture")
                if tuple(init[key].shape) != tuple(tensor.shape):
                    raise ShapeMismatchError(f"the initial model's {key} has shape {tuple(init[key].shape)}, "
                                             f"the model's {tuple(tensor.shape)}: not the same architecture")


__all__ = ["ADVERSARIAL_MODES", "FilterRun", "GLOBAL_TARGET", "MAGNITUDE_FILTERS", "Target",
           "check_init_state", "filter_targets", "kept_weights", "run_filter"]
