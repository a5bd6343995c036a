"""Synaptic filters (InferLink): which weights a filter removes at each threshold.

Filters act on the raw signed values of Conv/Linear weights (biases are kept). With
``n`` thresholds over a weight range ``[lo, hi]`` (a layer's own range in the local
analysis, the range of every layer together in the global one):

* ``high-pass`` zeroes every weight ``<= alpha``, ``alpha = linspace(lo, hi, n)``
  (the original's "step min->max"): the first threshold removes the minimum, the last
  removes everything;
* ``low-pass`` zeroes every weight ``>= alpha``, ``alpha = linspace(hi, lo, n)``
  ("step max->min");
* ``pulse`` zeroes the weights in one window ``[alpha - d/2, alpha + d/2)`` of width
  ``d = (hi - lo) / n``, the window sweeping ``lo -> hi``. The window centres are
  ``lo + (k + 1/2) d``, so the ``n`` windows tile ``[lo, hi]`` without overlap and every
  weight is removed at exactly one threshold (the last window is closed at ``hi``);
  the original's centres ``linspace(lo, hi, n)`` overlapped and left gaps.
* ``reset`` (not in the paper; Zhang, Bengio & Singer 2022) moves the layer's weight
  *and bias* back towards their values at initialisation, ``w + t (w_init - w)`` for
  ``t = k / n, k = 1..n``: the last threshold is the full reset (layers that survive
  it are "ambient", the others "critical").

Every threshold has a position ``t`` in ``[0, 1]`` (the normalised threshold of the
paper): ``(alpha - lo) / (hi - lo)`` for ``high-pass`` and ``pulse``,
``(hi - alpha) / (hi - lo)`` for ``low-pass`` (so that ``t`` grows with what is
removed), the interpolation weight for ``reset``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, UnknownNameError

FILTERS = ("high-pass", "low-pass", "pulse", "reset")
#: The filters that remove weights by value (``reset`` changes them instead).
MAGNITUDE_FILTERS = ("high-pass", "low-pass", "pulse")
SCOPES = ("local", "global")
DEFAULT_THRESHOLDS = 25


def check_filters(filters: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Validated filter names (``None``: the three magnitude filters); ``all`` adds ``reset``."""
    if filters is None:
        return list(MAGNITUDE_FILTERS)
    if isinstance(filters, str):
        filters = [part.strip() for part in filters.split(",") if part.strip()]
    names: list[str] = []
    for name in filters:
        if name == "all":
            names += list(FILTERS)
        elif name in FILTERS:
            names.append(name)
        else:
            raise UnknownNameError("filter", name, FILTERS + ("all",))
    if not names:
        raise ConfigError("no filter given; choose from " + ", ".join(FILTERS))
    return list(dict.fromkeys(names))


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise UnknownNameError("scope", scope, SCOPES)
    return scope


def check_thresholds(n: object) -> int:
    """``n`` if it is an integer >= 2 (a curve needs two points), else :class:`ConfigError`."""
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 2):
        raise ConfigError(f"--thresholds must be an integer >= 2 (a curve needs at least two points), got {n}")
    return n


@dataclass(frozen=True)
class Threshold:
    """One step of a filter sweep.

    Attributes:
        index: 0-based position in the sweep.
        alpha: the threshold in weight units (the window centre for ``pulse``, the
            interpolation weight for ``reset``).
        t: the normalised threshold in ``[0, 1]``.
        low, high: the removed interval for ``pulse`` (``high`` is inclusive for the last window).
    """

    index: int
    alpha: float
    t: float
    low: float = math.nan
    high: float = math.nan


def threshold_sweep(kind: str, lo: float, hi: float, n: int) -> list[Threshold]:
    """The ``n`` thresholds of filter ``kind`` over the weight range ``[lo, hi]``."""
    check_thresholds(n)
    span = hi - lo
    if kind == "high-pass":
        alphas = torch.linspace(lo, hi, n, dtype=torch.float64).tolist()
        return [Threshold(k, a, (a - lo) / span if span > 0 else k / (n - 1)) for k, a in enumerate(alphas)]
    if kind == "low-pass":
        alphas = torch.linspace(hi, lo, n, dtype=torch.float64).tolist()
        return [Threshold(k, a, (hi - a) / span if span > 0 else k / (n - 1)) for k, a in enumerate(alphas)]
    if kind == "pulse":
        width = span / n
        edges = [lo + k * width for k in range(n)] + [hi]  # shared edges: no gap, no overlap
        return [Threshold(k, lo + (k + 0.5) * width, (k + 0.5) / n, edges[k], edges[k + 1]) for k in range(n)]
    if kind == "reset":
        return [Threshold(k, (k + 1) / n, (k + 1) / n) for k in range(n)]
    raise UnknownNameError("filter", kind, FILTERS)


def removal_mask(weight: torch.Tensor, kind: str, step: Threshold, last: bool) -> torch.Tensor:
    """Boolean mask (shape of ``weight``) of the weights filter ``kind`` zeroes at ``step``.

    ``last`` marks the sweep's last step (the last pulse window includes its upper end,
    so that the windows cover the whole range).
    """
    w = weight.detach()
    alpha = torch.tensor(step.alpha, dtype=torch.float64)
    if kind == "high-pass":
        return w.double() <= alpha
    if kind == "low-pass":
        return w.double() >= alpha
    if kind == "pulse":
        wd = w.double()
        upper = wd <= step.high if last else wd < step.high
        return (wd >= step.low) & upper if step.index > 0 else upper  # the first window also takes lo
    raise ConfigError(f"filter {kind!r} does not remove weights by value")
