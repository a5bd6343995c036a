"""Filtering scores and the fragile / robust / antifragile verdicts.

For one filter applied to one set of layers, with the normalised threshold ``t`` on the
x-axis, ``A(t)`` the accuracy divided by the unfiltered model's (clean or adversarial)
and ``rho(t)`` the fraction of the filtered weights that is kept:

* the **filtering score** is the mean over ``t`` of ``A(t) - rho(t)`` (the integral of
  the paper, divided by the span of ``t`` so scores of different filters compare):
  negative when accuracy falls faster than weights are removed, positive when it stays
  above the density curve; computed on clean data (``score_clean``), adversarial data
  (``score_adv``), and their difference ``score_diff = score_adv - score_clean``;
* the **gain** is the mean over ``t`` of ``max(A(t) - 1, 0)``: how much removing the
  weights *improves* on the intact model (``gain_clean``, ``gain_adv``; the adversarial
  gain counts only at thresholds where the clean accuracy keeps :data:`CLEAN_HOLDS` of
  the intact one, and only when the intact adversarial accuracy is at least
  :data:`MIN_ADV_BASELINE` %).

The verdict (:data:`RULE`, with tolerance ``tau``, default :data:`DEFAULT_TOLERANCE`):

* **fragile**: ``score_clean < -tau`` (removing these weights costs more accuracy than
  the share of weights removed);
* otherwise **antifragile**: ``gain_clean > tau`` or ``gain_adv > tau`` (removing them
  makes the model better than intact, on clean data or under attack);
* otherwise **robust** (accuracy tracks or stays above the density curve).

A layer's verdict over several filters: fragile if any magnitude filter finds it
fragile; else antifragile if any finds it antifragile; else robust. The rule is ordered,
so a curve gets exactly one verdict. How sure a verdict is: ``margin`` (the distance of
the deciding number from ``tau``) against ``noise`` (the standard error of one accuracy
measurement against the intact model's on the same images, from the images whose
prediction changed, see :func:`measurement_noise`); ``confidence`` is ``high`` when the
margin exceeds three times the noise, else ``low``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .filters import MAGNITUDE_FILTERS

DEFAULT_TOLERANCE = 0.05
VERDICTS = ("fragile", "robust", "antifragile")
#: Below this intact adversarial accuracy (%), adversarial curves are normalised by almost nothing.
MIN_ADV_BASELINE = 5.0
#: An adversarial gain counts only at thresholds where the clean accuracy keeps this share of the intact one.
CLEAN_HOLDS = 0.9

RULE = ("fragile: clean filtering score < -tau (accuracy falls faster than weights are removed); "
        "else antifragile: mean gain over the intact model > tau on clean or adversarial data "
        "(removing the weights improves the model; the adversarial gain counts only where clean accuracy "
        "keeps 90 % of the intact one, and only if the intact adversarial accuracy is at least 5 %); else robust. A layer is fragile if any magnitude "
        "filter finds it fragile, else antifragile if any finds it antifragile, else robust.")

#: Columns that identify one curve (one filter swept over one set of layers of one model).
CURVE_KEYS = ("model", "scope", "filter", "layer")


def check_tolerance(tau: object) -> float:
    if not (isinstance(tau, (int, float)) and not isinstance(tau, bool) and math.isfinite(tau) and 0 <= tau < 1):
        raise ConfigError(f"the verdict tolerance must be a number in [0, 1), got {tau}")
    return float(tau)


def _mean_over_t(t: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid integral of ``values`` over ``t``, divided by the span of ``t``."""
    finite = np.isfinite(values)
    t, values = t[finite], values[finite]
    if len(t) == 0:
        return math.nan
    if len(t) == 1 or t[-1] == t[0]:
        return float(values.mean())
    return float(np.trapezoid(values, t) / (t[-1] - t[0]))


def normalised(curves: pd.DataFrame) -> pd.DataFrame:
    """``curves`` with ``clean_norm`` and ``adv_norm``: accuracies divided by the intact model's."""
    out = curves.copy()
    out["clean_norm"] = out["clean_accuracy"] / out["base_clean"].where(out["base_clean"] > 0)
    base_adv = out["base_adv"].clip(lower=100.0 / out["n"])  # one image: never divide by zero
    out["adv_norm"] = out["adv_accuracy"] / base_adv
    return out


def curve_scores(curve: pd.DataFrame) -> dict[str, float]:
    """Scores of one curve (rows of one filter over one target, any order)."""
    curve = curve.sort_values("t")
    t = curve["t"].to_numpy(float)
    kept = curve["kept_fraction"].to_numpy(float)
    clean = curve["clean_norm"].to_numpy(float)
    adv = curve["adv_norm"].to_numpy(float)
    score_clean, score_adv = _mean_over_t(t, clean - kept), _mean_over_t(t, adv - kept)
    return {
        "score_clean": score_clean,
        "score_adv": score_adv,
        "score_diff": score_adv - score_clean,
        "gain_clean": _mean_over_t(t, np.clip(clean - 1, 0, None)),
        # under attack, only where the clean accuracy holds: a model at chance level is not "more robust"
        "gain_adv": _mean_over_t(t, np.where(clean >= CLEAN_HOLDS, np.clip(adv - 1, 0, None), 0.0)),
        "min_clean_norm": float(np.nanmin(clean)),
        "final_clean_norm": float(clean[-1]),  # for reset: the fully reset layer
    }


def verdict(scores: dict[str, float], tau: float = DEFAULT_TOLERANCE,
            adv_reliable: bool = True) -> tuple[str, float, str]:
    """``(verdict, margin, deciding data)`` of one curve's scores by :data:`RULE`.

    ``margin`` >= 0 is the distance of the deciding number from its boundary; the deciding
    data (``clean`` or ``adv``) is the one whose measurement noise the margin is held against.
    Without a reliable adversarial baseline (:data:`MIN_ADV_BASELINE`) only clean data decides.
    """
    if scores["score_clean"] < -tau:
        return "fragile", -tau - scores["score_clean"], "clean"
    gain_adv = scores["gain_adv"] if adv_reliable and math.isfinite(scores["gain_adv"]) else 0.0
    data, best_gain = ("adv", gain_adv) if gain_adv > scores["gain_clean"] else ("clean", scores["gain_clean"])
    if best_gain > tau:
        return "antifragile", best_gain - tau, data
    return "robust", min(scores["score_clean"] + tau, tau - best_gain), data


def measurement_noise(curve: pd.DataFrame, data: str = "clean") -> float:
    """Standard error of the curve's normalised accuracy against the intact model's, averaged over ``t``.

    Both are measured on the same images, so the error of their difference comes from the
    images whose correctness changed (paired, McNemar-style): ``sqrt(flips) / n`` per
    threshold, divided by the intact accuracy. A layer that changes no prediction has none.
    """
    n, base = float(curve["n"].iloc[0]), float(curve[f"base_{data}"].iloc[0]) / 100.0
    if f"{data}_flips" not in curve.columns or not base > 0:
        return math.nan
    return float((np.sqrt(curve[f"{data}_flips"].to_numpy(float)) / n).mean() / base)


def score_table(curves: pd.DataFrame, tau: float = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """One row per curve (:data:`CURVE_KEYS` + the other identifying columns present): scores and verdict.

    ``curves`` needs ``t``, ``kept_fraction``, ``clean_accuracy``, ``adv_accuracy``,
    ``base_clean``, ``base_adv``, ``n`` and the key columns.
    """
    check_tolerance(tau)
    if curves.empty:
        return pd.DataFrame()
    data = normalised(curves)
    extra = [c for c in ("run", "init", "epoch", "arch", "attack", "eps", "adversarial") if c in data.columns]
    rows = []
    for key, curve in data.groupby(list(CURVE_KEYS), sort=False, dropna=False):
        scores = curve_scores(curve)
        first = curve.iloc[0]
        reliable = bool(math.isfinite(first["base_adv"]) and first["base_adv"] >= MIN_ADV_BASELINE)
        label, margin, deciding = verdict(scores, tau, reliable)
        noise = measurement_noise(curve, deciding)
        rows.append({**dict(zip(CURVE_KEYS, key)), **{c: first[c] for c in extra}, **scores,
                     "base_clean": float(first["base_clean"]), "base_adv": float(first["base_adv"]),
                     "verdict": label, "margin": margin, "noise": noise,
                     "confidence": "high" if margin > 3 * noise else "low",  # NaN noise: low
                     "decided_by": deciding, "adv_reliable": reliable})
    return pd.DataFrame(rows)


def layer_verdicts(scores: pd.DataFrame) -> pd.DataFrame:
    """One verdict per (model, scope, layer) over the magnitude filters (``reset`` reads ambient/critical).

    Columns: the keys, ``verdict``, ``confidence`` (high only if the deciding curves are
    all high), ``by_filter`` (e.g. ``high-pass: fragile; low-pass: robust``), and
    ``reset`` (``ambient`` / ``critical`` when the reset filter ran: ``ambient`` if the
    fully reset layer keeps at least 90 % of the intact clean accuracy).
    """
    if scores.empty:
        return pd.DataFrame()
    rows = []
    for key, group in scores.groupby(["model", "scope", "layer"], sort=False):
        magnitude = group[group["filter"].isin(MAGNITUDE_FILTERS)]
        row = dict(zip(("model", "scope", "layer"), key))
        for column in ("run", "init", "epoch", "arch"):
            if column in group.columns:
                row[column] = group.iloc[0][column]
        if not magnitude.empty:
            label = next((v for v in ("fragile", "antifragile") if (magnitude["verdict"] == v).any()), "robust")
            deciding = magnitude[magnitude["verdict"] == label]
            row.update(verdict=label,
                       confidence="high" if (deciding["confidence"] == "high").all() else "low",
                       by_filter="; ".join(f"{f}: {v}" for f, v in zip(magnitude["filter"], magnitude["verdict"])))
        reset = group[group["filter"] == "reset"]
        if not reset.empty:
            row["reset"] = "ambient" if float(reset.iloc[0]["final_clean_norm"]) >= 0.9 else "critical"
        rows.append(row)
    return pd.DataFrame(rows)
