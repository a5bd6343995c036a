"""Uchida et al. (2017) white-box watermark: the regulariser and the extraction (REFERENCE §1).

For the watermarked layer's weight W (N filters first: (N, C, k, k) or (out, in)):

* w = mean of W over its output filters, flattened: length C*k*k (conv) or ``in`` (Linear);
* y = sigmoid(X w) with the secret X (T, len(w)); extracted bits = y > 0.5, i.e. X w > 0;
* embedding adds ``lambda * BCE(y, b)`` to the training loss, the cross-entropy summed
  over the T bits as Uchida et al. define their E_R (a mean would weaken lambda T-fold:
  with lambda = 0.1 and a mean, one epoch does not embed 64 bits in a narrow VGG);
* BER % = Hamming(extracted, b) / T * 100.

Averaging over output filters makes w invariant to a permutation of the layer's own
neurons, but a permutation of the *previous* layer reorders W's input channels, hence
the entries of w, and the bits become coin flips (BER ~ 50 %) until the network is
re-synchronized.

Detection: an unrelated model matches each bit with probability 1/2, so the chance of
matching at least m of T bits is the binomial tail P(Binomial(T, 1/2) >= m) (the
p-value). The mark is detected iff p-value <= fpr, the false-positive rate the verifier
accepts; equivalently iff m >= the threshold, the smallest m whose tail is <= fpr.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import binom

from ..errors import ConfigError, InvalidWeightsError, ShapeMismatchError
from ..models.layers import weight_layers
from ..permutation import unwrap
from .key import WatermarkKey

DEFAULT_FPR = 1e-6


# ----------------------------------------------------------------- the model side

def key_weight(model: Any, key: WatermarkKey) -> torch.Tensor:
    """The weight (the live parameter) of the layer ``key`` is for, checked against the key.

    Raises:
        ShapeMismatchError: the model has no such Conv/Linear layer, or its weight has
            another shape (the message names both the key's and the model's).
    """
    module, _ = unwrap(model)
    layers = dict(weight_layers(module))
    wanted = f"layer {key.layer!r} with weight shape {tuple(key.weight_shape)}"
    if key.layer not in layers:
        have = ", ".join(f"{name} {tuple(m.weight.shape)}" for name, m in list(layers.items())[:40])
        raise ShapeMismatchError(f"the watermark key is for {wanted}, but the model has no such layer; "
                                 f"its Conv/Linear layers: {have or 'none'}")
    weight = layers[key.layer].weight
    if tuple(weight.shape) != tuple(key.weight_shape):
        raise ShapeMismatchError(f"the watermark key is for {wanted}, but the model's {key.layer!r} has weight "
                                 f"shape {tuple(weight.shape)} (a key for another architecture or width?)")
    return weight


def mean_filter(weight: torch.Tensor, filter_axis: int = 0) -> torch.Tensor:
    """w (len(w),): ``weight`` averaged over its output filters, flattened (differentiable)."""
    return weight.mean(filter_axis).reshape(-1)


def projections(model: Any, key: WatermarkKey) -> torch.Tensor:
    """X w (T,) in float64 for the model's current weights (no gradient)."""
    weight = key_weight(model, key).detach()
    if not bool(torch.isfinite(weight).all()):
        raise InvalidWeightsError(f"the weight of layer {key.layer!r} contains NaN or Inf values; "
                                  f"no watermark can be read from it")
    w = mean_filter(weight.double().cpu(), key.filter_axis)
    return key.matrix.double() @ w


def extract_bits(model: Any, key: WatermarkKey) -> np.ndarray:
    """The T bits the model carries (uint8 0/1): sigmoid(X w) > 0.5."""
    return (projections(model, key) > 0).numpy().astype(np.uint8)


def watermark_ber(model: Any, key: WatermarkKey) -> float:
    """Bit error rate % (0..100) of ``model`` against ``key``: what a sweep records per cell."""
    errors = int((extract_bits(model, key) != np.asarray(key.bits, dtype=np.uint8)).sum())
    return 100.0 * errors / key.n_bits


def watermark_loss(key: WatermarkKey) -> Callable[[nn.Module], torch.Tensor]:
    """``f(model) -> lambda * sum_j BCE(sigmoid(X_j w), b_j)``, the regulariser to pass as ``extra_loss``.

    Computed as BCE-with-logits on X w (the same value, numerically stable), summed over
    the T bits (Uchida's E_R). X and b are moved once to the weight's device and dtype.
    """
    cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def loss(model: nn.Module) -> torch.Tensor:
        weight = key_weight(model, key)
        where = (weight.device, weight.dtype)
        if where not in cache:
            cache[where] = (key.matrix.to(*where), key.target.to(*where))
        matrix, target = cache[where]
        logits = matrix @ mean_filter(weight, key.filter_axis)
        return key.strength * F.binary_cross_entropy_with_logits(logits, target, reduction="sum")

    return loss


# ----------------------------------------------------------------- statistics

def check_fpr(fpr: object) -> float:
    """``fpr`` if it is a probability strictly between 0 and 1, else :class:`ConfigError`."""
    if not (isinstance(fpr, (int, float)) and not isinstance(fpr, bool) and math.isfinite(fpr) and 0 < fpr < 1):
        raise ConfigError(f"the false-positive rate must be a number strictly between 0 and 1 (e.g. 1e-6), got {fpr!r}")
    return float(fpr)


def p_value(matched: int, n_bits: int) -> float:
    """P(Binomial(n_bits, 1/2) >= matched): an unrelated model matching this many bits by chance."""
    return float(binom.sf(matched - 1, n_bits, 0.5))


def min_bits(fpr: float) -> int:
    """The fewest bits with which ``fpr`` is reachable at all (all T matching: 2^-T <= fpr)."""
    return max(1, math.ceil(-math.log2(check_fpr(fpr)) - 1e-12))


def detection_threshold(n_bits: int, fpr: float = DEFAULT_FPR) -> int:
    """The smallest number of matching bits whose chance probability is <= ``fpr``.

    Raises:
        ConfigError: ``n_bits`` is too small for ``fpr`` ever to be reached.
    """
    fpr = check_fpr(fpr)
    tails = binom.sf(np.arange(n_bits + 1) - 1, n_bits, 0.5)  # tails[m] = P(X >= m), decreasing
    reachable = np.nonzero(tails <= fpr)[0]
    if len(reachable) == 0:
        raise ConfigError(
            f"a {n_bits}-bit watermark can never be detected at a false-positive rate of {fpr:g}: even all "
            f"{n_bits} bits matching happens by chance with probability 2^-{n_bits} = {2.0 ** -n_bits:.3g}; "
            f"embed at least {min_bits(fpr)} bits, or accept a larger false-positive rate (--fpr)")
    return int(reachable[0])


@dataclass
class ExtractResult:
    """What one model carries, compared with the key.

    ``ber`` is in % (0..100); ``matched`` = T - bit errors; ``p_value`` =
    P(Binomial(T, 1/2) >= matched); ``detected`` iff ``p_value <= fpr`` (iff
    ``matched >= threshold``).
    """

    ber: float
    bits: int
    matched: int
    p_value: float
    detected: bool
    threshold: int
    fpr: float
    layer: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.message is None:
            del out["message"]
        return out


def extract(model: Any, key: WatermarkKey, fpr: float = DEFAULT_FPR) -> ExtractResult:
    """Read the watermark of ``model`` (``nn.Module`` or loaded model) with ``key``.

    Raises:
        ConfigError: ``fpr`` out of (0, 1), or unreachable with the key's T bits.
        ShapeMismatchError: the key is for another layer or weight shape.
        InvalidWeightsError: NaN/Inf in the watermarked layer.
    """
    threshold = detection_threshold(key.n_bits, fpr)  # refuse before any work
    bits = extract_bits(model, key)
    matched = int((bits == np.asarray(key.bits, dtype=np.uint8)).sum())
    p = p_value(matched, key.n_bits)
    return ExtractResult(ber=100.0 * (key.n_bits - matched) / key.n_bits, bits=key.n_bits, matched=matched,
                         p_value=p, detected=p <= fpr, threshold=threshold, fpr=float(fpr),
                         layer=key.layer, message=key.message(bits.tolist()))
