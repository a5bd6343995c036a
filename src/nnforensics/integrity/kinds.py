"""How a derived copy was modified: one reading per changed tensor, one for the model.

Readings, tried in this order for each changed tensor:

* ``pruning`` — at least 5 points more exact zeros than the original;
* ``quantization`` — every value on a uniform grid of at most 16 bits (asymmetric min-max,
  symmetric or any uniform step, per tensor or per output channel), or rounded to a
  narrower float format (float16, bfloat16, float8), that the original is not on;
* ``scaling`` — neurons whose weights were multiplied by a factor: cosine 1 with the
  original, L2 norm changed (the paper's integrity attack, caught by its L2-norm check);
  a bias changed only at those neurons reads the same;
* ``noise`` — a weight tensor whose change looks like i.i.d. Gaussian noise (Gaussian,
  uncorrelated with the weights, no low-rank structure, every neuron moved alike:
  :func:`.statistics.noise_stats` within :func:`.statistics.noise_tolerances`) while
  no running statistic changed and biases / normalisation weights either did not change
  or changed like noise too (noise added to every parameter; see :func:`read_all`);
* ``fine-tuning`` — any other change: training moves biases and normalisation
  statistics too and makes structured (low-rank, uneven) updates;
* ``unmatched`` — the tensor differs only at neurons that were not re-identified, a
  bias or normalisation tensor changed at fewer than half of its re-identified neurons
  (or has fewer than :data:`MIN_COMPANION` of them)
  (training moves them all: these are neurons taken for their counterparts by mistake),
  or too few of a weight tensor's neurons were re-identified to read its change; such
  rows take no part in the model's reading (pruning and quantization are read from the
  whole tensor, whose zeros and grid do not depend on the order of its neurons).

Statistics of the change are taken over the re-identified neurons only (see
:mod:`.evidence`), so that a few mismatched neurons cannot pass for a modification.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .statistics import noise_tolerances

MIN_READABLE = 32  # values of re-identified neurons needed to read a weight tensor's change
MIN_COMPANION = 8  # ... and a bias or normalisation tensor's (fewer: one mismatched neuron could be half)
PRUNING_ZEROS = 0.05  # increase of the share of exact zeros that reads as pruning
BROAD_CHANGE = 0.5  # share of a bias/normalisation tensor's values that changed: trained
OMEGA_SPREAD = 1.5  # largest ratio between two tensors' relative change Ω that noise at one level gives
NOISE_STATS = ("kurtosis", "weight_corr", "spectral_ratio", "row_spread")
#: Readings from statistics of the whole tensor, which the order of its neurons cannot change.
WHOLE_TENSOR_READINGS = ("pruning", "quantization")


#: Every reading in a sentence, for the pages and tables a user reads.
READINGS = {
    "noise": "the change looks like i.i.d. Gaussian noise (Gaussian, uncorrelated with the weights, no low-rank "
             "structure, every neuron moved alike); no running statistic changed, and biases either did not "
             "change or changed like noise too.",
    "fine-tuning": "structured changes (low-rank, uneven across neurons) and, usually, biases and normalisation "
                   "statistics changed too: the copy was trained further.",
    "quantization": "every value lies on a uniform grid of B bits (per tensor or per output channel), or was "
                    "rounded to a narrower float format (float16, bfloat16, float8).",
    "pruning": "at least 5 points more exact zeros than the original.",
    "scaling": "neurons multiplied by a factor; their cosine with the original stays 1, their L2 norm does not "
               "(the integrity attack of Find the Lady, caught by its L2-norm check).",
    "unmatched": "the tensor differs only at neurons that could not be re-identified (too heavily modified, or "
                 "taken for their counterparts by mistake): it takes no part in the overall reading.",
}


def noise_like(row: dict[str, Any]) -> bool:
    """Whether a weight tensor's change statistics are within what i.i.d. Gaussian noise gives."""
    if not all(key in row for key in NOISE_STATS):
        return False
    tol = noise_tolerances(row["rows"], row["cols"])
    return all(abs(row[key]) <= tol[key] for key in NOISE_STATS)


def _scaled_companion(row: dict[str, Any], rows_by_layer: dict[str, list[dict[str, Any]]]) -> bool:
    """A bias (1-D) whose changed entries all belong to neurons its layer's weight scaled."""
    changed = set(row.get("changed_entries", []))
    for other in rows_by_layer.get(row["layer"], []):
        if other is not row and other.get("kind") == "scaling" and other.get("n_scaled_neurons"):
            return bool(changed) and changed <= set(other.get("scaled_neurons", []))
    return False


def read_tensor(row: dict[str, Any]) -> str:
    """The reading of one changed weight tensor (``row`` from :func:`~.comparison.tensor_row`), before
    the model-wide evidence of training (:func:`read_all`) turns ``noise`` into ``fine-tuning``."""
    if row["sparsity_suspect"] - row["sparsity_original"] >= PRUNING_ZEROS:
        return "pruning"
    if row.get("bits") is not None:
        return "quantization"
    if row.get("neuron_cosine_min", 0.0) > 1 - 1e-6 and row.get("n_scaled_neurons"):
        return "scaling"
    if noise_like(row):
        return "noise"
    return "fine-tuning"


def changed_broadly(row: dict[str, Any]) -> bool:
    """A bias or normalisation tensor that changed at most of its (enough) re-identified neurons."""
    return row.get("changed_share", 0.0) >= BROAD_CHANGE and row.get("kept_values", 0) >= MIN_COMPANION


def omega_consistent(rows: list[dict[str, Any]]) -> bool:
    """Whether the changed tensors moved by the same relative amount Ω (std of the change over
    std of the values), as noise drawn per tensor at one level does; training moves layers by
    amounts an order of magnitude apart. Tensors of fewer than :data:`MIN_READABLE` values
    (too noisy an estimate) are left out."""
    omegas = [r["omega_kept"] for r in rows if r.get("omega_kept", 0) > 0 and r.get("kept_values", 0) >= MIN_READABLE]
    return len(omegas) < 2 or max(omegas) / min(omegas) <= OMEGA_SPREAD


def companions_look_like_noise(companions: list[dict[str, Any]], weights: list[dict[str, Any]],
                               pooled: dict[str, float]) -> bool:
    """Biases / normalisation weights changed broadly: noise added to every parameter, or training?

    Noise: their pooled, standardised changes are Gaussian and uncorrelated with their
    values (:func:`.statistics.pooled_noise_stats`), and every changed tensor moved by the
    same Ω. Running statistics (buffers) never change under noise: they are read before.
    """
    if not pooled:
        return False
    tol = noise_tolerances(pooled["n"], 1)
    within = all(abs(pooled[key]) <= tol[key] for key in ("kurtosis", "weight_corr"))
    return within and omega_consistent(companions + weights)


def read_all(rows: list[dict[str, Any]], pooled: dict[str, float] | None = None) -> bool:
    """Set ``row["kind"]`` for every changed tensor in place; returns whether training was seen.

    Training is seen when a running statistic (a buffer such as BatchNorm's running mean or
    variance, which only forward passes in training mode move) changed broadly, or when
    biases / normalisation weights changed broadly (at least :data:`BROAD_CHANGE` of their
    re-identified values, other than by scaling) in a way noise does not explain
    (:func:`companions_look_like_noise`; ``pooled`` are their pooled change statistics).
    """
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_layer.setdefault(row["layer"], []).append(row)
    weights = [r for r in rows if r["changed"] and r["is_weight"]]
    others = [r for r in rows if r["changed"] and not r["is_weight"]]
    for row in weights:  # scaling must be known before its biases are read
        row["kind"] = read_tensor(row)
        readable = (row.get("kept_values", 0) >= MIN_READABLE and row.get("changed_share", 0.0) > 0
                    and all(key in row for key in NOISE_STATS))  # at least two re-identified neurons
        if not readable and row["kind"] not in WHOLE_TENSOR_READINGS:
            row["kind"] = "unmatched"
    broad = []
    for row in others:
        if _scaled_companion(row, by_layer):
            row["kind"] = "scaling"
        elif changed_broadly(row):
            broad.append(row)
        else:  # a few values only: neurons taken for their counterparts by mistake, or too few to tell
            row["kind"] = "unmatched"
    noisy_weights = [r for r in weights if r["kind"] == "noise"]
    trained = any(r.get("is_buffer") for r in broad) or bool(broad) and not (
        noisy_weights and companions_look_like_noise([r for r in broad if not r.get("is_buffer")], noisy_weights,
                                                     pooled or {}))
    for row in broad:
        row["kind"] = "fine-tuning" if trained else "noise"
    if trained:
        for row in weights:
            if row["kind"] == "noise":
                row["kind"] = "fine-tuning"
    return trained


def model_reading(rows: list[dict[str, Any]], trained: bool) -> dict[str, Any]:
    """The model's kind of modification, how sure, and the numbers behind it.

    Returns ``{"kind", "detail", "votes", "voters", "confidence", "kinds"}``: the most
    common reading of the changed weight tensors (of any changed tensor when no weight
    changed), how many of them read so, a short phrase with its numbers, and the count of
    every reading.
    """
    changed = [r for r in rows if r["changed"] and r["kind"] != "unmatched"]
    weights = [r for r in changed if r["is_weight"]] or changed
    counts = Counter(r["kind"] for r in weights)
    kinds = dict(Counter(r["kind"] for r in rows if r["changed"]))
    if not counts:
        return {"kind": "unmatched", "detail": "every change sits at neurons that were not re-identified",
                "votes": 0, "voters": 0, "confidence": "low", "kinds": kinds}
    kind, votes = counts.most_common(1)[0]
    agree = [r for r in weights if r["kind"] == kind]
    agreement = votes / len(weights)
    detail = _detail(kind, agree, trained)
    confidence = "high" if agreement >= 0.8 else "moderate" if agreement >= 0.5 else "low"
    return {"kind": kind, "detail": detail, "votes": votes, "voters": len(weights), "confidence": confidence,
            "kinds": kinds}


def _detail(kind: str, rows: list[dict[str, Any]], trained: bool) -> str:
    """A short phrase with the numbers of a reading (bits, Ω, zeros, factors)."""
    if kind == "quantization":
        return Counter(r["quantization"] for r in rows).most_common(1)[0][0]
    if kind == "noise":
        omega = float(np.median([r["omega"] for r in rows]))
        return f"Gaussian, Ω ≈ {omega:.2g}"
    if kind == "pruning":
        zeros = float(np.median([r["sparsity_suspect"] for r in rows]))
        return f"{100 * zeros:.0f} % zeros"
    if kind == "scaling":
        low = min(r["scale_factor_min"] for r in rows)
        high = max(r["scale_factor_max"] for r in rows)
        neurons = sum(r["n_scaled_neurons"] for r in rows)
        factor = f"x{low:.3g}" + ("" if abs(high - low) < 1e-6 else f" to x{high:.3g}")
        return f"{neurons} neuron(s) scaled {factor}, directions unchanged"
    change = float(np.median([r["rel_l2"] for r in rows]))
    return f"relative change {change:.2g}" + ("; biases/normalisation changed too" if trained else "")
