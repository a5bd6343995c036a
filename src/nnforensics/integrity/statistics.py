"""Statistics of one tensor's change between the original and the re-synchronized suspect.

Each function reads two tensors of the same shape (the suspect already put back in the
original's order) and returns plain numbers; :mod:`.kinds` turns them into a reading
(pruning, quantization, scaling, noise, fine-tuning).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: A value counts as on a quantization grid when it lies within this many grid steps of a
#: grid point (float32 rounding of a 16-bit grid moves values by at most 0.004 steps).
GRID_TOLERANCE = 0.05
MAX_GRID_BITS = 16
GAP_DIVISORS = 64  # an unknown step is looked for among the smallest gap / 1..64


def _flat64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).double().cpu()


def change_stats(orig: torch.Tensor, sus: torch.Tensor) -> dict[str, Any]:
    """Whole-tensor statistics: cosine, relative L2 change, norm ratio, zeros, distinct values, Ω.

    ``omega`` is std(suspect - original) / std(original): the noise level Ω of the paper
    when the change is Gaussian noise.
    """
    o, s = _flat64(orig), _flat64(sus)
    delta = s - o
    on, sn = float(o.norm()), float(s.norm())
    row: dict[str, Any] = {
        "cosine": float(o @ s / (on * sn)) if on > 0 and sn > 0 else float(on == sn),
        "rel_l2": float(delta.norm()) / on if on > 0 else float(delta.norm()),
        "norm_ratio": sn / on if on > 0 else float("nan"),
        "sparsity_original": float((o == 0).double().mean()),
        "sparsity_suspect": float((s == 0).double().mean()),
        "distinct_original": int(torch.unique(o).numel()),
        "distinct_suspect": int(torch.unique(s).numel()),
    }
    std_o = float(o.std(unbiased=False)) if o.numel() > 1 else 0.0
    row["omega"] = float(delta.std(unbiased=False)) / std_o if std_o > 0 else float("nan")
    return row


def neuron_stats(orig: torch.Tensor, sus: torch.Tensor, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Per output neuron (rows along axis 0): norm ratios and cosines (the paper's L2-norm check).

    A neuron scaled by k keeps cosine 1 with its original while its norm ratio becomes k:
    the integrity attack is invisible to cosine similarity and caught by norms. ``rows``
    (bool, one per neuron) limits the statistics to those neurons; indices in
    ``scaled_neurons`` are the tensor's own.
    """
    if orig.dim() < 2 or orig.shape[0] < 2:
        return {}
    ro = orig.detach().double().cpu().reshape(orig.shape[0], -1)
    rs = sus.detach().double().cpu().reshape(orig.shape[0], -1)
    no, ns = ro.norm(dim=1), rs.norm(dim=1)
    live = (no > 0) & (ns > 0)
    if rows is not None:
        live &= torch.from_numpy(np.asarray(rows, dtype=bool))
    ratio = torch.where(live, ns / no.clamp_min(1e-300), torch.ones_like(no))
    cos = torch.where(live, (ro * rs).sum(1) / (no * ns).clamp_min(1e-300), torch.ones_like(no))
    scaled = torch.nonzero((ratio - 1).abs() > 1e-3).reshape(-1)
    out = {"neuron_norm_ratio_min": float(ratio.min()), "neuron_norm_ratio_max": float(ratio.max()),
           "neuron_cosine_min": float(cos.min()), "scaled_neurons": scaled[:4096].tolist(),
           "n_scaled_neurons": int(scaled.numel())}
    if scaled.numel():
        out["scale_factor_min"], out["scale_factor_max"] = float(ratio[scaled].min()), float(ratio[scaled].max())
    return out


# ----------------------------------------------------------------- quantization grids

def _on_grid(values: np.ndarray, origin: float, step: float) -> bool:
    if not step > 0:
        return False
    k = (values - origin) / step
    return bool(np.all(np.abs(k - np.rint(k)) <= GRID_TOLERANCE))


def _grid_bits(distinct: np.ndarray) -> tuple[int, str] | None:
    """(bits, scheme) of the coarsest uniform grid that all of ``distinct`` (sorted, unique) lie on.

    Schemes: ``asymmetric`` (min + k * (max - min) / (2^B - 1), the paper's min-max
    quantization), ``symmetric`` (k * max|x| / (2^(B-1) - 1), or / 2^(B-1) when the most
    negative code -2^(B-1) is used, as int8 does) and ``uniform`` (any grid: the smallest
    gap between values as the step, for affine quantizers whose extreme codes are unused).
    """
    lo, hi = float(distinct[0]), float(distinct[-1])
    if not hi > lo:
        return None
    top = max(abs(lo), abs(hi))
    for bits in range(1, MAX_GRID_BITS + 1):
        if _on_grid(distinct, lo, (hi - lo) / (2**bits - 1)):
            return bits, "asymmetric"
        if bits >= 2 and (_on_grid(distinct, 0.0, top / (2 ** (bits - 1) - 1))
                          or _on_grid(distinct, 0.0, top / 2 ** (bits - 1))):
            return bits, "symmetric"
    if distinct.size >= 8:  # any step: the smallest gap, or a fraction of it when no two neighbours are used
        gap = float(np.diff(distinct).min())
        for parts in range(1, GAP_DIVISORS + 1):
            step = gap / parts
            levels = round((hi - lo) / step) + 1
            if levels > 2**MAX_GRID_BITS:
                break
            if _on_grid(distinct, lo, step):
                return max(1, math.ceil(math.log2(levels))), "uniform"
    return None


def _channel_grid(rows: np.ndarray) -> tuple[int, str] | None:
    """The grid of per-channel quantization: every row (m, n) on a grid of its own, same scheme."""
    found = []
    for row in rows:  # a row off every grid ends the search at once
        distinct = np.unique(row)
        if distinct.size < 2:
            continue
        grid = _grid_bits(distinct)
        if grid is None:
            return None
        found.append(grid)
    if len(found) < 2:
        return None
    schemes = {scheme for _, scheme in found}
    return max(bits for bits, _ in found), schemes.pop() if len(schemes) == 1 else "mixed"


#: Floating-point formats a suspect's weights may have been rounded to (storage bits).
FLOAT_FORMATS = {"float16": (torch.float16, 16), "bfloat16": (torch.bfloat16, 16), "float8_e4m3fn": (None, 8)}


def _float_format(t: torch.Tensor) -> str | None:
    """The narrowest float format that represents every value of ``t`` exactly (half, bfloat16...)."""
    x = t.detach().float().cpu()
    if not torch.isfinite(x).all():
        return None
    for name in ("float8_e4m3fn", "bfloat16", "float16"):
        dtype = FLOAT_FORMATS[name][0] or getattr(torch, name, None)
        if dtype is None:
            continue
        try:
            back = x.to(dtype).float()
        except (RuntimeError, TypeError):
            continue
        if torch.equal(back, x):
            return name
    return None


def quantization_grid(t: torch.Tensor) -> dict[str, Any] | None:
    """How a tensor's values are quantized, or None.

    Tries one uniform grid for the whole tensor, then one per output channel (rows along
    axis 0, as per-channel quantizers do), then rounding to a narrower float format
    (float16, bfloat16, float8). Returns ``{"bits", "scheme", "granularity"}`` (for a
    float format, ``scheme`` is its name); grids of up to :data:`MAX_GRID_BITS` bits are
    recognised (beyond that float32 rounding blurs them).
    """
    values = _flat64(t).numpy()
    if values.size < 4:
        return None
    distinct = np.unique(values)
    if distinct.size <= 2**MAX_GRID_BITS:
        found = _grid_bits(distinct)
        if found is not None:
            return {"bits": found[0], "scheme": found[1], "granularity": "tensor"}
    if t.dim() >= 2 and t.shape[0] >= 2 and values.size >= 16:
        found = _channel_grid(t.detach().double().cpu().reshape(t.shape[0], -1).numpy())
        if found is not None:
            return {"bits": found[0], "scheme": found[1], "granularity": "channel"}
    if t.dtype == torch.float32 or t.dtype == torch.float64:
        name = _float_format(t)
        if name is not None:
            return {"bits": FLOAT_FORMATS[name][1], "scheme": name, "granularity": "format"}
    return None


# ----------------------------------------------------------------- noise or training?

def _top_singular_value(m: torch.Tensor, iters: int = 60) -> float:
    """Largest singular value of ``m`` (rows, cols) by power iteration from a fixed start."""
    v = torch.randn(m.shape[1], generator=torch.Generator().manual_seed(0), dtype=m.dtype)
    value = 0.0
    for _ in range(iters):
        u = m @ v
        u = u / u.norm().clamp_min(1e-300)
        v = m.T @ u
        value = float(v.norm())
        v = v / max(value, 1e-300)
    return value


def noise_stats(orig: torch.Tensor, sus: torch.Tensor) -> dict[str, float]:
    """How much the change of a weight tensor looks like i.i.d. Gaussian noise.

    ``orig``/``sus``: (rows, cols) — output units by everything else. Returns
    ``kurtosis`` (excess; 0 for Gaussian noise, large for fine-tuning's sparse
    updates, negative for Adam's sign-like ones), ``weight_corr`` (correlation of
    the change with the weights: 0 for noise), ``spectral_ratio`` (largest singular
    value of the change over the Marchenko-Pastur edge std * (sqrt(rows) + sqrt(cols)):
    about 1 for i.i.d. noise, well above 1 for the low-rank updates of training) and
    ``row_spread`` (spread of per-row variances over what i.i.d. noise gives: about 1
    for noise; training moves some neurons far more than others).
    """
    o = orig.detach().double().cpu()
    d = sus.detach().double().cpu() - o
    n = d.numel()
    centred = d - d.mean()
    var = float((centred**2).mean())
    if n < 8 or var <= 0:
        return {}
    out = {"kurtosis": float((centred**4).mean()) / var**2 - 3.0}
    o_c = o - o.mean()
    o_var = float((o_c**2).mean())
    out["weight_corr"] = float((centred * o_c).mean()) / math.sqrt(var * o_var) if o_var > 0 else 0.0
    rows, cols = d.shape
    out["spectral_ratio"] = _top_singular_value(centred) / (math.sqrt(var) * (math.sqrt(rows) + math.sqrt(cols)))
    if rows >= 2 and cols >= 2:
        row_var = (centred**2).mean(1)
        out["row_spread"] = float(row_var.std() / row_var.mean()) / math.sqrt(2.0 / cols)
    return out


def pooled_noise_stats(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Whether the changes of several small tensors (biases, normalisation) together look like noise.

    Each tensor's change is standardised on its own (noise scaled per tensor is still
    Gaussian once standardised) and pooled with the standardised values, so that tensors
    of a few dozen values add up to a usable test. Returns ``kurtosis``, ``weight_corr`` and
    ``n`` (values pooled); empty when nothing changed.
    """
    deltas, values = [], []
    for orig, sus in pairs:
        o = orig.detach().double().cpu().reshape(-1)
        d = sus.detach().double().cpu().reshape(-1) - o
        if d.numel() < 2 or float(d.std()) == 0:
            continue
        deltas.append((d - d.mean()) / d.std())
        spread = float(o.std())
        values.append((o - o.mean()) / spread if spread > 0 else torch.zeros_like(o))
    if not deltas:
        return {}
    d, v = torch.cat(deltas), torch.cat(values)
    var = float((d**2).mean())
    return {"kurtosis": float((d**4).mean()) / var**2 - 3.0, "weight_corr": float((d * v).mean()) / math.sqrt(var),
            "n": int(d.numel())}


def noise_tolerances(rows: int, cols: int) -> dict[str, float]:
    """Largest values of :func:`noise_stats` that i.i.d. Gaussian noise of this shape reaches.

    Sampling error shrinks with the number of values n: kurtosis ~ sqrt(24/n), correlation
    ~ 1/sqrt(n); the spectral ratio of a small matrix fluctuates more (Tracy-Widom,
    ~ min(rows, cols)^(-2/3)). Calibrated with ``benchmarks/compare_calibration.py``.
    """
    n = rows * cols
    return {"kurtosis": 0.5 + 5 * math.sqrt(24 / n), "weight_corr": 0.1 + 4 / math.sqrt(n),
            "spectral_ratio": 1.15 + 1.5 * min(rows, cols) ** (-2 / 3),
            "row_spread": 1.6 + 3 / math.sqrt(max(rows, 1))}
