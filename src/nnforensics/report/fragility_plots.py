"""Figures of a synaptic-filtering sweep (matplotlib ``Figure`` objects, no pyplot)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..fragility.scores import VERDICTS, normalised
from .plots import plain

CLEAN_COLOR = "tab:blue"
ADV_COLOR = "tab:red"
DENSITY_COLOR = "0.35"
VERDICT_COLORS = {"fragile": "#d9534f", "robust": "#9ecae1", "antifragile": "#5cb85c"}


def _grid(n: int, most_columns: int = 5) -> tuple[int, int]:
    columns = min(n, most_columns)
    return math.ceil(n / columns), columns


def plot_curves(curves: pd.DataFrame, title: str) -> Figure:
    """One panel per layer: normalised clean / adversarial accuracy against the normalised threshold.

    ``curves``: the rows of one model, scope and filter. Grey bars: share of the layer's
    weights removed at each threshold; dashed line: share kept (the density curve the
    scores compare accuracy with).
    """
    data = normalised(curves)
    layers = list(dict.fromkeys(data["layer"]))
    rows, columns = _grid(len(layers))
    fig = Figure(figsize=(2.6 * columns + 0.6, 2.2 * rows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)).ravel()
    has_adv = data["adv_accuracy"].notna().any()
    for ax, layer in zip(axes, layers):
        curve = data[data["layer"] == layer].sort_values("t")
        t = curve["t"].to_numpy(float)
        width = (t[1] - t[0]) * 0.8 if len(t) > 1 else 0.04
        ax.bar(t, curve["removed_fraction"], width=width, color="0.85", label="weights removed")
        ax.plot(t, curve["kept_fraction"], "--", color=DENSITY_COLOR, lw=1, label="weights kept")
        ax.plot(t, curve["clean_norm"], "-o", ms=2.5, color=CLEAN_COLOR, label="clean accuracy")
        if has_adv:
            ax.plot(t, curve["adv_norm"], "-s", ms=2.5, color=ADV_COLOR, label="adversarial accuracy")
        ax.set_title(plain(layer), fontsize=8)
        ax.axhline(1.0, color="0.6", lw=0.6)
        ax.tick_params(labelsize=7)
    for ax in axes[len(layers):]:
        ax.set_visible(False)
    top = max(1.15, float(np.nanmax(data[["clean_norm", "adv_norm"]].to_numpy(float))) * 1.05)
    axes[0].set_ylim(0, min(top, 3.0))
    for i, ax in enumerate(axes[:len(layers)]):
        if i + columns >= len(layers):  # no panel below: this one carries the x axis of its column
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("normalised threshold", fontsize=8)
    for ax in axes[::columns]:
        ax.set_ylabel("accuracy / intact", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(plain(title), fontsize=10)
    return fig


def plot_score_heatmap(scores: pd.DataFrame, title: str) -> Figure:
    """Layers x filters of one model and scope: the clean score written in each cell, coloured by verdict."""
    layers = list(dict.fromkeys(scores["layer"]))
    filters = list(dict.fromkeys(scores["filter"]))
    codes = np.full((len(layers), len(filters)), np.nan)
    fig = Figure(figsize=(1.5 + 1.35 * len(filters), 1.2 + 0.3 * len(layers)), layout="constrained")
    ax = fig.subplots()
    for _, row in scores.iterrows():
        i, j = layers.index(row["layer"]), filters.index(row["filter"])
        codes[i, j] = VERDICTS.index(row["verdict"])
        text = f"{row['score_clean']:+.2f}"
        if math.isfinite(row["score_adv"]):
            text += f" / {row['score_adv']:+.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7)
    cmap = ListedColormap([VERDICT_COLORS[v] for v in VERDICTS])
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(VERDICTS) - 0.5, aspect="auto")
    ax.set_xticks(range(len(filters)), [plain(f) for f in filters], fontsize=8)
    ax.set_yticks(range(len(layers)), [plain(name) for name in layers], fontsize=7)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    fig.legend([Patch(color=VERDICT_COLORS[v]) for v in VERDICTS], VERDICTS, loc="outside lower center",
               ncol=3, fontsize=8, frameon=False)
    ax.set_title(plain(title) + "\ncell text: clean score / adversarial score", fontsize=9)
    return fig


def plot_scores_by_epoch(scores: pd.DataFrame, column: str = "score_clean") -> Figure | None:
    """Score against training epoch, one line per layer (mean over initialisations, band: min-max), one panel per filter.

    ``None`` when the sweep has fewer than two epochs.
    """
    data = scores[scores["epoch"].notna()] if "epoch" in scores.columns else scores.iloc[0:0]
    if data["epoch"].nunique() < 2:
        return None
    filters = list(dict.fromkeys(data["filter"]))
    fig = Figure(figsize=(4.2 * len(filters), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(filters), sharey=True, squeeze=False)).ravel()
    layers = list(dict.fromkeys(data["layer"]))
    colors = [f"C{i % 10}" for i in range(len(layers))]
    for ax, kind in zip(axes, filters):
        for layer, color in zip(layers, colors):
            part = data[(data["filter"] == kind) & (data["layer"] == layer)]
            stats = part.groupby("epoch")[column].agg(["mean", "min", "max"]).sort_index()
            epochs = stats.index.to_numpy(float)
            ax.plot(epochs, stats["mean"], "-o", ms=3, color=color, label=plain(layer))
            ax.fill_between(epochs, stats["min"], stats["max"], color=color, alpha=0.12, lw=0)
        ax.axhline(0, color="0.5", lw=0.7)
        ax.set_title(plain(kind), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel(column.replace("_", " "), fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7, frameon=False)
    return fig
