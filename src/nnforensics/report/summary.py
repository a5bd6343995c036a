"""A short summary in words of each sweep (for the top of the report).

Sentences follow the paper's reading of Tables 1–4: up to which level Ψ stays 100,
and what the error does meanwhile ("Ψ stays 100 up to Ω = 6 for lap while the error
rises from 1.1 % to 8.3 %").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from .results import Sweep
from .attacks import format_level
from .tables import aggregate, fmt_num, level_error

INTACT = 100 - 1e-6  # Ψ counted as 100
#: Largest output difference after a pure permutation still counted as "function unchanged".
OUTPUT_TOLERANCE = 1e-3


def _names(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def _pct(x: float) -> str:
    return f"{x:.1f} %"


def _change(a: float, b: float) -> str:
    """``"rises from 1.1 % to 8.3 %"`` (or falls / stays)."""
    if abs(b - a) < 0.05:
        return f"stays at {_pct(a)}"
    return f"{'rises' if b > a else 'falls'} from {_pct(a)} to {_pct(b)}"


def _psi_sentence(sweep: Sweep, methods: list[str], levels: list, psi: list[float], err: dict) -> str:
    """One sentence for methods that share the same Ψ profile over ``levels`` (weakest first)."""
    style = sweep.style
    who = _names(methods)
    at = style.level_text
    first, last = levels[0], levels[-1]
    k = next((i for i, p in enumerate(psi) if not p >= INTACT), len(psi))  # leading levels at Ψ = 100
    if len(levels) == 1:
        return f"At {at(first)}, Ψ = {fmt_num(psi[0])} for {who} and the error is {_pct(err[first])}."
    if k == len(levels):
        return (f"Ψ stays 100 at every level ({style.symbol} from {format_level(first)} to "
                f"{format_level(last)}) for {who}, while the error {_change(err[first], err[last])}.")
    drop = f"it drops to {fmt_num(psi[k])} at {at(levels[k])}"
    if levels[k] != last:
        drop += f" and is {fmt_num(psi[-1])} at {at(last)}"
    drop += f" (error {_pct(err[last])})"
    if k == 0:
        return (f"Ψ is below 100 already at {at(first)} for {who}: {fmt_num(psi[0])}; "
                f"at {at(last)} it is {fmt_num(psi[-1])} (error {_pct(err[last])}).")
    if k == 1:
        return f"Ψ is 100 only at {at(first)} for {who} (error {_pct(err[first])}); {drop}."
    return f"Ψ stays 100 up to {at(levels[k - 1])} for {who} while the error {_change(err[first], err[levels[k - 1]])}; {drop}."


def _watermark_sentences(sweep: Sweep, agg: pd.DataFrame) -> list[str]:
    at = sweep.style.level_text
    raw = float(sweep.rows["ber_raw"].mean())
    out = [f"Watermark: after permutation + attack the bit error rate is {_pct(raw)} on average (50 % is chance)."]
    if "ber_attack" in sweep.rows.columns:
        out.append(f"The attack alone, without permutation, leaves it at {_pct(float(sweep.rows['ber_attack'].mean()))} "
                   f"on average.")
    outcomes: dict[str, list[str]] = {}  # what re-synchronization achieved -> methods (one sentence each)
    for method in sweep.methods:
        ber = agg.loc[agg["method"] == method, ["level", "ber_resync_mean"]].dropna()
        if ber.empty:
            continue
        values, levels = ber["ber_resync_mean"].tolist(), ber["level"].tolist()
        k = next((i for i, v in enumerate(values) if v > 1e-9), len(values))
        if k == len(values):
            what = "the watermark is recovered exactly (BER 0 %) at every level"
        elif k > 0:
            what = f"the BER is 0 % up to {at(levels[k - 1])} and {_pct(values[-1])} at {at(levels[-1])}"
        else:
            what = f"the BER is {_pct(values[0])} at {at(levels[0])} and {_pct(values[-1])} at {at(levels[-1])}"
        outcomes.setdefault(what, []).append(method)
    out += [f"Re-synchronized with {_names(methods)}, {what}." for what, methods in outcomes.items()]
    return out


def _collision_sentences(sweep: Sweep, agg: pd.DataFrame) -> list[str]:
    if "collisions_mean" not in agg.columns:
        return []
    out = []
    at = sweep.style.level_text
    for method in sweep.methods:
        part = agg[(agg["method"] == method) & (agg["collisions_mean"] > 0)]
        if len(part):
            last = part.iloc[-1]
            out.append(
                f"{method} assigned several neurons to one position (collisions) from {at(part['level'].iloc[0])} on "
                f"({fmt_num(last['collisions_mean'])} on average at {at(last['level'])})."
            )
    return out


def _function_sentence(sweep: Sweep) -> list[str]:
    if "max_output_diff" not in sweep.rows.columns:
        return []
    worst = float(sweep.rows["max_output_diff"].max())
    if not math.isfinite(worst):
        return []
    if worst <= OUTPUT_TOLERANCE:
        return [f"Permuting left the network function unchanged (largest output difference {worst:.1e})."]
    return [f"Warning: the permuted network's outputs differ from the original's by up to {worst:.3g}; "
            f"the permutation did not preserve the function."]


def describe(sweep: Sweep) -> list[str]:
    """Sentences summarising one sweep."""
    agg = aggregate(sweep)
    errors = level_error(sweep)
    err = dict(zip(errors["level"], errors["error_mean"]))
    out: list[str] = []
    if not sweep.complete:
        out.append(f"Incomplete sweep: {sweep.n_cells} of {sweep.expected_cells} (level, seed, method) results "
                   f"so far ({sweep.source}).")
    if "base_error" in sweep.rows.columns and sweep.rows["base_error"].notna().any():
        out.append(f"The unperturbed model's error is {_pct(float(sweep.rows['base_error'].mean()))}.")
    # Methods with the same Ψ at the same levels share one sentence.
    profiles: dict[tuple, list[str]] = {}
    for method in sweep.methods:
        psi = agg[agg["method"] == method].set_index("level")["psi_mean"].dropna()  # agg is in strength order
        if len(psi):
            key = (tuple(psi.index), tuple(round(v, 6) for v in psi))
            profiles.setdefault(key, []).append(method)
    for (levels, psi), methods in profiles.items():
        out.append(_psi_sentence(sweep, methods, list(levels), list(psi), err))
    out += _collision_sentences(sweep, agg)
    if sweep.has_watermark:
        out += _watermark_sentences(sweep, agg)
    out += _function_sentence(sweep)
    out += sweep.notes
    return out
